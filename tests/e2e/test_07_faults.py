"""Faults on real pods: a function pod killed mid-request, an idle one deleted from
outside, an idle one whose runtime process is killed (the request sent to it goes to
another environment), the operator pod deleted mid-reconcile, and the router pod deleted
with async events queued (its state on a PersistentVolumeClaim)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lambdakube.resources import labels
from tests.e2e.cluster import RELEASE_NS, Cluster, function_manifest, recording_handler, wait_for
from tests.e2e.helpers import router_envs


def _component_pods(c: Cluster, comp: str) -> list[dict]:
    return [
        p
        for p in c.get("pods", namespace=RELEASE_NS, selector=f"app.kubernetes.io/component={comp}")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


def _metric(c: Cluster, sample: str, **labels: str) -> float:
    """One sample of the router's /metrics by its name and labels; 0 if absent."""
    for family in text_string_to_metric_families(c.request("GET", "/metrics").body.decode()):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return 0.0


def _runtime_host_pid(c: Cluster, namespace: str, pod: str) -> int:
    """The host PID of a pod's runtime process: its container's task in containerd."""
    assert c.node is not None, "needs the real node (make node), not kind"

    def started() -> str | None:  # the pod can serve (it announced) before the kubelet's status says so
        statuses = c.get("pod", pod, namespace)["status"].get("containerStatuses") or []
        return statuses[0].get("containerID") if len(statuses) == 1 else None

    container_id = wait_for(started, 30, f"the kubelet's status of {pod}").split("://", 1)[1]
    for line in c.node.ctr("task", "ls").stdout.splitlines()[1:]:  # TASK PID STATUS
        task, pid, _ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no containerd task {container_id} for pod {pod}")


def _exited(pid: int) -> bool:
    """Reaped (by containerd's shim, at once). Not merely a zombie: the runtime has
    threads, and its leader is a zombie while the others may still hold its sockets."""
    return not Path(f"/proc/{pid}").exists()


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


def test_an_idle_pod_deleted_from_outside_is_retired_before_any_request(release: Cluster, ns: str):
    release.apply(function_manifest("outside", recording_handler(), resources={"memorySize": 256}), ns)
    wait_for(lambda: release.router_function("outside", ns), 60, "router to see outside")
    pod = release.invoke("outside", {}, ns).json()["pod"]
    assert [(e["id"], e["state"]) for e in router_envs(release, "outside", ns)] == [(pod, "idle")]

    release.kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
    # the router's pod cache sees the deletion and retires the idle environment itself
    wait_for(lambda: router_envs(release, "outside", ns) == [], 30, "the deleted pod's environment retired")

    after = release.invoke("outside", {}, ns)
    assert after.status == 200, after.body
    assert after.header("X-Cold-Start") == "true" and after.json()["pod"] != pod


def test_a_request_for_a_killed_idle_runtime_is_sent_to_another_environment(release: Cluster, ns: str):
    """kill -9 of an idle pod's runtime (the pod itself stays until the kubelet notices):
    the router's request finds nothing listening, which means nothing was delivered, so
    it goes to another environment (a cold start) instead of answering 502."""
    release.apply(function_manifest("crashy", recording_handler(), resources={"memorySize": 256}), ns)
    wait_for(lambda: release.router_function("crashy", ns), 60, "router to see crashy")
    pod = release.invoke("crashy", {}, ns).json()["pod"]
    series = {"sample": "lambdakube_invoke_redeliveries_total", "namespace": ns, "function": "crashy"}
    before = _metric(release, **series)

    pid = _runtime_host_pid(release, ns, pod)
    os.kill(pid, signal.SIGKILL)
    # Once its sockets are closed (the process is reaped), so that the router
    # can see that nothing was sent; a request written while the process is still dying
    # gets a reset, which could equally mean it crashed on the request: a 502 (README).
    wait_for(lambda: _exited(pid), 10, f"runtime {pid} to exit", interval=0.005)
    # and at once: before the kubelet reports the container's end (its status loop is seconds)
    reply = release.invoke("crashy", {}, ns)
    assert reply.status == 200, reply.body
    assert reply.json()["pod"] != pod and reply.header("X-Cold-Start") == "true"
    assert _metric(release, **series) == before + 1, "served through a redelivery, not a retirement"
    # the dead environment is retired once the kubelet's status of the pod arrives
    wait_for(
        lambda: pod not in {e["id"] for e in router_envs(release, "crashy", ns)}, 60, "the killed pod's env retired"
    )


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
