"""Lambda's async retry rules (pure) and the destination record shape."""

from __future__ import annotations

import json

import pytest

from lambdakube_router.asyncq import policy
from lambdakube_router.asyncq.dispatcher import destination_record
from lambdakube_router.asyncq.store import StoredEvent

P = policy.RetryPolicy(function_error_delays=(60, 120), backoff_base=1, backoff_max=300)


def decide(a, outcome, now, retries=2, max_age=21600):
    return policy.after_attempt(a, outcome, now, max_retry_attempts=retries, max_age=max_age, policy=P)


@pytest.mark.parametrize(
    "name,errors,retries,finished,condition,next_at",
    [
        ("first error waits ~60s", 0, 2, False, None, 1060),
        ("second error waits ~120s", 1, 2, False, None, 1120),
        ("third error exhausts", 2, 2, True, "RetriesExhausted", None),
        ("no retries configured", 0, 0, True, "RetriesExhausted", None),
    ],
)
def test_function_error_retries(name, errors, retries, finished, condition, next_at):
    d = decide(policy.Attempts(created_at=1000, function_errors=errors), "function_error", 1000, retries)
    assert (d.finished, d.condition, d.next_attempt_at) == (finished, condition, next_at), name
    assert d.attempts.function_errors == errors + 1


def test_throttles_back_off_without_using_retries():
    a = policy.Attempts(created_at=0)
    delays = []
    now = 0.0
    for _ in range(12):
        d = decide(a, "retryable", now)
        assert not d.finished
        delays.append(d.next_attempt_at - now)
        now, a = d.next_attempt_at, d.attempts
    assert delays[:4] == [1, 2, 4, 8] and max(delays) == 300
    assert a.function_errors == 0 and a.system_retries == 12


def test_event_age_exceeded():
    a = policy.Attempts(created_at=0, system_retries=20)
    d = decide(a, "retryable", now=21500)  # +300 s would pass 21,600 s
    assert d.finished and d.condition == "EventAgeExceeded"
    assert policy.expired(a, 21601, 21600) and not policy.expired(a, 21600, 21600)
    d = decide(policy.Attempts(created_at=0), "function_error", now=100, max_age=120)
    assert d.finished and d.condition == "EventAgeExceeded"


def test_success():
    d = decide(policy.Attempts(created_at=0, function_errors=1, invocations=1), "success", 5)
    assert d.finished and d.condition == "Success" and d.attempts.invocations == 2


def test_record_shape():
    ev = StoredEvent(
        "rid",
        "ns",
        "fn",
        b'{"a":1}',
        None,
        0.0,
        0.0,
        3,
        0,
        3,
        200,
        "Unhandled",
        b'{"errorType":"E","errorMessage":"m"}',
    )
    rec = destination_record(
        ev,
        "RetriesExhausted",
        invocations=3,
        now=1700000000.5,
        status=200,
        function_error="Unhandled",
        response=ev.last_response,
    )
    assert rec == {
        "version": "1.0",
        "timestamp": "2023-11-14T22:13:20.500Z",
        "requestContext": {
            "requestId": "rid",
            "functionArn": "lambdakube:ns:function:fn",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"a": 1},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "E", "errorMessage": "m"},
    }
    json.dumps(rec)


async def test_store_takes_every_timestamp_from_its_caller(tmp_path):
    """The store reads no clock: a destination message carries the dispatcher's time."""
    from lambdakube_router.asyncq.store import AsyncStore, NewEvent, QueueMessage

    store = AsyncStore(tmp_path)
    await store.open()
    try:
        await store.enqueue(NewEvent("e1", "ns", "fn", b"{}", None, created_at=1000.0))
        (ev,) = await store.lease_due(now=1000.0, limit=1)
        await store.finish(ev, messages=[QueueMessage("ns", "q", ev.id, b"rec", created_at=1234.5)], events=[])
        (msg,) = await store.messages("ns", "q")
        assert (msg["messageId"], msg["body"], msg["createdAt"]) == ("e1", b"rec", 1234.5)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "qualifier, executed, arn, version",
    [
        pytest.param(None, None, "lambdakube:ns:function:fn", "$LATEST", id="unqualified"),
        pytest.param("3", None, "lambdakube:ns:function:fn:3", "3", id="a-version"),
        pytest.param("live", "2", "lambdakube:ns:function:fn:live", "2", id="an-alias-ran-2"),
        pytest.param("live", None, "lambdakube:ns:function:fn:live", "$LATEST", id="an-alias-never-ran"),
    ],
)
def test_record_of_a_qualified_event(qualifier, executed, arn, version):
    """Lambda's record names what the caller invoked and the version that ran."""
    ev = StoredEvent("rid", "ns", "fn", b"{}", None, 0.0, 0.0, 0, 0, 1, 200, None, b"1", qualifier)
    rec = destination_record(
        ev, "Success", invocations=1, now=0.0, status=200, function_error=None, response=b"1", executed_version=executed
    )
    assert rec["requestContext"]["functionArn"] == arn
    assert rec["responseContext"]["executedVersion"] == version


async def test_a_store_of_an_older_router_gains_the_qualifier_column(tmp_path):
    """Events written before qualifiers existed are kept, and run $LATEST as sent."""
    import sqlite3

    from lambdakube_router.asyncq.store import SCHEMA, AsyncStore, NewEvent

    old = SCHEMA.replace(",\n    qualifier TEXT\n", "\n")
    assert old != SCHEMA
    db = sqlite3.connect(tmp_path / "async.sqlite3")
    db.executescript(old)
    db.execute(
        "INSERT INTO events (id, namespace, function, payload, created_at, next_attempt_at)"
        " VALUES ('old', 'ns', 'fn', '{}', 1.0, 1.0)"
    )
    db.commit()
    db.close()
    store = AsyncStore(tmp_path)
    await store.open()
    try:
        await store.enqueue(NewEvent("new", "ns", "fn", b"{}", None, created_at=2.0, qualifier="live"))
        due = await store.lease_due(10.0, 10)
        assert {ev.id: ev.qualifier for ev in due} == {"old": None, "new": "live"}
    finally:
        await store.close()
