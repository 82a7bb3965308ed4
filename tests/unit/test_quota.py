"""Namespace reservation arithmetic: a table of named cases."""

from __future__ import annotations

import pytest

from lambdakube.quota import Reservation, allocate

T1, T2, T3, T4 = (f"2026-01-01T00:00:0{i}Z" for i in range(1, 5))

CASES = {
    "no functions": dict(limit=1000, keep=100, fns=[], granted={}, rejected=[], reserved=0),
    "functions without reservations reserve nothing": dict(
        limit=1000, keep=100, fns=[("a", T1, None), ("b", T2, None)], granted={}, rejected=[], reserved=0
    ),
    "fits exactly up to the unreserved minimum": dict(
        limit=1000,
        keep=100,
        fns=[("a", T1, 500), ("b", T2, 400)],
        granted={"a": 500, "b": 400},
        rejected=[],
        reserved=900,
    ),
    "one over the line is rejected": dict(
        limit=1000,
        keep=100,
        fns=[("a", T1, 500), ("b", T2, 401)],
        granted={"a": 500, "b": 0},
        rejected=["b"],
        reserved=500,
    ),
    "oldest function wins regardless of list order": dict(
        limit=1000,
        keep=100,
        fns=[("late", T2, 600), ("early", T1, 600)],
        granted={"early": 600, "late": 0},
        rejected=["late"],
        reserved=600,
    ),
    "same timestamp: name breaks the tie": dict(
        limit=1000,
        keep=100,
        fns=[("b", T1, 600), ("a", T1, 600)],
        granted={"a": 600, "b": 0},
        rejected=["b"],
        reserved=600,
    ),
    "a later smaller reservation still fits after a rejection": dict(
        limit=1000,
        keep=100,
        fns=[("a", T1, 500), ("big", T2, 600), ("small", T3, 300)],
        granted={"a": 500, "big": 0, "small": 300},
        rejected=["big"],
        reserved=800,
    ),
    "reserved zero always fits (it disables the function)": dict(
        limit=100, keep=100, fns=[("off", T1, 0)], granted={"off": 0}, rejected=[], reserved=0
    ),
    "single reservation bigger than the namespace": dict(
        limit=1000, keep=100, fns=[("huge", T1, 5000)], granted={"huge": 0}, rejected=["huge"], reserved=0
    ),
    "no unreserved minimum": dict(
        limit=10, keep=0, fns=[("a", T1, 10), ("b", T2, 1)], granted={"a": 10, "b": 0}, rejected=["b"], reserved=10
    ),
    "mixed with unreserved functions": dict(
        limit=50,
        keep=10,
        fns=[("a", T1, 20), ("n", T2, None), ("b", T3, 20), ("c", T4, 1)],
        granted={"a": 20, "b": 20, "c": 0},
        rejected=["c"],
        reserved=40,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_allocation(case):
    alloc = allocate(case["limit"], case["keep"], [Reservation(*f) for f in case["fns"]])
    assert alloc.granted == case["granted"]
    assert alloc.rejected == case["rejected"]
    assert alloc.reserved == case["reserved"]
    assert alloc.unreserved == case["limit"] - case["reserved"]
    for name in case["granted"]:
        assert (alloc.verdict(name) is None) == (name not in case["rejected"])


def test_rejection_message_explains_the_arithmetic():
    alloc = allocate(1000, 100, [Reservation("a", T1, 500), Reservation("b", T2, 600)])
    assert alloc.verdict("b") == (
        "reservedConcurrency 600 does not fit: namespace quota 1000, already reserved 500, 100 must stay unreserved"
    )
    assert alloc.verdict("a") is None
    assert alloc.verdict("unknown") is None
