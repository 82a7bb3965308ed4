"""The driver of event source mappings: runs the planner's decisions, publishes status.

Why a driver apart from the rules: what a mapping's poller should do is decided by
``planner.decide`` (pure, tested as a table); this module only starts and cancels
poller tasks, resolves source kinds (``source.poller_class``), and carries status from
the pollers (``StatusSink``) to where users read it: the mapping's ``status`` (a merge
patch of ``eventsourcemappings/<name>/status``, coalesced, only when it changed) on a
cluster, and ``describe`` (the introspection route) everywhere.

Mappings come in the registry's ``Snapshot`` (``Snapshot.mappings``): from manifests on
the local backend, from the router's informer on a cluster. ``apply`` and
``functions_changed`` only wake the loop; the loop decides, one pass for all mappings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lambdakube.backoff import Backoff
from lambdakube.formats import rfc3339
from lambdakube.models import EventSourceMappingSpec
from lambdakube_router.asyncq.store import AsyncStore
from lambdakube_router.pollers import planner, source
from lambdakube_router.pollers.destinations import writes_for
from lambdakube_router.pollers.esm_metrics import EventSourceMetrics, MappingMetrics
from lambdakube_router.snapshot import MappingEntry

log = logging.getLogger(__name__)

Key = tuple[str, str]
#: ``write(namespace, name, status)``: the status subresource's merge patch.
StatusWriter = Callable[[str, str, dict], Awaitable[None]]

#: Pause before a crashed poller is started again, growing while it keeps crashing.
RESTART = Backoff(1.0, 30.0)
#: Status writes are coalesced: at most one pass per this many seconds.
PUBLISH_INTERVAL = 1.0


@dataclass
class MappingState:
    entry: MappingEntry
    task: asyncio.Task | None = None
    #: The spec the current (or last) poller ran.
    spec: EventSourceMappingSpec | None = None
    started: bool = False
    failed: str | None = None
    crashed: str | None = None
    restart_at: float | None = None
    pause: float = 0.0
    pollers: int = 0
    last_result: str | None = None
    lag: int | None = None
    state: str | None = None
    reason: str | None = None
    last_modified: str | None = None
    metrics: MappingMetrics | None = None
    kind: str = ""
    #: The status last written (None: never), so a steady mapping writes nothing.
    written: dict | None = field(default=None, repr=False)

    def status(self) -> dict:
        out: dict[str, Any] = {
            "state": self.state,
            "stateTransitionReason": self.reason,
            "lastProcessingResult": self.last_result,
            "lag": self.lag,
            "pollers": self.pollers,
            "lastModified": self.last_modified,
        }
        if self.entry.generation is not None:
            out["observedGeneration"] = self.entry.generation
        return out


class _Sink:
    """A mapping's ``source.StatusSink``."""

    def __init__(self, manager: MappingManager, key: Key, state: MappingState) -> None:
        self._m, self._key, self._state = manager, key, state

    def _current(self) -> bool:
        return self._m.states.get(self._key) is self._state

    def started(self) -> None:
        if self._current() and not self._state.started:
            self._state.started = True
            self._m.wake()

    def lag(self, records: int) -> None:
        if self._current() and self._state.lag != records:
            self._state.lag = records
            self._m.dirty()

    def processed(self, result: str) -> None:
        if self._current() and self._state.last_result != result:
            self._state.last_result = result
            self._m.dirty()


class MappingManager:
    def __init__(
        self,
        *,
        engine,
        store: AsyncStore | None,
        metrics: EventSourceMetrics | None = None,
        registry=None,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        status_writer: StatusWriter | None = None,
        wake_async: Callable[[], None] = lambda: None,
        publish_interval: float = PUBLISH_INTERVAL,
    ) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.wall_clock = wall_clock
        self.status_writer = status_writer
        self.wake_async = wake_async
        self.publish_interval = publish_interval
        self.states: dict[Key, MappingState] = {}
        if metrics is None and registry is not None:
            metrics = EventSourceMetrics(registry, self.rows)
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- inputs ------------------------------------------------------------------------

    def apply(self, mappings: dict[Key, MappingEntry]) -> None:
        for key in [k for k in self.states if k not in mappings]:
            state = self.states.pop(key)
            self._stop(state)
            if self.metrics is not None and state.kind:
                self.metrics.forget(key[0], key[1], state.kind)
            log.info("event source mapping %s/%s removed", *key)
        for key, entry in mappings.items():
            known = self.states.get(key)
            if known is None:
                self.states[key] = MappingState(entry)
                log.info("event source mapping %s/%s registered", *key)
            elif known.entry != entry:
                known.entry = entry
        self.wake()

    def functions_changed(self) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def dirty(self) -> None:
        self._dirty.set()

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop())]
        if self.status_writer is not None:
            self._tasks.append(loop.create_task(self._publish_loop()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = [s.task for s in self.states.values() if s.task is not None]
        for state in self.states.values():
            self._stop(state)
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            wake_at = self.reconcile()
            timeout = None if wake_at is None else max(0.0, wake_at - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def reconcile(self) -> float | None:
        """One pass of ``planner.decide`` over every mapping; the next time to look."""
        now = self.clock()
        wake_at: float | None = None
        for key, state in self.states.items():
            decision = self._decide(key, state, now)
            if decision.poller == planner.RUN:
                spec = state.entry.spec
                assert spec is not None
                if state.task is None or state.spec != spec:
                    self._start(key, state, spec)
                    decision = self._decide(key, state, now)
            elif decision.poller == planner.STOP:
                self._stop(state)
            elif decision.wake_at is not None:
                wake_at = decision.wake_at if wake_at is None else min(wake_at, decision.wake_at)
            if (decision.state, decision.reason) != (state.state, state.reason):
                if decision.state != state.state:
                    log.info("event source mapping %s/%s: %s (%s)", *key, decision.state, decision.reason)
                state.state, state.reason = decision.state, decision.reason
                state.last_modified = rfc3339(self.wall_clock())
                self.dirty()
        return wake_at

    def _decide(self, key: Key, state: MappingState, now: float) -> planner.Decision:
        entry, spec = state.entry, state.entry.spec
        unavailable = None
        exists = False
        if spec is not None:
            try:
                source.poller_class(spec.source_kind)
            except source.SourceUnavailable as exc:
                unavailable = str(exc)
            exists = self.engine.get(key[0], spec.function) is not None
        seen = None
        if state.spec is not None:
            seen = planner.PollerSeen(
                state.spec,
                running=state.task is not None,
                started=state.started,
                failed=state.failed,
                crashed=state.crashed,
                restart_at=state.restart_at,
            )
        return planner.decide(
            spec=spec,
            error=entry.error,
            function=f"{key[0]}/{spec.function}" if spec is not None else None,
            function_exists=exists,
            unavailable=unavailable,
            seen=seen,
            now=now,
        )

    def _start(self, key: Key, state: MappingState, spec: EventSourceMappingSpec) -> None:
        self._stop(state)
        if state.spec != spec:
            state.failed = state.crashed = state.restart_at = None
            state.pause = 0.0
        state.spec, state.started, state.kind = spec, False, spec.source_kind
        cls = source.poller_class(spec.source_kind)
        ctx = source.PollerContext(
            namespace=key[0],
            name=key[1],
            spec=spec,
            invoke=self.engine.invoke,
            clock=self.clock,
            wall_clock=self.wall_clock,
            status=_Sink(self, key, state),
            metrics=self._metrics_for(key, state),
            max_concurrency=lambda: self._cap(key[0], spec),
            send_on_failure=lambda record: self._send_on_failure(key[0], spec, record),
            store=self.store,
            wake_async=self.wake_async,
        )
        task = asyncio.get_running_loop().create_task(cls(ctx).run(), name=f"esm {key[0]}/{key[1]}")
        state.task = task
        task.add_done_callback(lambda t: self._ended(key, state, t))

    def _stop(self, state: MappingState) -> None:
        if state.task is not None:
            task, state.task = state.task, None
            task.cancel()
        state.started = False

    def _ended(self, key: Key, state: MappingState, task: asyncio.Task) -> None:
        if state.task is not task:
            return  # stopped on purpose (or replaced)
        state.task = None
        state.started = False
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, source.SourceFailed):
            state.failed = str(exc)
            log.error("event source mapping %s/%s failed: %s", *key, exc)
        else:
            state.crashed = "the poller ended" if exc is None else f"{type(exc).__name__}: {exc}"
            state.pause = RESTART.next(state.pause)
            state.restart_at = self.clock() + state.pause
            state.last_result = f"PROBLEM: {state.crashed}"
            log.error("event source mapping %s/%s: poller crashed (%s); restarting", *key, state.crashed, exc_info=exc)
        self.wake()

    def _metrics_for(self, key: Key, state: MappingState) -> source.PollerMetrics:
        def pollers(delta: int) -> None:
            if self.states.get(key) is state:
                state.pollers += delta
                self.dirty()

        if self.metrics is None:
            return _NoMetrics(pollers)
        m = self.metrics.for_mapping(key[0], key[1], state.kind, pollers)
        state.metrics = m
        return m

    def _cap(self, namespace: str, spec: EventSourceMappingSpec) -> int:
        """``maximumConcurrency``, and the function's reserved/max concurrency."""
        cap = spec.maximum_concurrency
        fn = self.engine.get(namespace, spec.function)
        if fn is not None and fn.spec.concurrency_cap is not None:
            cap = min(cap, fn.spec.concurrency_cap)
        return cap

    async def _send_on_failure(self, namespace: str, spec: EventSourceMappingSpec, record: dict) -> bool:
        destination = spec.on_failure
        if destination is None or self.store is None:
            return False
        message_id = str((record.get("requestContext") or {}).get("requestId") or "") or "onfailure"
        messages, events = writes_for(
            destination, namespace=namespace, record=record, message_id=message_id, now=self.wall_clock()
        )
        if messages:
            await self.store.send_messages(messages)
        for event in events:
            await self.store.enqueue(event)
        if events:
            self.wake_async()
        return True

    # -- status ------------------------------------------------------------------------

    def rows(self):
        """(namespace, name, kind, lag, pollers) of every mapping: the gauges."""
        for (namespace, name), state in self.states.items():
            if state.kind:
                yield namespace, name, state.kind, state.lag or 0, state.pollers

    def describe(self, namespace: str) -> list[dict]:
        out = []
        for (ns, name), state in sorted(self.states.items()):
            if ns != namespace:
                continue
            spec = state.entry.spec
            out.append(
                {
                    "namespace": ns,
                    "name": name,
                    "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True) if spec else None,
                    "status": state.status(),
                }
            )
        return out

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.publish_interval)  # the rest of a burst rides along
            self._dirty.clear()
            await self.publish()

    async def publish(self) -> None:
        """Write each changed status (a failed write is tried again on the next pass)."""
        assert self.status_writer is not None
        for (namespace, name), state in list(self.states.items()):
            status = state.status()
            if status == state.written or state.state is None:
                continue
            try:
                await self.status_writer(namespace, name, status)
                state.written = status
            except Exception as exc:  # noqa: BLE001 - an API error: retried on the next pass
                log.warning("event source mapping %s/%s: status not written: %s", namespace, name, exc)
                self.dirty()


class _NoMetrics:
    def __init__(self, pollers: Callable[[int], None]) -> None:
        self._pollers = pollers

    def batch(self, result: str) -> None: ...
    def records(self, n: int) -> None: ...
    def failures(self, n: int) -> None: ...
    def filtered(self, n: int) -> None: ...
    def lag(self, n: int) -> None: ...

    def poller_started(self) -> None:
        self._pollers(+1)

    def poller_stopped(self) -> None:
        self._pollers(-1)


def source_status_writer(registry_source) -> StatusWriter | None:
    """The registry source's status writes (``KubernetesSource.patch_status``: where the
    mappings come from is where their status goes); None for manifests and snapshots.
    A gone mapping (404) is not an error: its deletion reaches the informer soon."""
    patch_status = getattr(registry_source, "patch_status", None)
    if patch_status is None:
        return None

    async def write(namespace: str, name: str, status: dict) -> None:
        from lambdakube_router import kube_api  # noqa: PLC0415

        try:
            await patch_status("EventSourceMapping", namespace, name, status)
        except kube_api.ApiError as exc:
            if exc.status != 404:
                raise

    return write
