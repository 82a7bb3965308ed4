"""The scheduler's loop: every ``interval`` seconds, ``plan`` on the wall clock, then its
actions (``ticks`` first, then the async queue).

A tick invokes its function asynchronously through the router's durable async queue
(``Dispatcher.enqueue``), exactly as an ``Event`` invoke: the function's retries,
maximum event age and destinations apply, and the event survives a restart once
queued. One router replica runs the schedules (the chart runs one); a second router on
another state directory would fire them again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from lambdakube import schedule_expr
from lambdakube.models import Schedule
from lambdakube_router.asyncq.store import NewEvent, StoreUnavailable
from lambdakube_router.schedules import event
from lambdakube_router.schedules.plan import Arm, Fire, Forget, Key, Last, LatestTicks, plan
from lambdakube_router.schedules.ticks import TickStore

if TYPE_CHECKING:
    from lambdakube_router.asyncq.dispatcher import Dispatcher
    from lambdakube_router.invocations import Engine

log = logging.getLogger(__name__)

INTERVAL = 1.0
#: How many fired ticks ``Scheduler.fired`` remembers (tests and debugging).
FIRED_KEPT = 1000


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        ticks: TickStore,
        *,
        wall_clock: Callable[[], float],
        clock: Callable[[], float] | None = None,
        interval: float = INTERVAL,
        minute_seconds: float = schedule_expr.MINUTE,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.ticks = ticks
        #: When events are created (the async queue's clock) ...
        self.wall_clock = wall_clock
        #: ... and what time the schedules see (a test's fake clock; else the same).
        self.clock = clock or wall_clock
        self.interval = interval
        self.minute_seconds = minute_seconds
        self._last: dict[Key, Last] | None = None
        self._latest = LatestTicks(minute_seconds)
        self._task: asyncio.Task | None = None
        #: The latest ticks fired by this process (bounded), and passes completed.
        self.fired: collections.deque[tuple[Key, float]] = collections.deque(maxlen=FIRED_KEPT)
        self.passes = 0
        #: Why the schedules are off (None: they run).
        self.error: str | None = None
        #: ``fired``: queued; ``lost``: the async store could not take it (at most once).
        self.ticks_total = Counter(
            "lambdakube_schedule_ticks",
            "Scheduled ticks, by outcome (fired: queued as an async event; lost: the store refused it)",
            ["namespace", "function", "outcome"],
            registry=registry,
        )

    def schedules(self) -> dict[Key, Schedule]:
        return {
            key: state.spec.schedule
            for key, state in list(self.engine.functions.items())
            if state.spec.schedule is not None
        }

    async def run_once(self, now: float) -> None:
        if self._last is None:
            self._last = await self.ticks.load()
        schedules = self.schedules()
        self._latest.retain(schedules.values())
        for action in plan(schedules, self._last, now, latest=self._latest):
            if isinstance(action, Forget):
                await self.ticks.forget(action.key)
                self._last.pop(action.key, None)
                for outcome in ("fired", "lost"):
                    with contextlib.suppress(KeyError):
                        self.ticks_total.remove(*action.key, outcome)
                continue
            last = Last(action.fingerprint, action.tick)
            await self.ticks.record(action.key, last)  # before the event: at most once
            self._last[action.key] = last
            if isinstance(action, Arm):
                continue
            assert isinstance(action, Fire)
            await self._fire(action.key, action.tick)
        self.passes += 1

    async def _fire(self, key: Key, tick: float) -> None:
        namespace, name = key
        scheduled = event.scheduled_event(namespace, name, tick)
        ev = NewEvent(str(uuid.uuid4()), namespace, name, event.payload(scheduled), None, self.wall_clock())
        try:
            await self.dispatcher.enqueue(ev)
        except StoreUnavailable as exc:
            log.warning("%s/%s: the tick of %s is lost: the async store is unavailable: %s", namespace, name, tick, exc)
            self.ticks_total.labels(namespace, name, "lost").inc()
            return
        self.fired.append((key, tick))
        self.ticks_total.labels(namespace, name, "fired").inc()
        log.info("%s/%s: scheduled tick %s queued as %s", namespace, name, scheduled["time"], ev.id)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once(self.clock())
            except Exception:
                log.exception("schedule pass failed; the next one retries")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def open_and_start(self) -> bool:
        """Open the ticks and run. A ticks file that cannot be opened (corrupt, unreadable)
        stops the schedules only, with an ERROR line: without it a tick could fire twice,
        and invokes must not wait for it. False: not running."""
        try:
            await self.ticks.open()
        except (sqlite3.Error, OSError) as exc:
            self.error = f"{self.ticks.path}: {exc}"
            log.error("schedules are off: cannot open %s (move it aside to start afresh)", self.error)
            return False
        self.start()
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.ticks.close()
