"""The Kafka partition rules (``pollers.kafka_rules``) as tables with a fixed clock: which
records form the next batch, and what an invocation's outcome commits, retries, bisects
or sends to onFailure. The driver and the real broker are tested in tests/kafka."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest

from lambdakube.backoff import Backoff
from lambdakube_router.pollers import kafka_rules as r
from lambdakube_router.pollers.kafka_rules import PartitionState as S
from lambdakube_router.pollers.kafka_rules import Settings

NOW = 1_800_000_000.0  # wall seconds; the monotonic clock in these tables is 100.0
MONO = 100.0


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int  # ms


def recs(first: int, last: int, *, age: float = 1.0) -> list[Rec]:
    """Records first..last (inclusive), ``age`` seconds old at NOW."""
    return [Rec(o, int((NOW - age) * 1000)) for o in range(first, last + 1)]


def offsets(batch) -> list[int] | None:
    return None if batch is None else [x.offset for x in batch.records]


# -- next_batch: (name, records, state, settings, expected kind, expected offsets) -----------

NEXT = [
    ("nothing buffered", [], S(), Settings(), None, None),
    ("a full batch of batch_size", recs(0, 9), S(), Settings(batch_size=4), r.Invoke, [0, 1, 2, 3]),
    ("fewer than batch_size: all of them", recs(5, 6), S(), Settings(batch_size=4), r.Invoke, [5, 6]),
    ("bisect limit halves the batch", recs(0, 9), S(limit=2, until=3), Settings(batch_size=4), r.Invoke, [0, 1]),
    ("a retry holds only the failed batch's records", recs(2, 9), S(until=3), Settings(batch_size=4), r.Invoke, [2, 3]),
    ("a window committed past is ignored", recs(7, 9), S(until=3), Settings(batch_size=4), r.Invoke, [7, 8, 9]),
    (
        "old records at the head expire",
        recs(0, 1, age=120) + recs(2, 3, age=5),
        S(),
        Settings(max_record_age=60),
        r.Expired,
        [0, 1],
    ),
    (
        "only the head expires: an old record behind a young one waits its turn",
        recs(0, 0, age=5) + recs(1, 1, age=120),
        S(),
        Settings(max_record_age=60),
        r.Invoke,
        [0, 1],
    ),
    ("no age limit: old records are invoked", recs(0, 1, age=10**6), S(), Settings(), r.Invoke, [0, 1]),
]


@pytest.mark.parametrize("name,records,state,settings,kind,want", NEXT, ids=[c[0] for c in NEXT])
@pytest.mark.parametrize("container", [list, deque])  # the driver holds a deque
def test_next_batch(name, records, state, settings, kind, want, container):
    got = r.next_batch(container(records), state, settings, NOW)
    assert (type(got) if got is not None else None) is kind
    assert offsets(got) == want


# -- after_invoke: (name, state, batch, outcome, kwargs, settings, want step) ------------------

B = Backoff(initial=1.0, maximum=8.0)
RB = Backoff(initial=0.5, maximum=2.0)
POISON = Settings(batch_size=4, max_retry_attempts=2, backoff=B, retry_backoff=RB)
BISECT = Settings(batch_size=4, max_retry_attempts=0, bisect=True, backoff=B, retry_backoff=RB)

AFTER = [
    ("success commits past the batch", S(), recs(0, 3), r.SUCCESS, {}, POISON, r.Step(S(), commit=4)),
    (
        "success of a bisect half keeps the window for the rest",
        S(limit=2, until=3),
        recs(0, 1),
        r.SUCCESS,
        {},
        BISECT,
        r.Step(S(limit=2, until=3), commit=2),
    ),
    (
        "success at the window's end ends the bisect",
        S(limit=2, until=3),
        recs(2, 3),
        r.SUCCESS,
        {},
        BISECT,
        r.Step(S(), commit=4),
    ),
    (
        "a function error spends a retry, pins the batch and waits a little",
        S(),
        recs(0, 3),
        r.FUNCTION_ERROR,
        {},
        POISON,
        r.Step(S(attempts=1, until=3, retry_wait=0.5, not_before=MONO + 0.5)),
    ),
    (
        "retries in a row wait longer, up to the cap",
        S(attempts=1, until=3, retry_wait=2.0),
        recs(0, 3),
        r.FUNCTION_ERROR,
        {},
        POISON,
        r.Step(S(attempts=2, until=3, retry_wait=2.0, not_before=MONO + 2.0)),
    ),
    (
        "the last retry spent: the batch goes to onFailure and the partition moves on",
        S(attempts=2, until=3, retry_wait=1.0),
        recs(0, 3),
        r.FUNCTION_ERROR,
        {},
        POISON,
        r.Step(S(), commit=4, on_failure=recs(0, 3), condition=r.RETRIES_EXHAUSTED),
    ),
    (
        "retries -1: never exhausted",
        S(attempts=10_000, until=3),
        recs(0, 3),
        r.FUNCTION_ERROR,
        {},
        Settings(batch_size=4, max_retry_attempts=-1, retry_backoff=RB),
        r.Step(S(attempts=10_001, until=3, retry_wait=0.5, not_before=MONO + 0.5)),
    ),
    (
        "bisect splits a failed batch without spending a retry",
        S(),
        recs(0, 3),
        r.FUNCTION_ERROR,
        {},
        BISECT,
        r.Step(S(limit=2, until=3)),
    ),
    (
        "bisect of an odd batch: the first half is the larger",
        S(),
        recs(0, 2),
        r.FUNCTION_ERROR,
        {},
        BISECT,
        r.Step(S(limit=2, until=2)),
    ),
    (
        "a half fails again: split again inside the same window",
        S(limit=2, until=3),
        recs(2, 3),
        r.FUNCTION_ERROR,
        {},
        BISECT,
        r.Step(S(limit=1, until=3)),
    ),
    (
        "a single record cannot be split: retries 0 sends it to onFailure, the window goes on",
        S(limit=1, until=3),
        recs(2, 2),
        r.FUNCTION_ERROR,
        {},
        BISECT,
        r.Step(S(limit=1, until=3), commit=3, on_failure=recs(2, 2), condition=r.RETRIES_EXHAUSTED),
    ),
    (
        "partial response commits up to the first failure and retries from it",
        S(),
        recs(0, 3),
        r.SUCCESS,
        {"first_failed": 2},
        POISON,
        r.Step(S(attempts=1, until=3, retry_wait=0.5, not_before=MONO + 0.5), commit=2),
    ),
    (
        "partial response on the last retry: the failed rest goes to onFailure",
        S(attempts=2, until=3),
        recs(2, 3),
        r.SUCCESS,
        {"first_failed": 2},
        POISON,
        r.Step(S(), commit=4, on_failure=recs(2, 3), condition=r.RETRIES_EXHAUSTED),
    ),
    (
        "a malformed partial response fails the whole batch",
        S(),
        recs(0, 3),
        r.SUCCESS,
        {"first_failed": r.WHOLE_BATCH},
        POISON,
        r.Step(S(attempts=1, until=3, retry_wait=0.5, not_before=MONO + 0.5)),
    ),
    (
        "a throttle returns the batch: no retry spent, backoff starts",
        S(attempts=1, until=3),
        recs(0, 3),
        r.THROTTLED,
        {},
        POISON,
        r.Step(S(attempts=1, until=3, system_retries=1, last_wait=1.0, not_before=MONO + 1.0)),
    ),
    (
        "throttles in a row double the wait up to the cap",
        S(system_retries=3, last_wait=8.0, not_before=MONO),
        recs(0, 3),
        r.THROTTLED,
        {},
        POISON,
        r.Step(S(system_retries=4, last_wait=8.0, not_before=MONO + 8.0)),
    ),
    (
        "a throttle's Retry-After is honoured (within the cap)",
        S(),
        recs(0, 3),
        r.THROTTLED,
        {"retry_after": 5.0},
        POISON,
        r.Step(S(system_retries=1, last_wait=5.0, not_before=MONO + 5.0)),
    ),
    (
        "a router failure is retried like a throttle",
        S(),
        recs(0, 3),
        r.SYSTEM_ERROR,
        {},
        POISON,
        r.Step(S(system_retries=1, last_wait=1.0, not_before=MONO + 1.0)),
    ),
    (
        "an invocation that reaches the function resets the backoff",
        S(system_retries=4, last_wait=8.0, not_before=MONO),
        recs(0, 3),
        r.SUCCESS,
        {},
        POISON,
        r.Step(S(), commit=4),
    ),
]


@pytest.mark.parametrize("name,state,batch,outcome,kwargs,settings,want", AFTER, ids=[c[0] for c in AFTER])
def test_after_invoke(name, state, batch, outcome, kwargs, settings, want):
    assert r.after_invoke(state, batch, outcome, settings, MONO, **kwargs) == want


def test_after_expired_commits_past_and_names_the_age():
    step = r.after_expired(S(attempts=1, until=1), r.Expired(recs(0, 1)))
    assert step == r.Step(S(), commit=2, on_failure=recs(0, 1), condition=r.RECORD_AGE_EXCEEDED)


# -- a poison record through the rules alone, start to end ----------------------------------


def drive(records: list[Rec], settings: Settings, bad: set[int], max_steps: int = 100):
    """Run the rules over ``records`` with a handler that fails any batch holding a
    ``bad`` offset: the invocations' offsets and the records sent to onFailure."""
    state, pending, calls, failed = S(), list(records), [], []
    for _ in range(max_steps):
        batch = r.next_batch(pending, state, settings, NOW)
        if batch is None:
            return calls, failed
        if isinstance(batch, r.Expired):
            step = r.after_expired(state, batch)
        else:
            calls.append([x.offset for x in batch.records])
            outcome = r.FUNCTION_ERROR if bad & {x.offset for x in batch.records} else r.SUCCESS
            step = r.after_invoke(state, batch.records, outcome, settings, MONO)
        if step.on_failure:
            failed += [x.offset for x in step.on_failure]
        if step.commit is not None:
            pending = [x for x in pending if x.offset >= step.commit]
        state = step.state
    raise AssertionError("did not finish")


def test_bisect_isolates_the_poison_record_and_the_rest_succeeds():
    calls, failed = drive(recs(0, 7), Settings(batch_size=8, max_retry_attempts=1, bisect=True), bad={5})
    assert failed == [5]
    assert calls == [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [4, 5],
        [4],
        [5],
        [5],  # its one retry
        [6],
        [7],
    ]


def test_without_bisect_the_whole_batch_goes_after_its_retries():
    calls, failed = drive(recs(0, 3), Settings(batch_size=4, max_retry_attempts=2), bad={1})
    assert calls == [[0, 1, 2, 3]] * 3
    assert failed == [0, 1, 2, 3]


# -- reading results ------------------------------------------------------------------------

PARTIAL = [
    ("no body", b"", None),
    ("null", b"null", None),
    ("no key", b'{"ok": true}', None),
    ("empty list", b'{"batchItemFailures": []}', None),
    ("the lowest of several", b'{"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}', 11),
    ("an offset not in the batch", b'{"batchItemFailures": [{"itemIdentifier": "99"}]}', r.WHOLE_BATCH),
    ("an identifier that is a number, not a string", b'{"batchItemFailures": [{"itemIdentifier": 11}]}', r.WHOLE_BATCH),
    ("not JSON", b"oops", r.WHOLE_BATCH),
]


@pytest.mark.parametrize("name,body,want", PARTIAL, ids=[c[0] for c in PARTIAL])
def test_first_failed_offset(name, body, want):
    assert r.first_failed_offset(body, [10, 11, 12]) == want


CLASSIFY = [
    ("success", "success", 200, r.SUCCESS),
    ("function error", "function_error", 200, r.FUNCTION_ERROR),
    ("throttle", "throttled", 429, r.THROTTLED),
    ("payload too large is the batch's fault", "error", 413, r.FUNCTION_ERROR),
    ("invalid payload is the batch's fault", "error", 400, r.FUNCTION_ERROR),
    ("environment failure is the router's", "error", 502, r.SYSTEM_ERROR),
    ("function unknown for now", "not_found", 404, r.SYSTEM_ERROR),
]


@pytest.mark.parametrize("name,result,status,want", CLASSIFY, ids=[c[0] for c in CLASSIFY])
def test_classify(name, result, status, want):
    assert r.classify(result, status) == want


# -- the mapping's fields as the rules' settings --------------------------------------------

BASE = {
    "functionName": "fn",
    "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:9092"]}},
    "topics": ["orders"],
    "startingPosition": "TRIM_HORIZON",
}
SETTINGS = [
    ("Lambda's stream defaults", {}, Settings(batch_size=100, max_retry_attempts=-1, max_record_age=None)),
    ("age -1 is no limit", {"maximumRecordAgeInSeconds": -1}, Settings(max_record_age=None)),
    (
        "age and retries",
        {"maximumRecordAgeInSeconds": 60, "maximumRetryAttempts": 0},
        Settings(max_retry_attempts=0, max_record_age=60.0),
    ),
    ("bisect", {"bisectBatchOnFunctionError": True, "batchSize": 7}, Settings(batch_size=7, bisect=True)),
    ("partial responses", {"functionResponseTypes": ["ReportBatchItemFailures"]}, Settings(report_item_failures=True)),
]


@pytest.mark.parametrize("name,fields,want", SETTINGS, ids=[c[0] for c in SETTINGS])
def test_settings_of_a_mapping(name, fields, want):
    from lambdakube.models import EventSourceMappingSpec
    from lambdakube_router.pollers.kafka import settings_of

    assert settings_of(EventSourceMappingSpec.model_validate({**BASE, **fields})) == want
