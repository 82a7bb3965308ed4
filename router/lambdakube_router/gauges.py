"""Gauges for dashboards: the limits next to the concurrency, and the async queue's age.

Why: "concurrent executions vs limits" needs the limits as series too (a graph cannot
draw a line it has no series for), and a queue's depth says nothing about whether it
moves: the age of its oldest event does. The limits are read from the engine at scrape
time like the other state gauges (exact, nothing on the hot path); the age needs the
store (SQLite, on its own thread), so ``QueueAge`` samples it every ``interval`` seconds
in a background task and the scrape reads the last sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Seconds between two samples of the async queue's oldest event.
QUEUE_AGE_INTERVAL = 5.0


def limit_rows(engine: Any) -> Iterator[tuple[str, str | None, dict[str, int | None]]]:
    """``(namespace, None, namespace limits)`` and ``(namespace, function, its limits)``."""
    for ns, limits in sorted(engine.namespaces.items()):
        plan = limits.plan
        yield (
            ns,
            None,
            {
                "quota": limits.quota.concurrent_executions,
                "reserved": sum(plan.granted.values()),
                "unreserved": plan.unreserved,
            },
        )
        for name, fl in sorted(limits.functions.items()):
            yield ns, name, {"reserved": fl.granted, "cap": fl.cap}


class LimitsCollector(Collector):
    def __init__(self, engine: Callable[[], Any]) -> None:
        self.engine = engine

    def collect(self):
        nl = ["namespace"]
        quota = GaugeMetricFamily(
            "lambdakube_namespace_concurrency_quota", "The namespace's concurrent-executions quota", labels=nl
        )
        reserved = GaugeMetricFamily(
            "lambdakube_namespace_reserved_concurrency", "Granted reservations in the namespace, summed", labels=nl
        )
        unreserved = GaugeMetricFamily(
            "lambdakube_namespace_unreserved_concurrency",
            "The namespace's unreserved pool (quota minus granted reservations)",
            labels=nl,
        )
        fl = ["namespace", "function"]
        f_reserved = GaugeMetricFamily(
            "lambdakube_function_reserved_concurrency", "A function's granted reserved concurrency", labels=fl
        )
        f_cap = GaugeMetricFamily(
            "lambdakube_function_concurrency_cap",
            "The most a function may have in flight (reservation, maxConcurrency), where capped",
            labels=fl,
        )
        for ns, function, values in limit_rows(self.engine()):
            if function is None:
                quota.add_metric([ns], values["quota"] or 0)
                reserved.add_metric([ns], values["reserved"] or 0)
                unreserved.add_metric([ns], values["unreserved"] or 0)
                continue
            if values["reserved"] is not None:
                f_reserved.add_metric([ns, function], values["reserved"])
            if values["cap"] is not None:
                f_cap.add_metric([ns, function], values["cap"])
        yield from (quota, reserved, unreserved, f_reserved, f_cap)


def ages(oldest: dict[str, float], wall_now: float) -> dict[str, float]:
    """Seconds since each namespace's oldest unfinished event was created (never < 0)."""
    return {ns: max(0.0, wall_now - at) for ns, at in sorted(oldest.items())}


class QueueAge(Collector):
    """The last sample of ``store.oldest()``, as ``lambdakube_async_queue_oldest_age_seconds``."""

    def __init__(self, store: Any, wall_clock: Callable[[], float], interval: float = QUEUE_AGE_INTERVAL) -> None:
        self.store = store
        self.wall_clock = wall_clock
        self.interval = interval
        self.oldest: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def collect(self):
        family = GaugeMetricFamily(
            "lambdakube_async_queue_oldest_age_seconds",
            "Age of the oldest unfinished async event per namespace (sampled every few seconds)",
            labels=["namespace"],
        )
        for ns, age in ages(self.oldest, self.wall_clock()).items():
            family.add_metric([ns], age)
        yield family

    async def sample(self) -> None:
        try:
            self.oldest = await self.store.oldest()
        except Exception as exc:  # the store's own health reports it; the gauge keeps its last sample
            log.debug("queue age not sampled: %s", exc)

    def start(self) -> None:
        async def forever() -> None:
            while True:
                await self.sample()
                await asyncio.sleep(self.interval)

        self._task = asyncio.get_running_loop().create_task(forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
