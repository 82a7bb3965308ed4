"""Provisioned concurrency as Lambda documents it: all N environments run before any
invoke, N concurrent invokes find them initialised, and invoke N+1 spills over to
exactly one on-demand cold start."""

from __future__ import annotations

from lambdakube.resources import labels
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for
from tests.e2e.helpers import assert_one_request_per_environment, invoke_concurrently, router_envs

N = 10


def _ready(pods: list[dict]) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def test_provisioned_environments_and_one_spill_over(release: Cluster, ns: str):
    release.apply(function_manifest("prov", recording_handler(), provisionedConcurrency=N, timeoutSeconds=30), ns)
    pods = wait_for(
        lambda: len(r := _ready(release.pods(ns, "prov", labels.ROLE_PROVISIONED))) == N and r,
        240,
        f"{N} provisioned pods Ready",
    )
    wait_for(
        lambda: [e["state"] for e in router_envs(release, "prov", ns)] == ["idle"] * N,
        60,
        "router to hold the provisioned environments idle",
    )

    first = invoke_concurrently(release, "prov", [{"sleep": 2}] * N, ns)
    assert [r.status for r in first] == [200] * N, [r.body for r in first]
    assert all(r.header("X-Init-Duration-Ms") is None for r in first)
    assert all(r.header("X-Cold-Start") == "false" for r in first)
    assert {r.header("X-Environment-Source") for r in first} == {"provisioned"}
    assert {r.json()["pod"] for r in first} == set(pods)

    second = invoke_concurrently(release, "prov", [{"sleep": 4}] * (N + 1), ns)
    assert [r.status for r in second] == [200] * (N + 1), [r.body for r in second]
    cold = [r for r in second if r.header("X-Cold-Start") == "true"]
    assert len(cold) == 1, [(r.header("X-Environment-Source"), r.json()["pod"]) for r in second]
    assert cold[0].json()["pod"] not in pods
    assert assert_one_request_per_environment(first + second) == N + 1


def test_lowering_provisioned_concurrency_removes_the_surplus(release: Cluster, ns: str):
    release.apply(function_manifest("prov", recording_handler(), provisionedConcurrency=3, timeoutSeconds=30), ns)
    wait_for(
        lambda: (
            len(release.pods(ns, "prov", labels.ROLE_PROVISIONED)) == 3
            and release.get("function", "prov", ns)["status"].get("provisioned") == 3
        ),
        120,
        "the surplus provisioned pods deleted (3 left)",
    )
    replies = invoke_concurrently(release, "prov", [{}] * 3, ns)
    assert [r.status for r in replies] == [200] * 3
