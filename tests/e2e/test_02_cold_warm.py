"""A cold start on a real pod, then warm reuse of the same environment; and a cold start
that claims one of the operator's generic pods and specialises it."""

from __future__ import annotations

from lambdakube.resources import labels
from lambdakube.resources.pods import GENERIC_NAME_PREFIX
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for


def _known(c: Cluster, name: str, ns: str) -> None:
    wait_for(lambda: c.router_function(name, ns), 60, f"router to see {name}")


def _accepted_announces(c: Cluster) -> float:
    text = c.request("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith('lambdakube_environment_announces_total{result="accepted"}'):
            return float(line.split()[-1])
    return 0.0


def test_cold_start_creates_a_pod_then_warm_reuses_it(release: Cluster, ns: str):
    # 256 MB does not fit a generic pod: this cold start creates a pod of its own.
    announced = _accepted_announces(release)
    release.apply(function_manifest("coldwarm", recording_handler(), resources={"memorySize": 256}), ns)
    _known(release, "coldwarm", ns)
    assert release.pods(ns, "coldwarm") == []

    cold = release.invoke("coldwarm", {}, ns)
    assert cold.status == 200, cold.body
    assert cold.header("X-Cold-Start") == "true"
    assert cold.header("X-Environment-Source") == "fresh"
    assert float(cold.header("X-Init-Duration-Ms")) > 0
    pod = cold.json()["pod"]
    assert pod == cold.header("X-Environment-Id")
    assert [p["metadata"]["name"] for p in release.pods(ns, "coldwarm")] == [pod]
    # The pod's runtime announced itself to the router over the pod network, with its
    # token, from its own IP (the chart's --announce-url is the router pod's IP).
    assert _accepted_announces(release) == announced + 1

    warm = release.invoke("coldwarm", {}, ns)
    assert warm.status == 200, warm.body
    assert warm.header("X-Cold-Start") == "false"
    assert warm.header("X-Init-Duration-Ms") is None
    assert warm.json()["pod"] == pod
    assert (cold.json()["count"], warm.json()["count"]) == (1, 2), "module state kept between invokes"


def test_cold_start_claims_a_generic_pod(release: Cluster, ns: str):
    def generic_ready():
        pods = release.get("pods", namespace=ns, selector=f"{labels.ROLE}={labels.ROLE_GENERIC}")["items"]
        return [
            p["metadata"]["name"]
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]

    ready = wait_for(generic_ready, 120, "the operator's generic pods in the namespace to be Ready")
    release.apply(function_manifest("generic", recording_handler()), ns)
    _known(release, "generic", ns)

    reply = release.invoke("generic", {}, ns)
    assert reply.status == 200, reply.body
    assert reply.header("X-Cold-Start") == "true"
    assert reply.header("X-Environment-Source") == "generic"
    pod = reply.json()["pod"]
    assert pod.startswith(GENERIC_NAME_PREFIX) and pod in ready
    claimed = release.get("pod", pod, ns)["metadata"]["labels"]
    assert claimed[labels.FUNCTION] == "generic"
    assert claimed[labels.ROLE] == labels.ROLE_ON_DEMAND
    again = release.invoke("generic", {}, ns)
    assert (again.json()["pod"], again.json()["count"]) == (pod, 2)
    wait_for(lambda: len(generic_ready()) >= 2, 120, "the operator to refill the generic pool")
