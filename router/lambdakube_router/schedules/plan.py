"""Which scheduled functions fire now: a pure function of (schedules, last ticks, now).

At most once per tick: a function fires when its expression's latest tick at or before
``now`` is newer than the tick it last fired (``ticks`` keeps that across restarts).
Missed ticks (the router was down, the loop was late) fire once: the latest of them,
never a burst of catch-ups, as a cron daemon that was off would not run them either.

A schedule seen for the first time, or changed (another expression or time zone: its
``fingerprint``), is *armed*: its current latest tick is recorded without firing, so
that creating a Function at 12:03 with ``rate(5 minutes)`` fires at 12:05, not at once
for 12:00. A disabled schedule and a function gone are *forgotten*: enabling it again
arms it afresh rather than catching up the ticks it was off for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lambdakube import schedule_expr
from lambdakube.models import Schedule

#: (namespace, function name)
Key = tuple[str, str]


@dataclass(frozen=True)
class Last:
    """What is stored per function: the schedule it was for and its last tick (Unix s)."""

    fingerprint: str
    tick: float


@dataclass(frozen=True)
class Fire:
    key: Key
    tick: float
    fingerprint: str


@dataclass(frozen=True)
class Arm:
    key: Key
    tick: float
    fingerprint: str


@dataclass(frozen=True)
class Forget:
    key: Key


Action = Fire | Arm | Forget


def fingerprint(schedule: Schedule) -> str:
    return f"{schedule.expression.strip()}|{schedule.timezone}"


def latest_tick(schedule: Schedule, now: float, *, minute_seconds: float = schedule_expr.MINUTE) -> float | None:
    expression = schedule_expr.parse(schedule.expression)
    return expression.latest(now, schedule_expr.zone(schedule.timezone), minute_seconds=minute_seconds)


def plan(
    schedules: Mapping[Key, Schedule],
    last: Mapping[Key, Last],
    now: float,
    *,
    minute_seconds: float = schedule_expr.MINUTE,
) -> list[Action]:
    """``schedules``: every function with a schedule (disabled ones included);
    ``minute_seconds``: a test's shorter minute (rates only)."""
    actions: list[Action] = []
    for key in sorted(last):
        schedule = schedules.get(key)
        if schedule is None or not schedule.enabled:
            actions.append(Forget(key))
    for key in sorted(schedules):
        schedule = schedules[key]
        if not schedule.enabled:
            continue
        fp = fingerprint(schedule)
        tick = latest_tick(schedule, now, minute_seconds=minute_seconds)
        known = last.get(key)
        if known is None or known.fingerprint != fp:
            actions.append(Arm(key, tick if tick is not None else float("-inf"), fp))
        elif tick is not None and tick > known.tick:
            actions.append(Fire(key, tick, fp))
    return actions
