"""Pre-warmed *generic* environments: runtimes already started, not yet given a function.

Why: most of a cold start on a fresh process is the interpreter starting and importing
the runtime, not the function's own Init. Fission's pool manager showed the fix: keep a
few generic runtime processes started ahead of time, and on a cold start *specialise*
one by sending it the function's code and config (the runtime's ``POST /init``). What is
left on the request path is one loopback request plus the import of the handler module.

Rules this module keeps:

- **Isolation.** A spare is handed out by ``take()`` exactly once. From then on it
  belongs to the function it was specialised for; it is never given back (when that
  environment is retired it is stopped, like any other). So function B can never see
  function A's module globals, environment variables or temp files.
- **Never on the request path.** ``take()`` does no I/O: it pops a live spare or returns
  ``None`` (the caller then spawns a fresh process, today's path; an empty pool slows a
  cold start down, it never fails it). Refilling happens in one background task, one
  spawn at a time, shortly after a take, with exponential backoff while spawns fail.
- **A cap, not a per-function reservation.** ``size`` is both the target and the most
  generic environments this router keeps (they count toward no function's concurrency,
  nor any namespace's quota: they run no code of anyone's). ``0`` disables the pool.

The pool knows nothing about processes: it is given ``spawn`` and ``stop`` coroutines
(the local backend passes its own spawn/kill helpers), so its logic is unit-tested with
fakes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from lambdakube.backoff import Backoff

log = logging.getLogger(__name__)


class Spare(Protocol):
    env_id: str

    def alive(self) -> bool: ...


S = TypeVar("S", bound=Spare)


@dataclass
class GenericPoolStats:
    spawned: int = 0
    spawn_failures: int = 0
    taken: int = 0
    #: Spares found dead when taken (or when the pool checked them) and discarded.
    discarded: int = 0
    #: Outcomes of specialisations, reported back by the backend (``record``).
    specialised: int = 0
    init_errors: int = 0
    failed: int = 0
    last_spawn_error: str | None = None


class GenericPool(Generic[S]):
    def __init__(
        self,
        size: int,
        *,
        spawn: Callable[[], Awaitable[S]],
        stop: Callable[[S], Awaitable[None]],
        refill_delay: float = 0.05,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if size < 0:
            raise ValueError(f"generic pool size must be >= 0, got {size}")
        self.size = size
        self._spawn = spawn
        self._stop = stop
        #: After a take, wait this long before spawning: the cold start that just took a
        #: spare is running its Init and first invocation, and on a small machine a new
        #: interpreter starting at that moment would compete with it for the CPU.
        self.refill_delay = refill_delay
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep  # injectable: tests check the backoff without waiting it out
        self.stats = GenericPoolStats()
        self._spares: collections.deque[S] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping: set[asyncio.Task] = set()
        self._delay_next = False
        self._closed = False

    # -- the request path --------------------------------------------------------------

    def take(self) -> S | None:
        """A started, unspecialised environment, now owned by the caller; or None."""
        while self._spares:
            spare = self._spares.popleft()  # oldest first: the longest-lived spare is surely ready
            if spare.alive():
                self.stats.taken += 1
                self._kick(delay=True)
                return spare
            self.stats.discarded += 1
            log.warning("generic environment %s died while spare; discarding it", spare.env_id)
            self._stop_later(spare)
        self._kick(delay=False)
        return None

    def record(self, outcome: str) -> None:
        """The backend reports how a taken spare's specialisation ended:
        ``specialised``, ``init_error`` (the function's Init failed) or ``failed``
        (the spare was unusable; the caller fell back to a fresh process)."""
        if outcome == "specialised":
            self.stats.specialised += 1
        elif outcome == "init_error":
            self.stats.init_errors += 1
        else:
            self.stats.failed += 1

    @property
    def available(self) -> int:
        return len(self._spares)

    # -- refilling ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin filling the pool (needs a running loop). Idempotent; no-op when size is 0."""
        self._kick(delay=False)

    def _kick(self, *, delay: bool) -> None:
        if self._closed or self.size == 0:
            return
        if delay:
            self._delay_next = True
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._refill_loop(), name="generic-pool-refill")
        else:
            assert self._wake is not None
            self._wake.set()

    async def _refill_loop(self) -> None:
        assert self._wake is not None
        backoff = 0.0
        while not self._closed:
            if len(self._spares) >= self.size:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._delay_next:
                self._delay_next = False
                await self._sleep(self.refill_delay)
                continue  # re-check: closed, or refilled meanwhile
            try:
                spare = await self._spawn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any spawn failure: back off, retry
                self.stats.spawn_failures += 1
                self.stats.last_spawn_error = f"{type(exc).__name__}: {exc}"
                backoff = Backoff(self.backoff_initial, self.backoff_max).next(backoff)
                log.warning(
                    "generic environment failed to start (retrying in %.2fs): %s", backoff, self.stats.last_spawn_error
                )
                await self._sleep(backoff)
                continue
            backoff = 0.0
            self.stats.spawned += 1
            if self._closed:
                await self._stop(spare)
                return
            self._spares.append(spare)

    def _stop_later(self, spare: S) -> None:
        task = asyncio.get_running_loop().create_task(self._stop_quietly(spare))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_quietly(self, spare: S) -> None:
        try:
            await self._stop(spare)
        except Exception:  # noqa: BLE001
            log.exception("stopping generic environment %s failed", spare.env_id)

    # -- shutdown and introspection ----------------------------------------------------

    async def close(self) -> None:
        """Stop refilling and stop every spare (the caller's stop sends SIGTERM first)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        spares, self._spares = list(self._spares), collections.deque()
        await asyncio.gather(*(self._stop_quietly(s) for s in spares), *self._stopping, return_exceptions=True)

    def snapshot(self) -> dict:
        s = self.stats
        return {
            "size": self.size,
            "available": self.available,
            "spawned": s.spawned,
            "spawnFailures": s.spawn_failures,
            "taken": s.taken,
            "discarded": s.discarded,
            "specialisations": {"specialised": s.specialised, "init_error": s.init_errors, "failed": s.failed},
            "lastSpawnError": s.last_spawn_error,
        }
