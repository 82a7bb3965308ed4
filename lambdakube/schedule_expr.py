"""EventBridge schedule expressions: ``rate(...)`` and ``cron(...)``, parsed and ticked.

Pure (no clock, no I/O): ``parse`` turns an expression into a ``Rate`` or a ``Cron``,
or raises ``ScheduleError`` with a message that names the field and what it allows;
``latest(now, tz)`` is the last tick at or before ``now`` and ``next_after(t, tz)`` the
first one after ``t`` (Unix seconds). The router's scheduler needs only ``latest``: it
fires a function when its latest tick is newer than the one it last fired.

The grammar is EventBridge's (and EventBridge Scheduler's):

- ``rate(value unit)``: ``unit`` is ``minute``/``hour``/``day`` for 1, ``minutes``/
  ``hours``/``days`` above. Ticks are the multiples of the period since the Unix epoch
  (EventBridge counts from the rule's creation; a fixed anchor makes every router, and
  every restart, agree on the ticks without storing when the Function was created). A
  rate ignores the time zone.
- ``cron(minutes hours day-of-month month day-of-week year)``: ranges ``a-b``, lists
  ``a,b``, steps ``a/n``, ``*/n`` and ``a-b/n``; months ``1-12`` or ``JAN-DEC``; days of
  the week ``1-7`` = ``SUN-SAT``; ``?`` in exactly one of day-of-month and
  day-of-week; ``L`` (last day of the month, or as ``5L`` the month's last Thursday),
  ``W`` (``15W``: the weekday nearest the 15th, within the month, none in a month
  without that day; ``LW``: the last weekday), ``#`` (``3#2``: the month's second Tuesday); years 1970-2199.
- Time zones (``zoneinfo``): a cron's fields are wall-clock time in the zone. As
  EventBridge Scheduler documents, a wall time that does not exist (the spring-forward
  gap) is skipped, and one that happens twice (the fall-back overlap) fires once, at
  its first occurrence.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTE = 60.0
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: n for n, name in enumerate(("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC").split(), 1)}
_WEEKDAYS = {name: n for n, name in enumerate(("SUN MON TUE WED THU FRI SAT").split(), 1)}
_YEARS = (1970, 2199)
#: How far a search for a tick goes (a ``cron`` on 29 February needs up to 8 years).
_HORIZON_YEARS = 10
#: The largest shift a zone's offset makes at once (hours): a search starts this far
#: beyond its bound in wall time, so that a fold never hides a tick.
_MAX_SHIFT = timedelta(hours=3)

TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"


class ScheduleError(ValueError):
    """An expression or time zone that cannot be scheduled; the message says why."""


@dataclass(frozen=True)
class Rate:
    seconds: int

    def latest(self, now: float, tz: ZoneInfo | None = None, *, minute_seconds: float = MINUTE) -> float:
        period = self.seconds / MINUTE * minute_seconds
        return (now // period) * period

    def next_after(self, t: float, tz: ZoneInfo | None = None, *, minute_seconds: float = MINUTE) -> float:
        return self.latest(t, tz, minute_seconds=minute_seconds) + self.seconds / MINUTE * minute_seconds


@dataclass(frozen=True)
class DayOfMonth:
    """``days``: plain days (may exceed the month: skipped); ``last``: ``L``;
    ``last_weekday``: ``LW``; ``nearest_weekday``: ``15W``."""

    days: frozenset[int] = frozenset()
    last: bool = False
    last_weekday: bool = False
    nearest_weekday: int | None = None

    def in_month(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        if self.last:
            return {length}
        if self.last_weekday:
            day = length
            while _weekday(year, month, day) in (1, 7):
                day -= 1
            return {day}
        if self.nearest_weekday is not None:  # a month without that day has none (as "31")
            day = self.nearest_weekday
            return {_nearest_weekday(year, month, day, length)} if day <= length else set()
        return {d for d in self.days if d <= length}


@dataclass(frozen=True)
class DayOfWeek:
    """``days``: 1-7 = SUN-SAT; ``last_of``: ``5L`` (the month's last Thursday);
    ``nth``: ``3#2`` as (3, 2)."""

    days: frozenset[int] = frozenset()
    last_of: int | None = None
    nth: tuple[int, int] | None = None

    def in_month(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        if self.last_of is not None:
            day = length
            while _weekday(year, month, day) != self.last_of:
                day -= 1
            return {day}
        if self.nth is not None:
            weekday, n = self.nth
            first = next(d for d in range(1, 8) if _weekday(year, month, d) == weekday)
            day = first + 7 * (n - 1)
            return {day} if day <= length else set()
        return {d for d in range(1, length + 1) if _weekday(year, month, d) in self.days}


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    #: Exactly one of the two is set (the other field was ``?``).
    day_of_month: DayOfMonth | None
    day_of_week: DayOfWeek | None

    def days(self, year: int, month: int) -> set[int]:
        if self.day_of_month is not None:
            return self.day_of_month.in_month(year, month)
        assert self.day_of_week is not None
        return self.day_of_week.in_month(year, month)

    def _walls(self, start: datetime, descending: bool) -> Iterator[datetime]:
        """Matching wall times (naive), from ``start`` on in wall-clock order (backwards
        when ``descending``), within ``_HORIZON_YEARS``."""

        def beyond(value: tuple, bound: tuple) -> bool:
            return value > bound if descending else value < bound

        years = [y for y in self.years if abs(y - start.year) <= _HORIZON_YEARS]
        for year in sorted(years, reverse=descending):
            if beyond((year,), (start.year,)):
                continue
            for month in sorted(self.months, reverse=descending):
                if beyond((year, month), (start.year, start.month)):
                    continue
                for day in sorted(self.days(year, month), reverse=descending):
                    if beyond((year, month, day), (start.year, start.month, start.day)):
                        continue
                    for hour in sorted(self.hours, reverse=descending):
                        for minute in sorted(self.minutes, reverse=descending):
                            wall = datetime(year, month, day, hour, minute)
                            if not beyond((wall,), (start,)):
                                yield wall

    def latest(self, now: float, tz: ZoneInfo | None = None, *, minute_seconds: float = MINUTE) -> float | None:
        zone = tz or ZoneInfo("UTC")
        start = (datetime.fromtimestamp(now, zone) + _MAX_SHIFT).replace(tzinfo=None)
        for wall in self._walls(start, descending=True):
            instant = _instant(wall, zone)
            if instant is not None and instant <= now:
                return instant
        return None

    def next_after(self, t: float, tz: ZoneInfo | None = None, *, minute_seconds: float = MINUTE) -> float | None:
        zone = tz or ZoneInfo("UTC")
        start = (datetime.fromtimestamp(t, zone) - _MAX_SHIFT).replace(tzinfo=None, second=0, microsecond=0)
        for wall in self._walls(start, descending=False):
            instant = _instant(wall, zone)
            if instant is not None and instant > t:
                return instant
        return None


Expression = Rate | Cron


def _weekday(year: int, month: int, day: int) -> int:
    """1-7 = SUN-SAT (EventBridge's numbering)."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """Quartz's ``W``: the weekday nearest ``day``, never leaving the month."""
    weekday = _weekday(year, month, day)
    if weekday == 7:  # Saturday: Friday, or Monday when the 1st
        return day + 2 if day == 1 else day - 1
    if weekday == 1:  # Sunday: Monday, or Friday when the month's last day
        return day - 2 if day == length else day + 1
    return day


def _instant(wall: datetime, zone: ZoneInfo) -> float | None:
    """The first instant ``wall`` shows in ``zone``; None when the wall time does not
    exist there (a spring-forward gap: the round trip lands elsewhere)."""
    aware = wall.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != wall:
        return None
    return aware.timestamp()


def zone(name: str) -> ZoneInfo:
    """The time zone named ``name`` (IANA), or ``ScheduleError``."""
    if not re.match(TIMEZONE_PATTERN, name) or ".." in name:
        raise ScheduleError(f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin") from None


def parse(expression: str) -> Expression:
    text = expression.strip()
    match = re.fullmatch(r"(rate|cron)\((.*)\)", text)
    if not match:
        raise ScheduleError(
            f"schedule expression {expression!r} must be rate(value unit) or"
            " cron(minutes hours day-of-month month day-of-week year)"
        )
    kind, body = match.groups()
    return _rate(body) if kind == "rate" else _cron(body)


def _rate(body: str) -> Rate:
    match = re.fullmatch(r"\s*([0-9]+)\s+([a-z]+)\s*", body)
    if not match:
        raise ScheduleError(f"rate({body}) must be rate(value unit), e.g. rate(5 minutes)")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1:
        raise ScheduleError(f"rate({body}): the value must be a positive integer")
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in _UNITS:
        raise ScheduleError(f"rate({body}): the unit must be minute(s), hour(s) or day(s)")
    if value == 1 and unit != base:
        raise ScheduleError(f"rate({body}): a value of 1 takes the singular unit ({base})")
    if value > 1 and unit == base:
        raise ScheduleError(f"rate({body}): a value above 1 takes the plural unit ({base}s)")
    return Rate(value * _UNITS[base])


_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


def _cron(body: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"cron({body}) has {len(fields)} fields; EventBridge's cron has 6:"
            " minutes hours day-of-month month day-of-week year"
        )
    minute_f, hour_f, dom_f, month_f, dow_f, year_f = fields
    if (dom_f == "?") == (dow_f == "?"):
        raise ScheduleError(
            f"cron({body}): exactly one of day-of-month and day-of-week must be ? (the other says which days)"
        )
    return Cron(
        minutes=_set(minute_f, "minutes", 0, 59),
        hours=_set(hour_f, "hours", 0, 23),
        months=_set(month_f, "month", 1, 12, _MONTHS),
        years=_set(year_f, "year", *_YEARS),
        day_of_month=None if dom_f == "?" else _day_of_month(dom_f),
        day_of_week=None if dow_f == "?" else _day_of_week(dow_f),
    )


def _value(text: str, field: str, lo: int, hi: int, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        allowed = f"{lo}-{hi}" + (f" or {'-'.join((next(iter(names)), list(names)[-1]))}" if names else "")
        raise ScheduleError(f"{field}: {text!r} is not a value ({allowed})")
    value = int(text)
    if not lo <= value <= hi:
        raise ScheduleError(f"{field}: {value} is out of range ({lo}-{hi})")
    return value


def _set(text: str, field: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field}: an empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"{field}: the step of {part!r} must be a positive integer")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, field, lo, hi, names), _value(b, field, lo, hi, names)
            if start > end:
                raise ScheduleError(f"{field}: the range {base!r} runs backwards (write it as a list)")
        else:
            start = _value(base, field, lo, hi, names)
            end = hi if slash else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _day_of_month(text: str) -> DayOfMonth:
    field = "day-of-month"
    upper = text.upper()
    if upper == "L":
        return DayOfMonth(last=True)
    if upper == "LW":
        return DayOfMonth(last_weekday=True)
    if upper.endswith("W"):
        return DayOfMonth(nearest_weekday=_value(upper[:-1], field, 1, 31, None))
    if "L" in upper or "W" in upper or "#" in upper:
        raise ScheduleError(f"{field}: {text!r}: L, LW and nW stand alone (not in a list or range)")
    return DayOfMonth(days=_set(text, field, 1, 31))


def _day_of_week(text: str) -> DayOfWeek:
    field = "day-of-week"
    upper = text.upper()
    if upper == "L":
        return DayOfWeek(days=frozenset({7}))  # the week's last day: Saturday
    if "#" in upper:
        day, _, n = upper.partition("#")
        if not n.isdigit() or not 1 <= int(n) <= 5:
            raise ScheduleError(f"{field}: {text!r}: the n of day#n must be 1-5")
        return DayOfWeek(nth=(_value(day, field, 1, 7, _WEEKDAYS), int(n)))
    if upper.endswith("L") and upper != "L":
        return DayOfWeek(last_of=_value(upper[:-1], field, 1, 7, _WEEKDAYS))
    if "L" in upper:
        raise ScheduleError(f"{field}: {text!r}: L stands alone or after one day (5L)")
    return DayOfWeek(days=_set(text, field, 1, 7, _WEEKDAYS))


def describe_error(expression: str, timezone: str) -> str | None:
    """Why ``expression`` in ``timezone`` cannot be scheduled (None: it can)."""
    try:
        parse(expression)
        zone(timezone)
    except ScheduleError as exc:
        return str(exc)
    return None
