"""EventBridge schedule expressions (``lambdakube.schedule_expr``): tables with fixed
instants (no clock is read), wall times written in the zone they are read in."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from lambdakube.models import FunctionSpec
from lambdakube.schedule_expr import Cron, Rate, ScheduleError, parse, zone


def at(wall: str, tz: str = "UTC", fold: int = 0) -> float:
    return datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(tz), fold=fold).timestamp()


def wall(t: float | None, tz: str = "UTC") -> str | None:
    return None if t is None else datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat()


# (case, expression, zone, now as a wall time in zone, latest tick <= now, first tick > now)
TICKS = [
    ("every day at noon, before noon", "cron(0 12 * * ? *)", "UTC", "2026-12-04T11:59:59",
     "2026-12-03T12:00:00+00:00", "2026-12-04T12:00:00+00:00"),
    ("every day at noon, on the tick: it is the latest", "cron(0 12 * * ? *)", "UTC", "2026-12-04T12:00:00",
     "2026-12-04T12:00:00+00:00", "2026-12-05T12:00:00+00:00"),
    ("noon in Berlin is 11:00 UTC in winter", "cron(0 12 * * ? *)", "Europe/Berlin", "2026-12-04T12:30:00",
     "2026-12-04T12:00:00+01:00", "2026-12-05T12:00:00+01:00"),
    ("every 15 minutes on weekdays: Friday evening", "cron(0/15 * ? * MON-FRI *)", "UTC", "2026-12-04T23:59:00",
     "2026-12-04T23:45:00+00:00", "2026-12-07T00:00:00+00:00"),
    ("steps of a range", "cron(10-40/15 8 * * ? *)", "UTC", "2026-12-04T08:30:00",
     "2026-12-04T08:25:00+00:00", "2026-12-04T08:40:00+00:00"),
    ("lists and month names", "cron(0 9 1 JAN,JUL ? *)", "UTC", "2026-12-04T00:00:00",
     "2026-07-01T09:00:00+00:00", "2027-01-01T09:00:00+00:00"),
    ("day-of-week numbers: 1 is Sunday", "cron(0 6 ? * 1 *)", "UTC", "2026-12-04T00:00:00",
     "2026-11-29T06:00:00+00:00", "2026-12-06T06:00:00+00:00"),
    ("L: the last day of February in a leap year", "cron(0 0 L * ? *)", "UTC", "2028-02-15T00:00:00",
     "2028-01-31T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("L: the last day of a 30-day month", "cron(0 0 L * ? *)", "UTC", "2026-11-15T00:00:00",
     "2026-10-31T00:00:00+00:00", "2026-11-30T00:00:00+00:00"),
    ("31: months without a 31st are skipped", "cron(0 0 31 * ? *)", "UTC", "2026-04-01T00:00:00",
     "2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00"),
    ("29 February: every four years", "cron(0 0 29 2 ? *)", "UTC", "2026-12-04T00:00:00",
     "2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("6L: the month's last Friday", "cron(0 10 ? * 6L *)", "UTC", "2026-12-04T00:00:00",
     "2026-11-27T10:00:00+00:00", "2026-12-25T10:00:00+00:00"),
    ("3#2: the month's second Tuesday", "cron(0 10 ? * 3#2 *)", "UTC", "2026-12-04T00:00:00",
     "2026-11-10T10:00:00+00:00", "2026-12-08T10:00:00+00:00"),
    ("2#5: months without a fifth Monday are skipped", "cron(0 10 ? * MON#5 *)", "UTC", "2026-12-01T00:00:00",
     "2026-11-30T10:00:00+00:00", "2027-03-29T10:00:00+00:00"),
    ("15W: the 15th is a Sunday, so Monday the 16th", "cron(0 10 15W * ? *)", "UTC", "2026-11-01T00:00:00",
     "2026-10-15T10:00:00+00:00", "2026-11-16T10:00:00+00:00"),
    ("1W: the 1st is a Sunday, so Monday the 2nd (never the month before)", "cron(0 10 1W * ? *)", "UTC",
     "2026-10-31T00:00:00", "2026-10-01T10:00:00+00:00", "2026-11-02T10:00:00+00:00"),
    ("31W: the 31st is a Saturday, so Friday the 30th", "cron(0 10 31W * ? *)", "UTC", "2026-12-04T00:00:00",
     "2026-10-30T10:00:00+00:00", "2026-12-31T10:00:00+00:00"),
    ("LW: the month's last weekday", "cron(0 10 LW * ? *)", "UTC", "2026-12-04T00:00:00",
     "2026-11-30T10:00:00+00:00", "2026-12-31T10:00:00+00:00"),
    ("the year field", "cron(0 0 1 1 ? 2027-2028)", "UTC", "2026-12-04T00:00:00",
     None, "2027-01-01T00:00:00+00:00"),
    ("the last year has passed: no tick ever again", "cron(0 0 1 1 ? 2020)", "UTC", "2026-12-04T00:00:00",
     "2020-01-01T00:00:00+00:00", None),
    # DST, Europe/Berlin: 2026-03-29 02:00 -> 03:00 (the gap), 2026-10-25 03:00 -> 02:00 (the overlap)
    ("the gap: 02:30 does not exist on the spring-forward day and is skipped", "cron(30 2 * * ? *)",
     "Europe/Berlin", "2026-03-29T12:00:00", "2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"),
    ("the gap: an hourly cron skips 02:00 and fires at 03:00", "cron(0 * * * ? *)", "Europe/Berlin",
     "2026-03-29T01:30:00", "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"),
    ("the overlap: 02:30 happens twice and fires once, at its first", "cron(30 2 * * ? *)", "Europe/Berlin",
     "2026-10-25T01:00:00", "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00"),
    ("a rate ignores the zone: every 5 minutes since the epoch", "rate(5 minutes)", "Europe/Berlin",
     "2026-12-04T12:07:30", "2026-12-04T12:05:00+01:00", "2026-12-04T12:10:00+01:00"),
    ("rate(1 hour)", "rate(1 hour)", "UTC", "2026-12-04T12:59:59", "2026-12-04T12:00:00+00:00",
     "2026-12-04T13:00:00+00:00"),
    ("rate(1 day): midnight UTC", "rate(1 day)", "UTC", "2026-12-04T12:00:00", "2026-12-04T00:00:00+00:00",
     "2026-12-05T00:00:00+00:00"),
]  # fmt: skip


@pytest.mark.parametrize("expr,tz,now,latest,following", [c[1:] for c in TICKS], ids=[c[0] for c in TICKS])
def test_ticks(expr, tz, now, latest, following):
    parsed, z = parse(expr), zone(tz)
    t = at(now, tz)
    assert wall(parsed.latest(t, z), tz) == latest
    assert wall(parsed.next_after(t, z), tz) == following


def test_the_overlap_fires_once_even_within_it():
    """During the second 02:xx (fold 1) the latest 02:30 is still the first one: no second tick."""
    parsed, z = parse("cron(30 2 * * ? *)"), zone("Europe/Berlin")
    second_pass = at("2026-10-25T02:45:00", "Europe/Berlin", fold=1)
    first = at("2026-10-25T02:30:00", "Europe/Berlin", fold=0)
    assert parsed.latest(second_pass, z) == first
    assert parsed.next_after(first, z) == at("2026-10-26T02:30:00", "Europe/Berlin")


def test_a_test_minute_scales_rates_only():
    assert Rate(120).latest(10.5, minute_seconds=1.0) == 10.0
    assert Rate(120).next_after(10.0, minute_seconds=1.0) == 12.0
    assert isinstance(parse("cron(* * * * ? *)"), Cron)


# (case, expression, a piece of the message)
INVALID = [
    ("neither rate nor cron", "every 5 minutes", "must be rate(value unit) or cron("),
    ("rate: no unit", "rate(5)", "must be rate(value unit)"),
    ("rate: zero", "rate(0 minutes)", "positive integer"),
    ("rate: seconds are not a unit", "rate(30 seconds)", "minute(s), hour(s) or day(s)"),
    ("rate: 1 takes the singular", "rate(1 minutes)", "singular unit (minute)"),
    ("rate: above 1 takes the plural", "rate(5 minute)", "plural unit (minutes)"),
    ("cron: five fields (Unix cron)", "cron(0 12 * * *)", "has 5 fields; EventBridge's cron has 6"),
    ("cron: both day fields set", "cron(0 12 1 * MON *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron: both day fields ?", "cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron: minute 60", "cron(60 12 * * ? *)", "minutes: 60 is out of range (0-59)"),
    ("cron: hour 24", "cron(0 24 * * ? *)", "hours: 24 is out of range (0-23)"),
    ("cron: day-of-week 0 (EventBridge counts 1-7)", "cron(0 12 ? * 0 *)", "day-of-week: 0 is out of range (1-7)"),
    ("cron: a month name misspelt", "cron(0 12 1 JANUARY ? *)", "month: 'JANUARY' is not a value (1-12 or JAN-DEC)"),
    ("cron: a backwards range", "cron(0 12 ? * FRI-MON *)", "runs backwards"),
    ("cron: a zero step", "cron(0/0 12 * * ? *)", "step of '0/0' must be a positive integer"),
    ("cron: an empty list item", "cron(0,,5 12 * * ? *)", "empty list item"),
    ("cron: L in a list", "cron(0 12 1,L * ? *)", "L, LW and nW stand alone"),
    ("cron: #6", "cron(0 12 ? * 2#6 *)", "the n of day#n must be 1-5"),
    ("cron: a year before 1970", "cron(0 12 * * ? 1969)", "year: 1969 is out of range (1970-2199)"),
]  # fmt: skip


@pytest.mark.parametrize("expr,message", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_expressions_say_why(expr, message):
    with pytest.raises(ScheduleError) as info:
        parse(expr)
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "Europe/Berlin "])
def test_unknown_zones(name):
    with pytest.raises(ScheduleError, match="unknown time zone"):
        zone(name)


SPEC = {"handler": "index.handler", "code": {"inline": {"source": "def handler(e, c):\n    return 1\n"}}}


def test_the_model_judges_the_schedule():
    spec = FunctionSpec.model_validate(
        {**SPEC, "schedule": {"expression": "cron(0 12 * * ? *)", "timezone": "Europe/Berlin"}}
    )
    assert spec.schedule is not None and spec.schedule.enabled and spec.schedule.timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="a value of 1 takes the singular unit"):
        FunctionSpec.model_validate({**SPEC, "schedule": {"expression": "rate(1 minutes)"}})
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        FunctionSpec.model_validate({**SPEC, "schedule": {"expression": "rate(5 minutes)", "timezone": "Mars/Olympus"}})
    with pytest.raises(ValidationError, match="authType"):
        FunctionSpec.model_validate({**SPEC, "url": {"authType": "AWS_IAM"}})
    assert FunctionSpec.model_validate({**SPEC, "url": {}}).url.auth_type == "KUBERNETES"  # type: ignore[union-attr]
