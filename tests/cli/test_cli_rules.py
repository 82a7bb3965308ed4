"""The CLI's pure parts as tables of named cases: exit codes, where the router is, what a
follower prints, bench's numbers, kubectl's AGE, and the router's recent-window summary."""

from __future__ import annotations

import pytest

from lambdakube_router import recent
from lambdakube_router.ctl import config, exits, render, stats, tail
from lambdakube_router.limits import NamespaceLimits
from lambdakube.models import ConcurrencyQuotaSpec, FunctionSpec

EXIT_CASES = {
    "result": (200, {}, 0),
    "function error": (200, {"X-Amz-Function-Error": "Unhandled"}, 1),
    "function error, any case": (200, {"x-amz-function-error": "Unhandled"}, 1),
    "event accepted": (202, {}, 0),
    "dry run": (204, {}, 0),
    "throttled": (429, {}, 3),
    "not found": (404, {}, 1),
    "refused": (401, {}, 1),
    "environment failure": (502, {}, 1),
    "no answer": (None, {}, 1),
}


@pytest.mark.parametrize("status,headers,want", EXIT_CASES.values(), ids=EXIT_CASES)
def test_exit_code_of_an_answer(status, headers, want):
    assert exits.of_answer(status, headers) == want


WORST_CASES = {
    "all fine": ([0, 0], 0),
    "a throttle": ([0, 3, 0], 3),
    "an error wins over a throttle": ([3, 1, 0], 1),
    "nothing": ([], 0),
}


@pytest.mark.parametrize("codes,want", WORST_CASES.values(), ids=WORST_CASES)
def test_worst_of_many(codes, want):
    assert exits.worst(codes) == want


RESOLVE_CASES = {
    "defaults: make dev": ({}, {}, ("http://127.0.0.1:9000", None, "default")),
    "environment": (
        {},
        {"LAMBDAKUBE_ROUTER_URL": "http://r:9000/", "LAMBDAKUBE_TOKEN": "t", "LAMBDAKUBE_NAMESPACE": "team-a"},
        ("http://r:9000", "t", "team-a"),
    ),
    "flags win": (
        {"url": "http://f:1", "token": "ft", "namespace": "ns"},
        {"LAMBDAKUBE_ROUTER_URL": "http://r:9000", "LAMBDAKUBE_TOKEN": "t"},
        ("http://f:1", "ft", "ns"),
    ),
    "empty is unset": (
        {},
        {"LAMBDAKUBE_TOKEN": "", "LAMBDAKUBE_ROUTER_URL": ""},
        ("http://127.0.0.1:9000", None, "default"),
    ),
}


@pytest.mark.parametrize("flags,environ,want", RESOLVE_CASES.values(), ids=RESOLVE_CASES)
def test_where_the_router_is(flags, environ, want):
    kw = {"url": None, "token": None, "namespace": None, **flags}
    t = config.resolve(**kw, environ=environ)
    assert (t.url, t.token, t.namespace) == want


R1 = "START RequestId: 1\nhello 1\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 1 ms\n"
R2 = "START RequestId: 2\nhello 2\nEND RequestId: 2\nREPORT RequestId: 2\tDuration: 1 ms\n"
NEW_TEXT_CASES = {
    "first look: everything": ("", R1, R1),
    "nothing new": (R1, R1, ""),
    "appended": (R1, R1 + R2, R2),
    "the window moved on": ("x" * 600 + R1, R1[10:] + R2, R2),
    "rotated away (no overlap): all of it": (R1, R2, R2),
    "window shorter than the anchor, moved": (R1, R1[5:] + R2, R2),
}


@pytest.mark.parametrize("previous,current,want", NEW_TEXT_CASES.values(), ids=NEW_TEXT_CASES)
def test_what_a_follower_prints(previous, current, want):
    assert tail.new_text(previous, current) == want


def test_prefixed_lines():
    assert tail.prefixed("e1", "a\n\nb\n") == ["[e1] a", "[e1] b"]


PERCENTILE_CASES = {
    "empty": ([], 50, None),
    "one": ([3.0], 99, 3.0),
    "median of four (nearest rank)": ([4.0, 1.0, 3.0, 2.0], 50, 2.0),
    "p99 of a hundred": ([float(i) for i in range(1, 101)], 99, 99.0),
    "p100": ([1.0, 2.0], 100, 2.0),
}


@pytest.mark.parametrize("values,p,want", PERCENTILE_CASES.values(), ids=PERCENTILE_CASES)
def test_percentile(values, p, want):
    assert stats.percentile(values, p) == want
    assert recent.percentile(sorted(values), p / 100) == want


def test_bench_summary_splits_cold_and_warm():
    samples = [
        stats.Sample(0.100, 200, 0, True),
        stats.Sample(0.002, 200, 0, False),
        stats.Sample(0.004, 200, 0, False),
        stats.Sample(0.003, 200, 1, False),  # a function error
        stats.Sample(0.001, 429, 3, None),
        stats.Sample(0.001, None, 1, None),  # no answer
    ]
    s = stats.summarize(samples, 2.0, concurrency=2, asked=6)
    assert (s["completed"], s["succeeded"], s["functionErrors"], s["throttled"], s["errors"]) == (6, 3, 1, 1, 1)
    assert s["cold"] == {"count": 1, "p50Ms": 100.0, "p90Ms": 100.0, "p99Ms": 100.0, "maxMs": 100.0}
    assert (s["warm"]["count"], s["warm"]["p50Ms"], s["warm"]["maxMs"]) == (2, 2.0, 4.0)
    assert s["perSecond"] == 3.0


AGE_CASES = {
    "unknown": (None, "-"),
    "seconds": (42.9, "42s"),
    "minutes and seconds": (303, "5m3s"),
    "minutes": (660, "11m"),
    "hours": (7440, "2h4m"),
    "days": (3 * 86400 + 4 * 3600, "3d4h"),
}


@pytest.mark.parametrize("seconds,want", AGE_CASES.values(), ids=AGE_CASES)
def test_kubectl_age(seconds, want):
    assert render.duration(seconds) == want


def test_table_pads_like_kubectl():
    assert render.table(("NAME", "READY"), [["hello", 1], ["x", None]]) == "NAME    READY\nhello   1\nx       -"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


WINDOW_CASES = {
    # (samples: (time, run seconds | throttle reason), now, want p50 ms, p99 ms, throttles)
    "nothing yet": ([], 10.0, None, None, {}),
    "runs in the window": ([(1.0, 0.001), (2.0, 0.003), (3.0, 0.002)], 10.0, 2.0, 3.0, {}),
    "old runs fall out": ([(1.0, 0.100), (400.0, 0.001)], 401.0, 1.0, 1.0, {}),
    "throttles by reason": (
        [(1.0, "ConcurrentInvocationLimitExceeded"), (2.0, "ConcurrentInvocationLimitExceeded"), (3.0, "X")],
        5.0,
        None,
        None,
        {"ConcurrentInvocationLimitExceeded": 2, "X": 1},
    ),
}


@pytest.mark.parametrize("samples,now,p50,p99,throttles", WINDOW_CASES.values(), ids=WINDOW_CASES)
def test_recent_window(samples, now, p50, p99, throttles):
    clock = Clock()
    ring = recent.Recent(clock)
    for at, value in samples:
        clock.now = at
        ring.ran(value) if isinstance(value, float) else ring.throttled(value)
    s = recent.summary(ring, now, window=300.0)
    assert (s["p50Ms"], s["p99Ms"], s["throttles"]) == (p50, p99, throttles)
    if throttles:
        assert s["lastThrottles"][0] == {"ageSeconds": 2.0, "reason": "X"}  # newest first


def test_recent_rings_are_bounded():
    ring = recent.Recent(Clock())
    for _ in range(recent.DURATIONS + 10):
        ring.ran(0.001)
        ring.throttled("R")
    assert len(ring.durations) == recent.DURATIONS and len(ring.throttles) == recent.THROTTLES


def test_quota_view_splits_reserved_and_unreserved():
    from lambdakube_router import overview

    limits = NamespaceLimits("ns")
    limits.set_quota(ConcurrencyQuotaSpec(concurrentExecutions=20, minimumUnreserved=5), 0.0)
    limits.set_function("big", FunctionSpec.model_validate(_spec(reservedConcurrency=10)), 0.0)
    limits.set_function("huge", FunctionSpec.model_validate(_spec(reservedConcurrency=10)), 0.0)
    limits.set_function("free", FunctionSpec.model_validate(_spec()), 0.0)
    assert limits.try_acquire("big") is None and limits.try_acquire("free") is None
    q = overview.quota_view(limits)
    assert (q["reserved"], q["reservedInFlight"], q["unreserved"], q["unreservedInFlight"]) == (10, 1, 10, 1)
    assert q["granted"] == {"big": 10} and list(q["rejected"]) == ["huge"] and q["inFlight"] == 2


def _spec(**kw) -> dict:
    return {"handler": "index.handler", "code": {"inline": {"source": "def handler(e, c):\n    return 1\n"}}, **kw}


@pytest.mark.parametrize(
    "follow, want_tail",
    [
        pytest.param(False, ["--limit-bytes=4096"], id="once: the end of each pod's log"),
        pytest.param(True, ["--follow"], id="follow: everything new"),
    ],
)
def test_cluster_logs_are_the_pods_through_kubectl(follow, want_tail):
    from lambdakube_router.ctl.commands import kubectl_logs_argv

    argv = kubectl_logs_argv("/bin/kubectl", "team-a", "greeter", follow, 4096)
    assert argv == [
        "/bin/kubectl", "logs", "-n", "team-a", "-l", "lambdakube.dev/function=greeter", "--prefix",
        "--max-log-requests=50", *want_tail,
    ]  # fmt: skip
