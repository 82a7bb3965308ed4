"""helm install --wait gives Ready operator and router pods; `kubectl apply -f examples/`
gives Functions whose status (Ready, Provisioned) comes from real, Ready pods."""

from __future__ import annotations

import json

from lambdakube.resources import labels
from tests.e2e.cluster import RELEASE, RELEASE_NS, REPO, Cluster, wait_for


def test_operator_and_router_are_ready(release: Cluster):
    for comp in ("operator", "router"):
        dep = release.get("deployment", f"{RELEASE}-lambdakube-{comp}", RELEASE_NS)
        assert dep["status"].get("readyReplicas") == 1, (comp, dep["status"])
    assert release.request("GET", "/healthz").status == 200


def test_examples_become_ready_from_real_pods(release: Cluster, ns: str):
    release.kubectl("apply", "-n", ns, "-f", str(REPO / "examples"))

    def provisioned_ready():
        fn = release.get("function", "provisioned", ns)
        ready = [c for c in fn.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return fn if ready and ready[0]["status"] == "True" and fn["status"].get("provisioned") == 2 else None

    wait_for(provisioned_ready, 120, "Function provisioned Ready with 2 provisioned")
    pods = release.pods(ns, "provisioned", labels.ROLE_PROVISIONED)
    assert len(pods) == 2
    for p in pods:
        assert p["status"]["phase"] == "Running"
        assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"
        assert p["spec"]["nodeName"], "scheduled onto the real node"

    table = release.kubectl("get", "functions", "-n", ns).stdout
    row = next(line.split() for line in table.splitlines() if line.startswith("provisioned "))
    header = table.splitlines()[0].split()
    assert dict(zip(header, row))["READY"] == "True"
    assert dict(zip(header, row))["PROVISIONED"] == "2"

    reply = wait_for(
        lambda: (r := release.invoke("hello", {"name": "e2e"}, ns)).status == 200 and r,
        60,
        "hello answers through the router's Service",
    )
    assert reply.json()["message"] == "hello, e2e!"
    # The code reached the pods in their runtime's POST /init: no code volume, no ConfigMap.
    assert not json.loads(release.kubectl("get", "configmaps", "-n", ns, "-l", labels.FUNCTION, "-o", "json").stdout)[
        "items"
    ]
    assert all([v["name"] for v in p["spec"]["volumes"]] == ["tmp"] for p in pods)
