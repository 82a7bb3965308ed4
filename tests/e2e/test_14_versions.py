"""Versions and aliases on real pods: the operator publishes on ``spec.publish``, an
alias's provisioned concurrency becomes Ready pods of its version (labelled with its
number), ``fn:live`` runs on them without a cold start and with that version's code,
``fn`` runs $LATEST's, a weighted alias reaches both versions, a $LATEST code change
leaves the version's pods alone, Lambda's PutProvisionedConcurrencyConfig on a version
gets it a Ready pod, and DeleteProvisionedConcurrencyConfig on the alias drains its."""

from __future__ import annotations

import json

import pytest

from lambdakube.resources import labels
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for

FN = "ver"


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def versions(c: Cluster, ns: str) -> dict[int, dict]:
    return {v["spec"]["version"]: v for v in c.get("functionversions", namespace=ns)["items"]}


def version_pods(c: Cluster, ns: str, number: str) -> list[dict]:
    return [
        p
        for p in c.pods(ns, FN, labels.ROLE_PROVISIONED)
        if p["metadata"]["labels"].get(labels.VERSION) == number
        and p["metadata"]["labels"].get(labels.DRAINING) != "true"
    ]


def alias(name: str, version: str, provisioned: int = 0, weights: dict | None = None) -> dict:
    spec: dict = {"function": FN, "functionVersion": version, "provisionedConcurrency": provisioned}
    if weights:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "FunctionAlias", "metadata": {"name": name}, "spec": spec}


def provisioned_call(c: Cluster, ns: str, method: str, qualifier: str, body: dict | None = None):
    """Lambda's Put/DeleteProvisionedConcurrencyConfig through the router."""
    return c.request(
        method,
        f"/2019-09-30/functions/{FN}/provisioned-concurrency?Qualifier={qualifier}",
        json.dumps(body).encode() if body is not None else None,
        {"X-Lambdakube-Namespace": ns, "Content-Type": "application/json"},
    )


def alias_status(c: Cluster, ns: str, name: str) -> dict:
    return c.get("functionalias", name, ns).get("status") or {}


@pytest.mark.timeout(600)
def test_versions_aliases_and_their_provisioned_pods(release: Cluster, ns: str):
    # Publishing: version 1 from the first spec, owned by the Function; 2 after a code change.
    release.apply(function_manifest(FN, recording_handler("code-1"), publish=True), ns)
    v1 = wait_for(lambda: versions(release, ns).get(1), 60, "version 1 published")
    fn = release.get("function", FN, ns)
    assert v1["metadata"]["name"] == f"{FN}-v1"
    assert [(o["kind"], o["uid"]) for o in v1["metadata"]["ownerReferences"]] == [("Function", fn["metadata"]["uid"])]
    release.apply(function_manifest(FN, recording_handler("code-2"), publish=True), ns)
    wait_for(lambda: 2 in versions(release, ns), 60, "version 2 published")
    assert sorted(versions(release, ns)) == [1, 2]

    # An alias with provisioned concurrency: two Ready pods of version 1.
    release.apply(alias("live", "1", provisioned=2), ns)
    pods = wait_for(
        lambda: len(p := [x for x in version_pods(release, ns, "1") if _ready(x)]) == 2 and p,
        180,
        "2 provisioned pods of version 1 Ready",
    )
    names = {p["metadata"]["name"] for p in pods}
    wait_for(lambda: alias_status(release, ns, "live").get("status") == "READY", 60, "alias live READY")
    status = alias_status(release, ns, "live")
    assert (status["requested"], status["allocated"]) == (2, 2)
    row = release.kubectl("get", "fna", "live", "-n", ns, "--no-headers").stdout.split()
    assert row[:5] == ["live", FN, "1", "2", "2"] and row[5] == "READY", row
    # The router holds them (its version-1 pool), idle.
    wait_for(
        lambda: (
            [
                e["state"]
                for e in ((release.router_function(FN, ns) or {}).get("versions") or {})
                .get("1", {})
                .get("environments", [])
            ]
            == ["idle", "idle"]
        ),
        60,
        "the router to hold version 1's provisioned environments idle",
    )

    # fn:live runs version 1's code on a provisioned pod: no cold start.
    r = release.invoke(f"{FN}:live", {}, ns)
    assert r.status == 200, r.body
    assert r.header("X-Amz-Executed-Version") == "1"
    assert r.header("X-Cold-Start") == "false" and r.header("X-Environment-Source") == "provisioned"
    assert r.json()["version"] == "code-1" and r.json()["pod"] in names
    # fn runs $LATEST (version 2's code), never on version 1's pods.
    r = release.invoke(FN, {}, ns)
    assert r.status == 200, r.body
    assert r.header("X-Amz-Executed-Version") == "$LATEST"
    assert r.json()["version"] == "code-2" and r.json()["pod"] not in names

    # A weighted alias reaches both versions, and says which ran.
    release.apply(alias("split", "1", weights={"2": 0.5}), ns)
    wait_for(lambda: release.invoke(f"{FN}:split", {}, ns).status == 200, 60, "the router to know alias split")
    ran = set()
    for _ in range(40):
        r = release.invoke(f"{FN}:split", {}, ns)
        assert r.status == 200, r.body
        ran.add((r.header("X-Amz-Executed-Version"), r.json()["version"]))
        if len(ran) == 2:
            break
    assert ran == {("1", "code-1"), ("2", "code-2")}

    # A $LATEST code change (it publishes version 3) leaves version 1's pods alone.
    release.apply(function_manifest(FN, recording_handler("code-3"), publish=True), ns)
    wait_for(lambda: 3 in versions(release, ns), 60, "version 3 published")
    wait_for(lambda: release.invoke(FN, {}, ns).json().get("version") == "code-3", 120, "$LATEST to run the new code")
    assert {p["metadata"]["name"] for p in version_pods(release, ns, "1")} == names
    r = release.invoke(f"{FN}:live", {}, ns)
    assert (r.header("X-Amz-Executed-Version"), r.json()["version"]) == ("1", "code-1")
    assert r.json()["pod"] in names and r.header("X-Cold-Start") == "false"

    # Lambda's PutProvisionedConcurrencyConfig on version 2, through the router (it
    # patches the FunctionVersion): a Ready pod of version 2, and the version's status.
    r = provisioned_call(release, ns, "PUT", "2", {"ProvisionedConcurrentExecutions": 1})
    assert r.status == 202, r.body
    wait_for(lambda: [x for x in version_pods(release, ns, "2") if _ready(x)], 180, "a Ready pod of version 2")
    wait_for(
        lambda: (release.get("functionversion", f"{FN}-v2", ns).get("status") or {}).get("status") == "READY",
        60,
        "version 2 READY",
    )
    row = release.kubectl("get", "fnv", f"{FN}-v2", "-n", ns, "--no-headers").stdout.split()
    assert "1" in row and "READY" in row, row

    # DeleteProvisionedConcurrencyConfig on the alias: its pods drain and go.
    r = provisioned_call(release, ns, "DELETE", "live")
    assert r.status == 204, r.body
    wait_for(
        lambda: not names & {p["metadata"]["name"] for p in release.pods(ns, FN, live_only=False)},
        120,
        "version 1's provisioned pods to drain and be deleted",
    )
    wait_for(lambda: alias_status(release, ns, "live").get("requested") == 0, 60, "alias live to request none")
    r = release.invoke(f"{FN}:live", {}, ns)  # still served: on demand now
    assert (r.status, r.header("X-Amz-Executed-Version"), r.json()["version"]) == (200, "1", "code-1")
