"""The router's share of a Function's status, and its activity Events.

Why the router writes status at all: only the router sees requests, so only it knows how
many environments are ``busy`` or ``idle`` and how many ``coldStarts`` there were. The
status is split by owner (DESIGN): the operator writes ``observedGeneration``,
``conditions``, ``ready``, ``starting``, ``provisioned``, ``specHash``, ``initError``;
this module writes ``busy``, ``idle`` and ``coldStarts`` and nothing else, with a JSON
merge patch of just those three keys on ``functions/<name>/status`` - a merge patch
leaves every other key alone, so neither side can clobber the other.

Every ``interval`` seconds (default 2) it reads one ``ActivityRow`` per function from a
callable (the engine in production, a list in tests) and:

- writes the three fields when they differ from the last *successful* write (a steady
  router writes nothing; a failed write is retried on the next tick);
- posts core/v1 Events on the Function, at most one per reason per ``event_window``
  (60 s) with the count of what happened since: ``ColdStart`` (Normal) and
  ``Throttled`` (Warning) - see ``activity.EventLimiter``.

A 404 on the status write means the Function object is gone (or never existed: a
function from a static snapshot): the function is dropped and skipped until the
router's registry drops it too or its UID changes. These writes go through the
kubernetes backend's ``kube_api.KubeApi`` (on the event loop, each with its timeout),
as its pod writes do; every read of the router is a watch-fed ``informer``.

One writer per Function is assumed (one router replica, as the chart runs it): two
routers would overwrite each other's counts. ``coldStarts`` counts this router's cold
starts since it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable

import aiohttp

from lambdakube.models import API_VERSION
from lambdakube_router import kube_api
from lambdakube_router.activity import ActivityRow, EventLimiter, PlannedEvent
from lambdakube_router.kube_api import ApiError, KubeApi

log = logging.getLogger(__name__)


Key = tuple[str, str]


def build_event(
    namespace: str, name: str, uid: str | None, event: PlannedEvent, instance: str, wall_now: float
) -> dict:
    """A core/v1 Event about the Function (pure)."""
    involved = {"apiVersion": API_VERSION, "kind": "Function", "name": name, "namespace": namespace}
    if uid:
        involved["uid"] = uid
    return kube_api.event_body(involved, event.type, event.reason, event.message, instance, wall_now)


class StatusPublisher:
    def __init__(
        self,
        kube: KubeApi,
        rows: Callable[[], Iterable[ActivityRow]],
        *,
        interval: float = 2.0,
        event_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        self.kube = kube
        self.rows = rows
        self.interval = interval
        self.clock = clock
        self.wall_clock = wall_clock
        self.instance = instance or os.environ.get("HOSTNAME") or socket.gethostname()
        self.limiter = EventLimiter(event_window)
        self._written: dict[Key, dict[str, int]] = {}
        self._uids: dict[Key, str] = {}
        self._gone: dict[Key, str | None] = {}  # 404'd, with the UID the registry had then
        self._failing: set[tuple[Key, str]] = set()  # (function, what) already logged as failing
        self._task: asyncio.Task | None = None
        #: Successful API writes, for introspection and tests.
        self.status_writes = 0
        self.events_posted = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug here must not stop publishing for good
                log.exception("status publisher tick failed; retrying next tick")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- one pass ----------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        live: dict[Key, ActivityRow] = {}
        for row in self.rows():
            live[(row.ref.namespace, row.ref.name)] = row
        for key in (set(self._written) | set(self._uids) | set(self._gone) | self.limiter.keys()) - set(live):
            self._forget(key)
            self._gone.pop(key, None)
        jobs = []
        for key, row in live.items():
            if key in self._gone:
                if self._gone[key] == row.ref.uid:
                    continue
                del self._gone[key]  # a new object of the same name
            events = self.limiter.observe(row, now)
            status = row.status
            write = status if self._written.get(key) != status else None
            if write is not None or events:
                jobs.append(self._publish(key, row, write, events))
        if jobs:
            await asyncio.gather(*jobs)

    def _forget(self, key: Key) -> None:
        self._written.pop(key, None)
        self._uids.pop(key, None)
        self.limiter.forget(key)
        self._failing = {f for f in self._failing if f[0] != key}

    async def _publish(
        self, key: Key, row: ActivityRow, status: dict[str, int] | None, events: list[PlannedEvent]
    ) -> None:
        namespace, name = key
        if status is not None:
            try:
                obj = await self.kube.patch(kube_api.functions(namespace, name, "status"), {"status": status})
            except ApiError as exc:
                if exc.status == 404:
                    self._dropped(key, row)
                    return
                self._failed(key, "status", f"{exc.status} {exc.reason}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # retried next tick
                self._failed(key, "status", f"{type(exc).__name__}: {exc}")
            else:
                self._written[key] = status
                self.status_writes += 1
                self._ok(key, "status")
                uid = ((obj or {}).get("metadata") or {}).get("uid") if isinstance(obj, dict) else None
                if uid:
                    self._uids[key] = uid
        for event in events:
            await self._post(key, row, event)

    async def _post(self, key: Key, row: ActivityRow, event: PlannedEvent) -> None:
        namespace, name = key
        try:
            uid = row.ref.uid or self._uids.get(key)
            if uid is None:
                obj = await self.kube.get(kube_api.functions(namespace, name))
                uid = self._uids[key] = obj["metadata"]["uid"]
            body = build_event(namespace, name, uid, event, self.instance, self.wall_clock())
            await self.kube.create(kube_api.events(namespace), body)
        except ApiError as exc:
            if exc.status == 404:  # the Function (or its namespace) went away meanwhile
                self._dropped(key, row)
                return
            self.limiter.failed(key, event)
            self._failed(key, f"event {event.reason}", f"{exc.status} {exc.reason}")
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:  # retried next window
            self.limiter.failed(key, event)
            self._failed(key, f"event {event.reason}", f"{type(exc).__name__}: {exc}")
        else:
            self.events_posted += 1
            self._ok(key, f"event {event.reason}")

    def _dropped(self, key: Key, row: ActivityRow) -> None:
        log.info("%s/%s: no Function object (404); not publishing its status", *key)
        self._forget(key)
        self._gone[key] = row.ref.uid

    def _failed(self, key: Key, what: str, detail: str) -> None:
        # Log a failure once, not on every tick it keeps failing.
        level = logging.DEBUG if (key, what) in self._failing else logging.WARNING
        self._failing.add((key, what))
        log.log(level, "%s/%s: cannot write %s (%s); retrying next tick", *key, what, detail)

    def _ok(self, key: Key, what: str) -> None:
        if (key, what) in self._failing:
            self._failing.discard((key, what))
            log.info("%s/%s: writing %s works again", *key, what)


# -- wiring -------------------------------------------------------------------------------


def engine_rows(engine) -> Callable[[], list[ActivityRow]]:
    """The production row source: every function the engine serves."""

    def rows() -> list[ActivityRow]:
        out = []
        for state in list(engine.functions.values()):
            counts = state.pool.counts()
            activity = state.activity
            out.append(
                ActivityRow(
                    state.ref,
                    counts.get("busy", 0),
                    counts.get("idle", 0),
                    state.pool.stats.cold_starts,
                    dict(activity.throttles),
                    tuple(activity.inits),
                )
            )
        return out

    return rows


def kubernetes_api(backend) -> KubeApi | None:
    """The backend's API writer when environments are pods, else None.

    Checked without importing the kubernetes backend: if its module was never imported,
    ``backend`` cannot be one of its instances (local mode needs no kubernetes client)."""
    module = sys.modules.get("lambdakube_router.backends.kubernetes")
    if module is not None and isinstance(backend, module.KubernetesBackend):
        return backend.kube
    return None
