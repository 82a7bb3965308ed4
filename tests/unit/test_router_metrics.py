"""``Metrics.forget``: which series of a deleted function go, and that none come back."""

from __future__ import annotations

from lambdakube_router.metrics import Metrics


def lines_of(m: Metrics, function: str) -> list[str]:
    return [
        line
        for line in m.render().decode().splitlines()
        if f'function="{function}"' in line and not line.startswith("#")
    ]


def busy(m: Metrics, name: str):
    fm = m.for_function("ns", name)
    fm.result("success")
    fm.throttle("ConcurrentInvocationLimitExceeded")
    fm.cold_start("fresh", 0.1)
    fm.run_duration.observe(0.01)
    return fm


def test_forget_removes_every_series_of_that_function_only():
    m = Metrics()
    busy(m, "a")
    busy(m, "b")
    before_b = lines_of(m, "b")
    assert lines_of(m, "a")
    m.forget("ns", "a")
    assert lines_of(m, "a") == []
    assert lines_of(m, "b") == before_b


def test_a_straggler_after_forget_creates_no_series():
    """An invocation finishing on the closing pool reports a result it never had."""
    m = Metrics()
    fm = busy(m, "a")
    m.forget("ns", "a")
    fm.result("not_found")
    fm.result("success")
    fm.throttle("FunctionInvocationRateLimitExceeded")
    fm.cold_start("generic", 0.2)
    fm.cold_starts.inc()
    assert lines_of(m, "a") == []


def test_forget_of_an_unknown_function_is_a_no_op():
    m = Metrics()
    busy(m, "b")
    before = m.render()
    m.forget("ns", "never")
    assert m.render() == before
