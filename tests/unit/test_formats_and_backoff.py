"""The shared ARN, time-stamp and backoff helpers (``lambdakube.formats``, ``lambdakube.backoff``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lambdakube.backoff import Backoff
from lambdakube.formats import function_arn, parse_rfc3339, rfc3339, rfc3339_millis

NOON = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def test_function_arn_is_what_the_invoke_api_accepts():
    from lambdakube_router.invoke_api import parse_function_name  # noqa: PLC0415

    assert function_arn("team-a", "hello") == "lambdakube:team-a:function:hello"
    assert parse_function_name(function_arn("team-a", "hello"), None, "default") == ("team-a", "hello", None)


@pytest.mark.parametrize(
    "moment, text",
    [
        (NOON, "2026-01-01T12:00:00Z"),
        (NOON.astimezone(timezone(timedelta(hours=2))), "2026-01-01T12:00:00Z"),
        (NOON.timestamp(), "2026-01-01T12:00:00Z"),
    ],
    ids=["utc", "offset", "unix-time"],
)
def test_rfc3339(moment, text):
    assert rfc3339(moment) == text
    assert parse_rfc3339(text) == NOON.replace(microsecond=0)


def test_rfc3339_millis_and_empty_stamps():
    assert rfc3339_millis(NOON.timestamp()) == "2026-01-01T12:00:00.123Z"
    assert parse_rfc3339(None) is None and parse_rfc3339("") is None and parse_rfc3339("soon") is None
    assert parse_rfc3339("2026-01-01T14:00:00+02:00") == NOON.replace(microsecond=0)


BACKOFF_CASES = {
    "doubles from the first delay up to the cap": (Backoff(0.5, 4.0), [0.5, 1.0, 2.0, 4.0, 4.0]),
    "a slower factor": (Backoff(0.05, 0.5, factor=1.5), [0.05, 0.075, 0.1125, 0.16875, 0.253125, 0.3796875, 0.5]),
    "a first delay above the cap is capped": (Backoff(5.0, 1.0), [1.0, 1.0]),
}


@pytest.mark.parametrize("case", BACKOFF_CASES.values(), ids=BACKOFF_CASES.keys())
def test_backoff_sequences(case):
    backoff, expected = case
    delay, seen = 0.0, []
    for _ in expected:
        delay = backoff.next(delay)
        seen.append(delay)
    assert seen == pytest.approx(expected)
