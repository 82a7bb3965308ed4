"""Which scheduled functions fire now (``schedules.plan``), the Scheduled Event they get,
and the scheduler's order of writes: tables with a fixed NOW, no clock read."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lambdakube.models import Schedule
from lambdakube_router.asyncq.store import StoreUnavailable
from lambdakube_router.schedules import event
from lambdakube_router.schedules.plan import Arm, Fire, Forget, Last, fingerprint, plan
from lambdakube_router.schedules.runner import Scheduler
from lambdakube_router.schedules.ticks import TickStore


def at(wall: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(tz)).timestamp()


NOW = at("2026-12-04T12:07:30")
FIVE = Schedule(expression="rate(5 minutes)")
NOON = Schedule(expression="cron(0 12 * * ? *)", timezone="Europe/Berlin")
OFF = Schedule(expression="rate(5 minutes)", enabled=False)
A, B = ("default", "a"), ("default", "b")
T1205, T1200 = at("2026-12-04T12:05:00"), at("2026-12-04T12:00:00")
NOON_BERLIN = at("2026-12-04T12:00:00", "Europe/Berlin")

# (case, schedules, last ticks, now, actions)
PLANS = [
    ("first seen: armed at its latest tick, nothing fires", {A: FIVE}, {}, NOW,
     [Arm(A, T1205, fingerprint(FIVE))]),
    ("the tick it last fired: nothing", {A: FIVE}, {A: Last(fingerprint(FIVE), T1205)}, NOW, []),
    ("a newer tick: it fires", {A: FIVE}, {A: Last(fingerprint(FIVE), T1200)}, NOW,
     [Fire(A, T1205, fingerprint(FIVE))]),
    ("down for an hour: only the latest missed tick fires", {A: FIVE},
     {A: Last(fingerprint(FIVE), T1200 - 3600)}, NOW, [Fire(A, T1205, fingerprint(FIVE))]),
    ("on the tick itself: it fires", {A: FIVE}, {A: Last(fingerprint(FIVE), T1200)}, T1205,
     [Fire(A, T1205, fingerprint(FIVE))]),
    ("a changed expression is armed afresh, not fired", {A: NOON}, {A: Last(fingerprint(FIVE), T1200)}, NOW,
     [Arm(A, NOON_BERLIN, fingerprint(NOON))]),
    ("disabled: its tick is forgotten", {A: OFF}, {A: Last(fingerprint(FIVE), T1200)}, NOW, [Forget(A)]),
    ("disabled and never seen: nothing", {A: OFF}, {}, NOW, []),
    ("the function is gone: forgotten", {}, {A: Last(fingerprint(FIVE), T1200)}, NOW, [Forget(A)]),
    ("two functions, each on its own", {A: FIVE, B: NOON},
     {A: Last(fingerprint(FIVE), T1200), B: Last(fingerprint(NOON), NOON_BERLIN)}, NOW,
     [Fire(A, T1205, fingerprint(FIVE))]),
    ("a cron that never ticked yet is armed with no tick", {A: Schedule(expression="cron(0 0 1 1 ? 2030)")}, {},
     NOW, [Arm(A, float("-inf"), "cron(0 0 1 1 ? 2030)|UTC")]),
]  # fmt: skip


@pytest.mark.parametrize("schedules,last,now,want", [c[1:] for c in PLANS], ids=[c[0] for c in PLANS])
def test_plan(schedules, last, now, want):
    assert plan(schedules, last, now) == want


def test_a_test_minute_shortens_rates():
    one = Schedule(expression="rate(1 minute)")
    assert plan({A: one}, {A: Last(fingerprint(one), 10.0)}, 12.5, minute_seconds=1.0) == [
        Fire(A, 12.0, fingerprint(one))
    ]


def test_the_scheduled_event_is_eventbridges():
    ev = event.scheduled_event("team-a", "nightly", at("2026-12-04T12:00:00"))
    assert ev == {
        "version": "0",
        "id": event.event_id("team-a", "nightly", at("2026-12-04T12:00:00")),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "team-a",
        "time": "2026-12-04T12:00:00Z",
        "region": "lambdakube",
        "resources": ["arn:aws:events:lambdakube:team-a:rule/nightly"],
        "detail": {},
    }
    assert event.event_id("team-a", "nightly", 60.0) != event.event_id("team-a", "nightly", 120.0)


class _Spec:
    def __init__(self, schedule):
        self.schedule = schedule


class _State:
    def __init__(self, schedule):
        self.spec = _Spec(schedule)


class _Engine:
    def __init__(self, **schedules):
        self.functions = {("default", name): _State(s) for name, s in schedules.items()}


class _Dispatcher:
    """Records what is queued; ``fail`` makes the queue unavailable."""

    def __init__(self, fail: bool = False):
        self.queued: list = []
        self.fail = fail

    async def enqueue(self, ev):
        if self.fail:
            raise StoreUnavailable("disk full")
        self.queued.append(ev)


async def test_a_tick_is_written_before_its_event_so_a_lost_enqueue_never_fires_twice(tmp_path):
    """The queue refuses the event (as if the router died between the two writes): the
    tick is recorded anyway, so neither this router nor a restarted one fires it again."""
    engine = _Engine(a=FIVE)
    ticks = TickStore(tmp_path, synchronous="NORMAL")
    await ticks.open()
    first = Scheduler(engine, _Dispatcher(), ticks, wall_clock=lambda: NOW)  # type: ignore[arg-type]
    await first.run_once(NOW - 60)  # arms 12:05
    broken = _Dispatcher(fail=True)
    first.dispatcher = broken  # type: ignore[assignment]
    await first.run_once(at("2026-12-04T12:10:01"))
    assert broken.queued == [] and list(first.fired) == []
    assert first.ticks_total.labels("default", "a", "lost")._value.get() == 1
    await ticks.close()

    ticks = TickStore(tmp_path, synchronous="NORMAL")
    await ticks.open()
    working = _Dispatcher()
    again = Scheduler(engine, working, ticks, wall_clock=lambda: NOW)  # type: ignore[arg-type]
    await again.run_once(at("2026-12-04T12:14:59"))
    assert working.queued == []
    await again.run_once(at("2026-12-04T12:15:00"))
    assert [e.function for e in working.queued] == ["a"] and list(again.fired) == [(A, at("2026-12-04T12:15:00"))]
    await again.close()


def test_remembered_latest_ticks_are_the_computed_ones():
    """Across tick boundaries, a clock going back (a test's fake one) and a zone's DST
    change, the memo answers exactly what a fresh computation does."""
    from lambdakube_router.schedules.plan import LatestTicks, latest_tick

    memo = LatestTicks()
    hourly = Schedule(expression="cron(0 * * * ? *)", timezone="Europe/Berlin")
    start = at("2026-10-25T00:30:00")  # through the fall-back hour
    times = [start + 37 * 60 * i for i in range(12)] + [start, start + 3600, start - 1]
    for schedule in (FIVE, NOON, hourly):
        for t in times:
            assert memo(schedule, t) == latest_tick(schedule, t), (schedule, t)
    memo.retain([FIVE])
    assert list(memo._memo) == [fingerprint(FIVE)]
