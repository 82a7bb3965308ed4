"""Scale to zero: an idle on-demand pod is deleted after idleTimeoutSeconds, and the next
invoke cold-starts a new one."""

from __future__ import annotations

from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for

IDLE_SECONDS = 5


def test_idle_pods_are_reaped_and_the_next_invoke_is_cold(release: Cluster, ns: str):
    release.apply(
        function_manifest("idle", recording_handler(), idleTimeoutSeconds=IDLE_SECONDS, resources={"memorySize": 256}),
        ns,
    )
    wait_for(lambda: release.router_function("idle", ns), 60, "router to see idle")
    first = release.invoke("idle", {}, ns)
    assert first.status == 200 and first.header("X-Cold-Start") == "true", first.body
    pod = first.json()["pod"]
    assert [p["metadata"]["name"] for p in release.pods(ns, "idle")] == [pod]

    wait_for(
        lambda: not release.get("pods", namespace=ns, selector=f"lambdakube.dev/environment={pod}")["items"],
        IDLE_SECONDS + 60,
        f"pod {pod} to be deleted after {IDLE_SECONDS} s idle",
    )
    again = release.invoke("idle", {}, ns)
    assert again.status == 200 and again.header("X-Cold-Start") == "true", again.body
    assert again.json()["pod"] != pod and again.json()["count"] == 1
