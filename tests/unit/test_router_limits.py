"""Concurrency arithmetic: tables of named cases, fake clock, no I/O."""

from __future__ import annotations

import pytest

from lambdakube.models import ConcurrencyQuotaSpec, ConcurrencyQuotaStatus, FunctionSpec
from lambdakube.quota import Reservation, allocate
from lambdakube_router.limits import (
    CONCURRENT_EXCEEDED,
    RATE_EXCEEDED,
    RESERVED_EXCEEDED,
    NamespaceLimits,
    TokenBucket,
    plan_from_status,
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
        assert "does not fit" in reason and "must stay unreserved" in reason
    assert plan.pending == {}


def test_local_mode_uses_the_operators_wording():
    plan = plan_reservations(quota(), {"a": 500, "b": 600})
    assert plan.rejected == {
        "b": "reservedConcurrency 600 does not fit: namespace quota 1000, "
        "already reserved 500, 100 must stay unreserved"
    }


# -- one arithmetic: lambdakube.quota is what both the operator and the router run --------

T1, T2, T3, T4 = (f"2026-01-01T00:00:0{i}Z" for i in range(1, 5))

ALLOCATION_CASES = {
    "no functions": (1000, 100, [], {}, []),
    "no reservations reserve nothing": (1000, 100, [("a", T1, None)], {}, []),
    "fits exactly up to the unreserved minimum": (
        1000,
        100,
        [("a", T1, 500), ("b", T2, 400)],
        {"a": 500, "b": 400},
        [],
    ),
    "one over the line is rejected": (1000, 100, [("a", T1, 500), ("b", T2, 401)], {"a": 500, "b": 0}, ["b"]),
    "oldest first regardless of list order": (
        1000,
        100,
        [("late", T2, 600), ("early", T1, 600)],
        {"early": 600, "late": 0},
        ["late"],
    ),
    "same timestamp: name breaks the tie": (1000, 100, [("b", T1, 600), ("a", T1, 600)], {"a": 600, "b": 0}, ["b"]),
    "first fit: a later smaller one still fits": (
        1000,
        100,
        [("a", T1, 500), ("big", T2, 600), ("small", T3, 300)],
        {"a": 500, "big": 0, "small": 300},
        ["big"],
    ),
    "reserved zero always fits": (100, 100, [("off", T1, 0)], {"off": 0}, []),
    "bigger than the namespace": (1000, 100, [("huge", T1, 5000)], {"huge": 0}, ["huge"]),
    "mixed with unreserved functions": (
        50,
        10,
        [("a", T1, 20), ("n", T2, None), ("b", T3, 20), ("c", T4, 1)],
        {"a": 20, "b": 20, "c": 0},
        ["c"],
    ),
}


@pytest.mark.parametrize("case", ALLOCATION_CASES.values(), ids=ALLOCATION_CASES.keys())
def test_shared_allocation(case):
    limit, keep, fns, granted, rejected = case
    alloc = allocate(limit, keep, [Reservation(*f) for f in fns])
    assert alloc.granted == granted and alloc.rejected == rejected
    assert set(alloc.messages) == set(rejected)


@pytest.mark.parametrize("case", ALLOCATION_CASES.values(), ids=ALLOCATION_CASES.keys())
def test_local_mode_equals_the_operator_in_creation_order(case):
    """Local mode: the order functions were first seen plays creationTimestamp's role."""
    limit, keep, fns, granted, rejected = case
    in_creation_order = sorted(fns, key=lambda f: (f[1], f[0]))
    plan = plan_reservations(quota(limit, keep), {n: v for n, _, v in in_creation_order})
    assert plan.granted == {n: v for n, v in granted.items() if n not in rejected}
    assert sorted(plan.rejected) == sorted(rejected)
    alloc = allocate(limit, keep, [Reservation(*f) for f in fns])
    assert plan.rejected == alloc.messages
    assert plan.unreserved == alloc.unreserved


# -- Kubernetes: the operator decides, the router applies its published status ------------


def status(granted=None, rejected=(), reasons=None) -> ConcurrencyQuotaStatus:
    return ConcurrencyQuotaStatus.model_validate(
        {"granted": granted or {}, "rejected": list(rejected), "rejectedReasons": reasons or {}}
    )


MSG_B = "reservedConcurrency 600 does not fit: namespace quota 1000, already reserved 500, 100 must stay unreserved"

STATUS_CASES = {
    "granted as requested": dict(
        requested={"a": 500}, status=status({"a": 500}), granted={"a": 500}, rejected={}, pending=[], unreserved=500
    ),
    "rejected, with the operator's message": dict(
        requested={"a": 500, "b": 600},
        status=status({"a": 500, "b": 0}, ["b"], {"b": MSG_B}),
        granted={"a": 500},
        rejected={"b": MSG_B},
        pending=[],
        unreserved=500,
    ),
    "rejected, message unavailable": dict(
        requested={"b": 600},
        status=status({"b": 0}, ["b"]),
        granted={},
        rejected={"b": "reservedConcurrency 600 rejected by the operator (see ConcurrencyQuota default status)"},
        pending=[],
        unreserved=1000,
    ),
    "not mentioned yet (just created): pending": dict(
        requested={"a": 500, "new": 100},
        status=status({"a": 500}),
        granted={"a": 500},
        rejected={},
        pending=["new"],
        unreserved=500,
    ),
    "no status at all: everything pending": dict(
        requested={"a": 500, "n": None}, status=None, granted={}, rejected={}, pending=["a"], unreserved=1000
    ),
    "granted for an older value: pending until re-decided": dict(
        requested={"a": 700}, status=status({"a": 500}), granted={}, rejected={}, pending=["a"], unreserved=1000
    ),
    "the router does not re-decide: the operator's choice wins over local order": dict(
        requested={"a": 600, "b": 300},
        status=status({"a": 0, "b": 300}, ["a"], {"a": "later"}),
        granted={"b": 300},
        rejected={"a": "later"},
        pending=[],
        unreserved=700,
    ),
    "grants beyond the current quota (quota just lowered): stale, all pending": dict(
        requested={"a": 600, "b": 600},
        status=status({"a": 600, "b": 600}),
        granted={},
        rejected={},
        pending=["a", "b"],
        unreserved=1000,
    ),
    "reserved zero granted disables": dict(
        requested={"off": 0}, status=status({"off": 0}), granted={"off": 0}, rejected={}, pending=[], unreserved=1000
    ),
    "no reservation in the spec: the status does not matter": dict(
        requested={"a": None}, status=status({"a": 500}), granted={}, rejected={}, pending=[], unreserved=1000
    ),
    "several rejections in one condition message": dict(
        requested={"b": 600, "c": 700},
        status=status({"b": 0, "c": 0}, ["b", "c"], {"b": MSG_B, "c": "other: reason; with separators"}),
        granted={},
        rejected={"b": MSG_B, "c": "other: reason; with separators"},
        pending=[],
        unreserved=1000,
    ),
}


@pytest.mark.parametrize("case", STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_plan_from_status(case):
    plan = plan_from_status(quota(), case["requested"], case["status"])
    assert plan.granted == case["granted"]
    assert plan.rejected == case["rejected"]
    assert sorted(plan.pending) == sorted(case["pending"])
    assert plan.unreserved == case["unreserved"]


def ns_k8s(q, published, **fns) -> NamespaceLimits:
    limits = ns(q, **fns)
    limits.set_published({"default": published} if published is not None else {})
    return limits


def test_operator_grant_is_reserved_and_caps_with_reserved_reason():
    limits = ns_k8s(quota(10, 2), status({"a": 2}), a=spec(reservedConcurrency=2), b=spec())
    assert admit(limits, "a", 2) == [None, None]
    assert limits.try_acquire("a").reason == RESERVED_EXCEEDED
    assert admit(limits, "b", 8) == [None] * 8  # unreserved pool = 10 - 2
    assert limits.try_acquire("b").reason == CONCURRENT_EXCEEDED


def test_operator_rejection_caps_at_request_from_unreserved_pool():
    # Locally, a (older) would be granted; the operator rejected it, and the router obeys.
    limits = ns_k8s(quota(10, 2), status({"a": 0}, ["a"], {"a": "no room"}), a=spec(reservedConcurrency=3), b=spec())
    fl = limits.functions["a"]
    assert fl.granted is None and fl.rejected_reason == "no room" and fl.cap == 3
    assert admit(limits, "a", 3) == [None] * 3
    assert limits.try_acquire("a").reason == CONCURRENT_EXCEEDED
    assert admit(limits, "b", 7) == [None] * 7  # a's 3 came out of the shared pool of 10
    assert limits.try_acquire("b").reason == CONCURRENT_EXCEEDED


def test_pending_reservation_behaves_like_a_rejected_one():
    limits = ns_k8s(quota(10, 2), None, a=spec(reservedConcurrency=2))
    fl = limits.functions["a"]
    assert fl.granted is None and fl.rejected_reason is None and "not granted yet" in fl.pending_reason
    assert admit(limits, "a", 2) == [None, None]
    assert limits.try_acquire("a").reason == CONCURRENT_EXCEEDED
    assert limits.describe("a")["reservationPending"] == fl.pending_reason


def test_published_status_change_replans_and_keeps_counts():
    limits = ns_k8s(quota(10, 2), None, a=spec(reservedConcurrency=2))
    admit(limits, "a", 1)
    assert limits.unreserved_in_flight == 1
    limits.set_published({"default": status({"a": 2})})
    assert limits.functions["a"].granted == 2 and limits.unreserved_in_flight == 0
    assert admit(limits, "a", 1) == [None]
    assert limits.try_acquire("a").reason == RESERVED_EXCEEDED
    limits.release("a")
    limits.release("a")
    assert limits.in_flight == 0 and limits.unreserved_in_flight == 0


def test_back_to_local_mode_allocates_again():
    limits = ns_k8s(quota(10, 2), status({"a": 0}, ["a"]), a=spec(reservedConcurrency=3))
    assert limits.functions["a"].granted is None
    limits.set_published(None)  # e.g. a directory source: the router decides
    assert limits.functions["a"].granted == 3


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
