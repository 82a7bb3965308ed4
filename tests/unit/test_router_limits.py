"""Concurrency arithmetic: tables of named cases, fake clock, no I/O."""

from __future__ import annotations

import pytest

from lambdakube.models import ConcurrencyQuotaSpec, FunctionSpec
from lambdakube_router.limits import (
    CONCURRENT_EXCEEDED,
    RATE_EXCEEDED,
    RESERVED_EXCEEDED,
    NamespaceLimits,
    TokenBucket,
    plan_reservations,
)

INLINE = {"code": {"inline": {"source": "def handler(e, c):\n    return e\n"}}}


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", **INLINE, **kw})


def quota(total=1000, unreserved=100, burst=1000, period=10) -> ConcurrencyQuotaSpec:
    return ConcurrencyQuotaSpec.model_validate(
        {
            "concurrentExecutions": total,
            "minimumUnreserved": unreserved,
            "scalingRate": {"burst": burst, "periodSeconds": period},
        }
    )


@pytest.mark.parametrize(
    "name,q,requested,granted,rejected,unreserved",
    [
        ("defaults", quota(), {"a": None}, {}, [], 1000),
        ("one fits", quota(), {"a": 100}, {"a": 100}, [], 900),
        ("exactly up to minimum unreserved", quota(), {"a": 900}, {"a": 900}, [], 100),
        ("one over", quota(), {"a": 901}, {}, ["a"], 1000),
        ("first come first served", quota(), {"a": 600, "b": 400, "c": 300}, {"a": 600, "c": 300}, ["b"], 100),
        ("zero is a grant", quota(), {"a": 0}, {"a": 0}, [], 1000),
        ("small quota", quota(10, 2), {"a": 5, "b": 4}, {"a": 5}, ["b"], 5),
    ],
)
def test_plan_reservations(name, q, requested, granted, rejected, unreserved):
    plan = plan_reservations(q, requested)
    assert plan.granted == granted, name
    assert sorted(plan.rejected) == sorted(rejected), name
    assert plan.unreserved == unreserved, name
    for reason in plan.rejected.values():
        assert "does not fit" in reason and "minimumUnreserved" in reason


def ns(q=None, **fns) -> NamespaceLimits:
    limits = NamespaceLimits("default")
    limits.set_quota(q or quota(), now=0)
    for name, s in fns.items():
        limits.set_function(name, s, now=0)
    return limits


def admit(limits, name, n):
    return [limits.try_acquire(name) for _ in range(n)]


def test_reserved_is_a_cap_with_its_own_reason():
    limits = ns(a=spec(reservedConcurrency=3))
    assert admit(limits, "a", 3) == [None] * 3
    assert limits.try_acquire("a").reason == RESERVED_EXCEEDED
    limits.release("a")
    assert limits.try_acquire("a") is None


def test_reserved_zero_throttles_everything():
    limits = ns(a=spec(reservedConcurrency=0))
    assert limits.try_acquire("a").reason == RESERVED_EXCEEDED


def test_reserved_is_a_guarantee():
    limits = ns(quota(10, 2), a=spec(reservedConcurrency=4), b=spec())
    assert admit(limits, "b", 6) == [None] * 6  # unreserved pool = 10 - 4
    assert limits.try_acquire("b").reason == CONCURRENT_EXCEEDED
    assert admit(limits, "a", 4) == [None] * 4  # still available to a
    assert limits.in_flight == 10


def test_unreserved_pool_is_shared():
    limits = ns(quota(5, 0), a=spec(), b=spec())
    assert admit(limits, "a", 3) == [None] * 3
    assert admit(limits, "b", 2) == [None] * 2
    assert limits.try_acquire("a").reason == CONCURRENT_EXCEEDED
    assert limits.try_acquire("b").reason == CONCURRENT_EXCEEDED
    limits.release("a")
    assert limits.try_acquire("b") is None


def test_max_concurrency_caps_without_reservation():
    limits = ns(a=spec(maxConcurrency=2))
    assert admit(limits, "a", 2) == [None, None]
    assert limits.try_acquire("a").reason == CONCURRENT_EXCEEDED


def test_max_concurrency_below_reservation():
    limits = ns(a=spec(reservedConcurrency=5, maxConcurrency=2))
    assert admit(limits, "a", 2) == [None, None]
    assert limits.try_acquire("a").reason == CONCURRENT_EXCEEDED


def test_rejected_reservation_still_caps_and_uses_unreserved_pool():
    limits = ns(quota(10, 2), a=spec(reservedConcurrency=8), b=spec(reservedConcurrency=3))
    assert limits.functions["b"].granted is None
    assert "does not fit" in limits.functions["b"].rejected_reason
    assert admit(limits, "b", 2) == [None, None]  # unreserved pool is 10 - 8 = 2
    assert limits.try_acquire("b").reason == CONCURRENT_EXCEEDED


def test_release_after_replan_keeps_counts_consistent():
    limits = ns(quota(10, 0), a=spec(reservedConcurrency=4))
    admit(limits, "a", 2)
    limits.set_function("a", spec(), now=0)  # reservation removed while in flight
    assert limits.unreserved_in_flight == 2
    limits.release("a")
    limits.release("a")
    assert limits.unreserved_in_flight == 0 and limits.in_flight == 0


@pytest.mark.parametrize(
    "name,burst,period,takes_at,expected",
    [
        ("burst then empty", 3, 10, [0, 0, 0, 0], [True, True, True, False]),
        ("refills continuously", 2, 10, [0, 0, 0, 5, 5], [True, True, False, True, False]),
        ("capped at burst", 2, 10, [0, 100, 100, 100], [True, True, True, False]),
    ],
)
def test_token_bucket(name, burst, period, takes_at, expected):
    bucket = TokenBucket(burst, period, now=0)
    assert [bucket.take(t) for t in takes_at] == expected, name


def test_token_bucket_retry_after():
    bucket = TokenBucket(1, 10, now=0)
    assert bucket.take(0)
    assert bucket.retry_after(0) == 10
    assert bucket.retry_after(7.5) == 3


def test_scaling_token_throttle_reason():
    limits = ns(quota(burst=1, period=60), a=spec())
    assert limits.take_scaling_token("a", now=0) is None
    throttle = limits.take_scaling_token("a", now=1)
    assert throttle.reason == RATE_EXCEEDED and throttle.retry_after_seconds == 59
    assert limits.take_scaling_token("a", now=61) is None
