"""Small pieces the scenarios share: concurrent invocations and the one-request-at-a-time
check over what the recording handler reports."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.cluster import Cluster, Reply


def invoke_concurrently(c: Cluster, function: str, payloads: list, namespace: str, timeout: float = 120) -> list[Reply]:
    """All ``payloads`` at once, one thread each (the router sees them concurrently)."""
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        return list(pool.map(lambda p: c.invoke(function, p, namespace, timeout=timeout), payloads))


def assert_one_request_per_environment(replies: list[Reply]) -> int:
    """No pod ever ran two requests at once: per pod, the handlers' [start, end] intervals
    (wall clock, one clock: every pod runs on this node) never overlap. Returns the number
    of pods seen."""
    by_pod: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in replies:
        if r.status == 200:
            body = r.json()
            by_pod[body["pod"]].append((body["start"], body["end"]))
    for pod, spans in by_pod.items():
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            assert s2 >= e1, f"{pod} ran two requests at once: [{s1}, {e1}] and [{s2}, {e2}]"
    return len(by_pod)


def throttle_reasons(replies: list[Reply]) -> list[str]:
    out = []
    for r in replies:
        if r.status == 429:
            body = r.json()
            assert body["errorType"] == "TooManyRequestsException", body
            assert r.header("x-amzn-ErrorType") == "TooManyRequestsException"
            out.append(body["Reason"])
    return out


def router_envs(c: Cluster, function: str, namespace: str) -> list[dict]:
    """The router's environments of a function (its introspection API), [] if unknown."""
    info = c.router_function(function, namespace)
    return info["pool"]["environments"] if info else []
