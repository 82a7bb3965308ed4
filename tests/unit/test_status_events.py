"""Router activity Events: rate limiting and messages (pure; fake clock, no API)."""

from __future__ import annotations

import pytest

from lambdakube_router.backends.base import FunctionRef
from lambdakube_router.activity import (
    Activity,
    ActivityRow,
    EventLimiter,
    cold_start_message,
    throttled_message,
)
from lambdakube_router.limits import CONCURRENT_EXCEEDED, RESERVED_EXCEEDED
from lambdakube_router.status_publisher import build_event

REF = FunctionRef("team-a", "hello", "uid-1")


def row(cold=0, throttles=None, inits=(), busy=0, idle=0, ref=REF) -> ActivityRow:
    return ActivityRow(ref, busy, idle, cold, dict(throttles or {}), tuple(inits))


def steps(limiter, *timeline):
    """[(now, row)] -> [[(type, reason, message)] per step]"""
    return [[(e.type, e.reason, e.message) for e in limiter.observe(r, now)] for now, r in timeline]


CASES = {
    "nothing happened: no events": dict(timeline=[(0, row()), (2, row(busy=3, idle=1))], expect=[[], []]),
    "first cold start is reported at once, with the init median": dict(
        timeline=[(0, row(1, inits=[0.012]))],
        expect=[[("Normal", "ColdStart", "1 cold start in the last 60s, init p50 12 ms")]],
    ),
    "more within the window are batched into the next event": dict(
        timeline=[
            (0, row(1, inits=[0.010])),
            (2, row(2, inits=[0.010, 0.020])),
            (30, row(4, inits=[0.010, 0.020, 0.030, 0.040])),
            (59, row(4, inits=[0.01, 0.02, 0.03, 0.04])),
            (60, row(4, inits=[0.01, 0.02, 0.03, 0.04])),
            (62, row(4, inits=[0.01, 0.02, 0.03, 0.04])),
        ],
        expect=[
            [("Normal", "ColdStart", "1 cold start in the last 60s, init p50 10 ms")],
            [],
            [],
            [],
            [("Normal", "ColdStart", "3 cold starts in the last 60s, init p50 30 ms")],
            [],
        ],
    ),
    "unknown init durations are left out of the median": dict(
        timeline=[(0, row(2, inits=[None, None]))], expect=[[("Normal", "ColdStart", "2 cold starts in the last 60s")]]
    ),
    "throttles, one reason": dict(
        timeline=[(0, row(throttles={RESERVED_EXCEEDED: 17}))],
        expect=[[("Warning", "Throttled", f"17 invocations throttled in the last 60s: {RESERVED_EXCEEDED}")]],
    ),
    "throttles, rate-limited per reason independently of cold starts": dict(
        timeline=[
            (0, row(1, {RESERVED_EXCEEDED: 1})),
            (10, row(2, {RESERVED_EXCEEDED: 3})),
            (60, row(2, {RESERVED_EXCEEDED: 3, CONCURRENT_EXCEEDED: 2})),
        ],
        expect=[
            [
                ("Normal", "ColdStart", "1 cold start in the last 60s"),
                ("Warning", "Throttled", f"1 invocation throttled in the last 60s: {RESERVED_EXCEEDED}"),
            ],
            [],
            [
                ("Normal", "ColdStart", "1 cold start in the last 60s"),
                (
                    "Warning",
                    "Throttled",
                    f"4 invocations throttled in the last 60s: {CONCURRENT_EXCEEDED} (2), {RESERVED_EXCEEDED} (2)",
                ),
            ],
        ],
    ),
    "a quiet minute, then the next one is reported at once": dict(
        timeline=[(0, row(1)), (200, row(2))],
        expect=[
            [("Normal", "ColdStart", "1 cold start in the last 60s")],
            [("Normal", "ColdStart", "1 cold start in the last 60s")],
        ],
    ),
    "counters that went down (pool recreated) count as new": dict(
        timeline=[(0, row(5)), (100, row(2))],
        expect=[
            [("Normal", "ColdStart", "5 cold starts in the last 60s")],
            [("Normal", "ColdStart", "2 cold starts in the last 60s")],
        ],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_event_limiter(case):
    assert steps(EventLimiter(60), *case["timeline"]) == case["expect"]


def test_failed_post_is_retried_next_observe_with_its_count():
    limiter = EventLimiter(60)
    [ev] = limiter.observe(row(3, inits=[0.01, 0.02, 0.03]), 0)
    limiter.failed(("team-a", "hello"), ev)
    [again] = limiter.observe(row(4, inits=[0.01, 0.02, 0.03, 0.04]), 2)
    assert again.message == "4 cold starts in the last 60s, init p50 25 ms"
    assert limiter.observe(row(5), 4) == []  # posted this time: the window applies


def test_forget_resets_the_function():
    limiter = EventLimiter(60)
    limiter.observe(row(1), 0)
    limiter.forget(("team-a", "hello"))
    assert limiter.keys() == set()
    assert [e.message for e in limiter.observe(row(1), 1)] == ["1 cold start in the last 60s"]


def test_functions_are_independent():
    limiter = EventLimiter(60)
    other = FunctionRef("team-a", "other", "uid-2")
    assert len(limiter.observe(row(1), 0)) == 1
    assert len(limiter.observe(row(1, ref=other), 1)) == 1


def test_activity_recorder():
    a = Activity()
    a.cold_start(0.5)
    a.cold_start(None)
    a.throttled(RESERVED_EXCEEDED)
    a.throttled(RESERVED_EXCEEDED)
    assert (a.cold_starts, a.throttles, list(a.inits)) == (2, {RESERVED_EXCEEDED: 2}, [0.5, None])


def test_messages():
    assert cold_start_message(3, [0.001, 0.012, 0.5], 60) == "3 cold starts in the last 60s, init p50 12 ms"
    assert throttled_message({"A": 1}, 60) == "1 invocation throttled in the last 60s: A"


def test_event_body():
    [ev] = EventLimiter(60).observe(row(throttles={RESERVED_EXCEEDED: 2}), 0)
    body = build_event("team-a", "hello", "uid-1", ev, "router-0", 1_767_225_600.0)
    assert body["involvedObject"] == {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "name": "hello",
        "namespace": "team-a",
        "uid": "uid-1",
    }
    assert (body["type"], body["reason"]) == ("Warning", "Throttled")
    assert body["source"] == {"component": "lambdakube-router"}
    assert body["reportingComponent"] == "lambdakube-router" and body["reportingInstance"] == "router-0"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert body["metadata"] == {"generateName": "hello.", "namespace": "team-a"}


def test_status_fields_are_the_routers_three():
    assert row(7, busy=2, idle=1).status == {"busy": 2, "idle": 1, "coldStarts": 7}
