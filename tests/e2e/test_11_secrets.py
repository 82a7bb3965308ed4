"""Secret and ConfigMap references on a real kubelet: a Function's handler reads a
Secret key (``envValueFrom``) and a ConfigMap's keys (``envFrom``); once the Secret is
deleted, a new environment cannot start: the Function says so in its Ready condition
(the kubelet's message, naming the pod) and an invoke that needs a cold start fails at
once with that message. The value itself shows up only in the handler's answer: not in
the Function, its Events, the router's or the operator's log."""

from __future__ import annotations

import json

import pytest

from lambdakube.resources import labels
from tests.e2e.cluster import RELEASE, Cluster, function_manifest, wait_for

VALUE = "s3cr3t-value"
HANDLER = """\
import os

def handler(event, context):
    return {k: os.environ.get(k) for k in ("DB_PASSWORD", "CFG_level", "PLAIN")}
"""


def _ready(fn: dict) -> dict:
    return next((c for c in fn.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})


@pytest.mark.timeout(600)
def test_a_secret_resolves_in_the_handler_and_its_deletion_is_a_clear_condition(release: Cluster, ns: str):
    release.kubectl("create", "secret", "generic", "db", f"--from-literal=password={VALUE}", "-n", ns)
    release.kubectl("create", "configmap", "settings", "--from-literal=level=debug", "-n", ns)
    release.apply(
        function_manifest(
            "sec",
            HANDLER,
            env={"PLAIN": "literal"},
            envValueFrom={"DB_PASSWORD": {"secretKeyRef": {"name": "db", "key": "password"}}},
            envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            provisionedConcurrency=1,
        ),
        ns,
    )
    wait_for(lambda: _ready(release.get("function", "sec", ns)).get("status") == "True", 120, "sec Ready")
    r = release.invoke("sec", {}, ns)
    assert r.status == 200, r.body
    assert r.json() == {"DB_PASSWORD": VALUE, "CFG_level": "debug", "PLAIN": "literal"}
    (pod,) = release.pods(ns, "sec", labels.ROLE_PROVISIONED)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["DB_PASSWORD"] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    }

    # The Secret goes; the running environment keeps its value, a new one cannot start.
    release.kubectl("delete", "secret", "db", "-n", ns)
    release.kubectl("delete", "pod", pod["metadata"]["name"], "-n", ns, "--wait=false")

    def cannot_start():
        cond = _ready(release.get("function", "sec", ns))
        return cond if cond.get("reason") == "CreateContainerConfigError" else None

    cond = wait_for(cannot_start, 120, "Ready=False CreateContainerConfigError on the Function")
    assert cond["status"] == "False"
    assert cond["message"].startswith("environment pod sec-p") and 'secret "db" not found' in cond["message"], cond

    # No provisioned environment is Ready: the invoke spills over to a fresh pod, which
    # cannot start either; the router fails it at once with the kubelet's message.
    r = release.invoke("sec", {}, ns, timeout=60)
    assert r.status == 502 and r.json()["errorType"] == "InitError", r.body
    assert "CreateContainerConfigError" in r.json()["errorMessage"], r.body
    assert 'secret "db" not found' in r.json()["errorMessage"], r.body

    seen = {
        "Function": json.dumps(release.get("function", "sec", ns)),
        "Events": release.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
        "router log": release.logs(f"deploy/{RELEASE}-lambdakube-router", tail=2000),
        "operator log": release.logs(f"deploy/{RELEASE}-lambdakube-operator", tail=2000),
    }
    assert 'secret \\"db\\" not found' in seen["Events"]  # the Warning Event says why, too
    for where, text in seen.items():
        assert VALUE not in text, where
