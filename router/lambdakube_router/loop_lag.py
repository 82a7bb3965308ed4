"""A probe of the router's event-loop lag: how late a timer fires.

Why: everything the router does for every caller runs on one event loop, so a piece of
blocking work (a process spawn, a large manifest load, a long burst of callbacks)
delays every request at once without showing up in any per-request timing. The probe
asks to wake every ``interval`` seconds and records how much later than asked it woke:
``lambdakube_event_loop_lag_seconds`` (a histogram) and ``_max_seconds`` (the worst
since start). It costs one timer per interval. Benchmarks use it as a context manager
(``with LoopLag(interval=0.001) as probe: ...; probe.max_seconds``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL_SECONDS = 0.05


class LoopLag:
    def __init__(self, observe: Callable[[float], None] | None = None, interval: float = INTERVAL_SECONDS) -> None:
        self.observe = observe
        self.interval = interval
        self.max_seconds = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(loop.time() - asked)

    def record(self, lag: float) -> None:
        lag = max(lag, 0.0)
        self.max_seconds = max(self.max_seconds, lag)
        if self.observe is not None:
            self.observe(lag)

    def __enter__(self) -> LoopLag:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
