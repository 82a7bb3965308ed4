"""The fate of each message of a queue batch (``pollers.queue_rules``), as tables."""

import pytest

from lambdakube_router.asyncq.store import ReceivedMessage
from lambdakube_router.invocations import ERROR, FUNCTION_ERROR, NOT_FOUND, SUCCESS, THROTTLED
from lambdakube_router.pollers import queue_rules, source
from lambdakube_router.pollers.batching import ItemFailures

NOW = 10_000.0


def msg(mid: str, receives: int = 1, age: float = 5.0) -> ReceivedMessage:
    return ReceivedMessage(
        seq=hash(mid) % 1000,
        message_id=mid,
        body=b"{}",
        created_at=NOW - age,
        receive_count=receives,
        first_receive_at=NOW - age,
        visible_at=NOW + 30,
    )


A, B, C = msg("a"), msg("b"), msg("c")
A3 = msg("a", receives=3)
OLD = msg("o", age=120)


def ids(ms):
    return sorted(m.message_id for m in ms)


# (name, batch, result, failures, max_retries, max_age, delete, to_failure, keep, release, words)
CASES = [
    ("success-deletes-all", [A, B], SUCCESS, None, None, None, ["a", "b"], [], [], [], source.OK),
    (
        "partial-response-deletes-only-successes",
        [A, B, C],
        SUCCESS,
        ItemFailures(frozenset({"b"})),
        None,
        None,
        ["a", "c"],
        [],
        ["b"],
        [],
        "PROBLEM: Function reported batch item failures",
    ),
    (
        "empty-partial-response-is-success",
        [A, B],
        SUCCESS,
        ItemFailures(),
        None,
        None,
        ["a", "b"],
        [],
        [],
        [],
        source.OK,
    ),
    (
        "invalid-partial-response-fails-all",
        [A, B],
        SUCCESS,
        ItemFailures(all_failed=True, problem="the response is not JSON"),
        None,
        None,
        [],
        [],
        ["a", "b"],
        [],
        "PROBLEM: Invalid batch item failures response: the response is not JSON",
    ),
    (
        "function-error-keeps-all",
        [A, B],
        FUNCTION_ERROR,
        None,
        None,
        None,
        [],
        [],
        ["a", "b"],
        [],
        source.FUNCTION_FAILED,
    ),
    ("router-error-keeps-all", [A], ERROR, None, 5, None, [], [], ["a"], [], source.FUNCTION_FAILED),
    (
        "retries-spent-go-to-on-failure",
        [A3, B],
        FUNCTION_ERROR,
        None,
        2,
        None,
        [],
        ["a"],
        ["b"],
        [],
        source.FUNCTION_FAILED,
    ),
    ("retries-unlimited", [A3], FUNCTION_ERROR, None, -1, None, [], [], ["a"], [], source.FUNCTION_FAILED),
    (
        "zero-retries-first-failure-is-final",
        [A],
        FUNCTION_ERROR,
        None,
        0,
        None,
        [],
        ["a"],
        [],
        [],
        source.FUNCTION_FAILED,
    ),
    ("too-old-goes-to-on-failure", [OLD], FUNCTION_ERROR, None, None, 60, [], ["o"], [], [], source.FUNCTION_FAILED),
    (
        "partial-failure-spent-goes-to-on-failure",
        [A3, B],
        SUCCESS,
        ItemFailures(frozenset({"a"})),
        2,
        None,
        ["b"],
        ["a"],
        [],
        [],
        "PROBLEM: Function reported batch item failures",
    ),
    ("throttle-releases-uncounted", [A3, B], THROTTLED, None, 0, None, [], [], [], ["a", "b"], source.THROTTLED),
    ("missing-function-releases", [A], NOT_FOUND, None, 0, None, [], [], [], ["a"], source.FUNCTION_NOT_FOUND),
]


@pytest.mark.parametrize(
    "batch, result, failures, max_retries, max_age, delete, to_failure, keep, release, words",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_settle_table(batch, result, failures, max_retries, max_age, delete, to_failure, keep, release, words):
    s = queue_rules.settle(
        batch, result=result, failures=failures, max_retries=max_retries, max_age=max_age, now=NOW, retry_at=NOW + 1
    )
    assert (ids(s.delete), ids(s.to_failure), ids(s.keep), ids(s.release)) == (delete, to_failure, keep, release)
    assert s.result == words
    assert (s.retry_at == NOW + 1) == bool(release)
    assert sorted(s.reasons) == to_failure
    assert set(s.reasons.values()) <= {"RetryAttemptsExhausted", "RecordAgeExceeded"}
    if "o" in to_failure:
        assert s.reasons["o"] == "RecordAgeExceeded"


def test_too_old_records_are_not_invoked():
    fresh, old = queue_rules.expired_on_receive([A, OLD], max_age=60, now=NOW)
    assert (ids(fresh), ids(old)) == (["a"], ["o"])
    assert queue_rules.expired_on_receive([A, OLD], max_age=-1, now=NOW) == ([A, OLD], [])


# (name, visible, batch_size, cap, want)
SCALING = [
    ("idle-is-zero", 0, 10, 5, 0),
    ("one-message-one-poller", 1, 10, 5, 1),
    ("one-per-batch", 35, 10, 5, 4),
    ("capped", 1000, 10, 5, 5),
    ("reserved-zero-stops", 10, 10, 0, 0),
]


@pytest.mark.parametrize("visible, batch_size, cap, want", [c[1:] for c in SCALING], ids=[c[0] for c in SCALING])
def test_pollers_scale_with_backlog(visible, batch_size, cap, want):
    assert queue_rules.pollers_wanted(visible=visible, batch_size=batch_size, cap=cap) == want
