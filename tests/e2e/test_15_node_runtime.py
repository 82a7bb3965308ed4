"""Node.js on real pods: a ``nodejs20.x`` Function applied with kubectl runs on the
Node.js runtime image (never on a generic pod, whose image has no node), cold then warm
in the same environment (its module-level instanceId kept, Init Duration on the cold
start only); and with ``perEnvironmentConcurrency: 2`` four concurrent invokes run on
two pods, never more than two at once in one."""

from __future__ import annotations

from collections import defaultdict

from lambdakube.models import DEFAULT_NODEJS_RUNTIME_IMAGE
from lambdakube.resources import labels
from tests.e2e.cluster import Cluster, wait_for
from tests.e2e.helpers import invoke_concurrently, router_envs

HANDLER = """\
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";

const instanceId = randomUUID();
let count = 0;
let inFlight = 0;

export const handler = async (event, context) => {
  count += 1;
  inFlight += 1;
  const seen = inFlight;
  const start = Date.now() / 1000;
  await new Promise((resolve) => setTimeout(resolve, event.holdMs ?? 0));
  inFlight -= 1;
  return { instanceId, count, seen, pod: hostname(), start, end: Date.now() / 1000, node: process.version };
};
"""


def node_function(name: str, **spec) -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "nodejs20.x",
            "handler": "index.handler",
            "code": {"inline": {"source": HANDLER}},
            **spec,
        },
    }


def _known(c: Cluster, name: str, ns: str) -> None:
    wait_for(lambda: c.router_function(name, ns), 60, f"router to see {name}")


def test_a_nodejs_function_runs_cold_then_warm_on_the_nodejs_image(release: Cluster, ns: str):
    release.apply(node_function("node-hello"), ns)
    _known(release, "node-hello", ns)

    cold = release.invoke("node-hello", {}, ns)
    assert cold.status == 200, cold.body
    assert cold.header("X-Cold-Start") == "true"
    # Not a generic pod (its image has no node): a pod of its own, with the Node.js image.
    assert cold.header("X-Environment-Source") == "fresh"
    assert float(cold.header("X-Init-Duration-Ms")) > 0
    body = cold.json()
    assert body["node"].startswith("v")
    (pod,) = release.pods(ns, "node-hello")
    assert pod["metadata"]["name"] == body["pod"] == cold.header("X-Environment-Id")
    assert pod["spec"]["containers"][0]["image"] == DEFAULT_NODEJS_RUNTIME_IMAGE
    assert pod["metadata"]["labels"][labels.ROLE] == labels.ROLE_ON_DEMAND

    warm = release.invoke("node-hello", {}, ns)
    assert warm.status == 200, warm.body
    assert warm.header("X-Cold-Start") == "false"
    assert warm.header("X-Init-Duration-Ms") is None
    again = warm.json()
    assert (again["instanceId"], again["pod"]) == (body["instanceId"], body["pod"])
    assert (body["count"], again["count"]) == (1, 2), "module state kept between invokes"


def test_two_invocations_per_environment_four_at_once_use_two_pods(release: Cluster, ns: str):
    release.apply(node_function("node-multi", perEnvironmentConcurrency=2, timeoutSeconds=30), ns)
    _known(release, "node-multi", ns)

    # Each holds 4 s (within its 30 s timeout), long after all four were sent: they overlap.
    replies = invoke_concurrently(release, "node-multi", [{"holdMs": 4000}] * 4, ns)
    assert [r.status for r in replies] == [200] * 4, [r.body for r in replies]
    by_pod: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in replies:
        body = r.json()
        assert body["pod"] == r.header("X-Environment-Id")
        by_pod[body["pod"]].append((body["start"], body["end"]))
    # ceil(4 in flight / 2 per environment) = 2 pods, each serving two at once.
    assert len(by_pod) == 2, dict(by_pod)
    assert sorted(len(spans) for spans in by_pod.values()) == [2, 2]
    assert max(r.json()["seen"] for r in replies) == 2
    for pod, spans in by_pod.items():  # never more than two at once in one pod
        edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        assert peak <= 2, (pod, spans)
    assert sum(r.header("X-Cold-Start") == "true" for r in replies) == 2  # one per pod
    pods = release.pods(ns, "node-multi")
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(by_pod)
    assert all(p["spec"]["containers"][0]["image"] == DEFAULT_NODEJS_RUNTIME_IMAGE for p in pods)
    envs = router_envs(release, "node-multi", ns)
    assert {e["slots"] for e in envs} == {2} and all(e["inFlight"] == 0 for e in envs)
