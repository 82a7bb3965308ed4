"""Faults on real pods: a function pod killed mid-request, the operator pod deleted
mid-reconcile, and the router pod deleted with async events queued (its state on a
PersistentVolumeClaim)."""

from __future__ import annotations

import threading
import time

import pytest

from lambdakube.resources import labels
from tests.e2e.cluster import RELEASE_NS, Cluster, function_manifest, recording_handler, wait_for
from tests.e2e.helpers import router_envs


def _component_pods(c: Cluster, comp: str) -> list[dict]:
    return [
        p
        for p in c.get("pods", namespace=RELEASE_NS, selector=f"app.kubernetes.io/component={comp}")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_a_pod_killed_mid_request_gives_a_clear_5xx_and_the_pool_recovers(release: Cluster, ns: str):
    release.apply(
        function_manifest("victim", recording_handler(), timeoutSeconds=60, resources={"memorySize": 256}), ns
    )
    wait_for(lambda: release.router_function("victim", ns), 60, "router to see victim")
    pod = release.invoke("victim", {}, ns).json()["pod"]
    result = {}
    t = threading.Thread(target=lambda: result.update(r=release.invoke("victim", {"sleep": 40}, ns)))
    t.start()
    wait_for(
        lambda: [e["state"] for e in router_envs(release, "victim", ns)] == ["busy"], 20, "the request to be running"
    )
    killed_at = time.monotonic()
    release.kubectl("delete", "pod", pod, "-n", ns, "--grace-period=1", "--wait=false")
    t.join(60)
    reply = result["r"]
    assert reply.status == 502, (reply.status, reply.body)
    assert reply.json()["errorType"] == "EnvironmentFailureException", reply.body
    assert time.monotonic() - killed_at < 30, "the caller learned of the death, not the timeout"

    after = release.invoke("victim", {}, ns)
    assert after.status == 200, after.body
    assert after.header("X-Cold-Start") == "true" and after.json()["pod"] != pod


@pytest.mark.timeout(600)
def test_operator_deleted_mid_reconcile_recovers_without_duplicates(release: Cluster, ns: str):
    (old_operator,) = _component_pods(release, "operator")
    release.apply(function_manifest("opfn", recording_handler(), provisionedConcurrency=5), ns)
    release.kubectl("delete", "pod", old_operator["metadata"]["name"], "-n", RELEASE_NS, "--wait=false")

    wait_for(
        lambda: (
            (p := _component_pods(release, "operator"))
            and p[0]["metadata"]["uid"] != old_operator["metadata"]["uid"]
            and _ready(p[0])
        ),
        120,
        "a new operator pod Ready",
    )
    wait_for(
        lambda: (p := release.pods(ns, "opfn")) and len(p) >= 5 and all(_ready(x) for x in p),
        180,
        "5 provisioned pods Ready",
    )
    fn = wait_for(
        lambda: (f := release.get("function", "opfn", ns)).get("status", {}).get("provisioned") == 5 and f,
        60,
        "status.provisioned 5",
    )
    everything = release.pods(ns, "opfn", live_only=False)
    assert len(everything) == 5, [p["metadata"]["name"] for p in everything]
    assert {p["metadata"]["labels"][labels.ROLE] for p in everything} == {labels.ROLE_PROVISIONED}
    assert fn["status"]["provisioned"] == 5


@pytest.mark.timeout(600)
def test_queued_events_survive_the_router_pod(release: Cluster, ns: str):
    release.apply(
        function_manifest(
            "durable", recording_handler(), timeoutSeconds=30, **{"async": {"onSuccess": {"queue": "done"}}}
        ),
        ns,
    )
    wait_for(lambda: release.router_function("durable", ns), 60, "router to see durable")
    ids = list(range(12))
    for i in ids:
        r = release.invoke("durable", {"id": i, "sleep": 3}, ns, headers={"X-Amz-Invocation-Type": "Event"})
        assert r.status == 202, r.body
    (old_router,) = _component_pods(release, "router")
    release.kubectl("delete", "pod", old_router["metadata"]["name"], "-n", RELEASE_NS, "--wait=false")
    wait_for(
        lambda: (
            (p := _component_pods(release, "router"))
            and p[0]["metadata"]["uid"] != old_router["metadata"]["uid"]
            and _ready(p[0])
        ),
        180,
        "a new router pod Ready",
    )

    def delivered():
        r = release.request("GET", f"/lambdakube/v1/namespaces/{ns}/queues/done/messages?limit=1000")
        if r.status != 200:
            return None
        got = {m["body"]["requestPayload"]["id"] for m in r.json()["messages"]}
        return got if got >= set(ids) else None

    got = wait_for(delivered, 180, "every queued event delivered to the onSuccess queue", interval=1)
    assert got == set(ids)
