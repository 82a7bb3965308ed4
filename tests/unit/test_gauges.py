"""The dashboard's extra gauges as pure rules: limits per namespace and function, queue ages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lambdakube.models import ConcurrencyQuotaSpec, FunctionSpec
from lambdakube_router import gauges
from lambdakube_router.limits import NamespaceLimits

AGE_CASES = {
    "none queued": ({}, 100.0, {}),
    "one namespace": ({"a": 40.0}, 100.0, {"a": 60.0}),
    "a clock behind the event is 0, never negative": ({"a": 101.0}, 100.0, {"a": 0.0}),
    "sorted": ({"b": 1.0, "a": 2.0}, 3.0, {"a": 1.0, "b": 2.0}),
}


@pytest.mark.parametrize("oldest,now,want", AGE_CASES.values(), ids=AGE_CASES)
def test_queue_ages(oldest, now, want):
    got = gauges.ages(oldest, now)
    assert got == want and list(got) == list(want)


def _spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate(
        {"handler": "index.handler", "code": {"inline": {"source": "def handler(e, c):\n    return 1\n"}}, **kw}
    )


def test_limit_rows():
    limits = NamespaceLimits("ns")
    limits.set_quota(ConcurrencyQuotaSpec(concurrentExecutions=50, minimumUnreserved=10), 0.0)
    limits.set_function("r", _spec(reservedConcurrency=30), 0.0)
    limits.set_function("big", _spec(reservedConcurrency=30), 0.0)  # does not fit: rejected, still capped
    limits.set_function("m", _spec(maxConcurrency=4), 0.0)
    limits.set_function("free", _spec(), 0.0)
    rows = list(gauges.limit_rows(SimpleNamespace(namespaces={"ns": limits})))
    assert rows == [
        ("ns", None, {"quota": 50, "reserved": 30, "unreserved": 20}),
        ("ns", "big", {"reserved": None, "cap": 30}),
        ("ns", "free", {"reserved": None, "cap": None}),
        ("ns", "m", {"reserved": None, "cap": 4}),
        ("ns", "r", {"reserved": 30, "cap": 30}),
    ]
