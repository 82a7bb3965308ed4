"""The router's watch-fed picture of the environment pods: one list + watch per served
namespace (or one cluster-wide), kept current by the watch's events.

Why: claiming a provisioned or generic pod, and knowing which pods the operator marked
draining, used to LIST pods - every 50-500 ms while waiting for a provisioned pod, once
per generic cold start, and every namespace once a second for draining. The cache
answers those from memory, and a waiter wakes on the change itself
(``next_change``), as Knative's listers and KEDA's ready cache do.

The list/watch protocol, done by hand on aiohttp (like ``podwatch``): LIST gives the
objects and a resourceVersion; WATCH from that version (with bookmarks) applies
ADDED/MODIFIED/DELETED; a stream that ends normally is resumed from the last version
seen; ``410 Gone`` (the version is too old) or an error relists. Only pods labelled
``lambdakube.dev/role`` are ours; a relist replaces that scope's pods, so a delete
missed while disconnected is not remembered forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote

import aiohttp

from lambdakube.backoff import Backoff
from lambdakube.kubeclient import authorization
from lambdakube.resources import labels

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request (then it is resumed from the last version).
WATCH_SECONDS = 60
_RETRY = Backoff(0.2, 5.0)

Key = tuple[str, str]


class PodCache:
    def __init__(self, http: Callable[[], aiohttp.ClientSession], configuration,
                 namespaces: Iterable[str] = ()) -> None:
        #: The shared session factory (``PodWatcher._http``: TLS and timeouts set up once).
        self._http = http
        self.cfg = configuration
        #: Served namespaces; empty: the whole cluster.
        self.namespaces = tuple(namespaces)
        self.pods: dict[Key, dict] = {}
        #: Bumped on every change: a reader waits for a version past the one it saw.
        self.version = 0
        self._changed = asyncio.Condition()
        self._synced: dict[str | None, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        #: Once closed, never started again (a start racing the router's shutdown would
        #: otherwise leave a list/watch loop and a new HTTP session behind).
        self._closed = False
        #: Why the cache cannot follow a scope (a refused list: RBAC); waiters see it.
        self.error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        for scope in self.namespaces or (None,):
            self._synced[scope] = asyncio.Event()
            self._tasks.append(loop.create_task(self._follow(scope), name=f"pod-cache-{scope or 'all'}"))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def synced(self, timeout: float = 30.0) -> None:
        """Return once every scope has been listed once (or after ``timeout``)."""
        self.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._synced.values())), timeout)

    # -- reading -----------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> dict | None:
        return self.pods.get((namespace, name))

    def select(self, namespace: str, **wanted: str | None) -> list[dict]:
        """Live pods of ``namespace`` whose labels match ``wanted`` (label -> value; None:
        the label must be absent)."""
        out = []
        for (ns, _), pod in self.pods.items():
            if ns != namespace or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            have = (pod.get("metadata") or {}).get("labels") or {}
            if all(have.get(k) == v if v is not None else k not in have for k, v in wanted.items()):
                out.append(pod)
        return out

    async def next_change(self, seen: int, timeout: float) -> None:
        """Return once ``version`` is past ``seen``, or after ``timeout``."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout)

    async def poke(self) -> None:
        """Wake every ``next_change`` waiter as if the cache changed (news from outside the
        watch, such as a runtime's announce, that a waiter should look at now)."""
        await self._bump()

    async def _bump(self) -> None:
        self.version += 1
        async with self._changed:
            self._changed.notify_all()

    # -- list + watch ------------------------------------------------------------------

    def _url(self, scope: str | None) -> str:
        base = f"{self.cfg.host}/api/v1/" + (f"namespaces/{quote(scope)}/pods" if scope else "pods")
        return f"{base}?labelSelector={quote(labels.ROLE)}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = authorization(self.cfg)
        if auth:
            headers["Authorization"] = auth
        return headers

    async def _follow(self, scope: str | None) -> None:
        delay = 0.0
        while True:
            try:
                version: str | None = await self._list(scope)
                delay = 0.0
                while version is not None:
                    version = await self._watch(scope, version)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
                log.debug("pod cache (%s): %s; relisting", scope or "all namespaces", exc)
            delay = _RETRY.next(delay)
            await asyncio.sleep(delay)

    async def _list(self, scope: str | None) -> str:
        async with self._http().get(self._url(scope), headers=self._headers()) as resp:
            if resp.status != 200:
                where = scope or "all namespaces"
                self.error = f"listing pods ({where}): HTTP {resp.status} {(await resp.text())[:300]}"
                log.warning("%s", self.error)
                raise ValueError(self.error)
            body = await resp.json(content_type=None)
        items = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in body.get("items") or ()}
        for key in [k for k in self.pods if scope is None or k[0] == scope]:
            if key not in items:
                del self.pods[key]
        self.pods.update(items)
        self.error = None
        await self._bump()
        self._synced[scope].set()
        return body["metadata"]["resourceVersion"]

    async def _watch(self, scope: str | None, version: str) -> str | None:
        """One watch request from ``version``; the version to resume from, or None to
        relist (the server said the version is gone)."""
        url = (f"{self._url(scope)}&watch=1&allowWatchBookmarks=true&resourceVersion={quote(version)}"
               f"&timeoutSeconds={WATCH_SECONDS}")
        async with self._http().get(url, headers=self._headers()) as resp:
            if resp.status == 410:
                return None
            if resp.status != 200:
                raise ValueError(f"watching pods: HTTP {resp.status}")
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise ValueError(f"watch error: {obj.get('message')}")
                meta = obj.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                key = (meta.get("namespace", ""), meta.get("name", ""))
                if kind == "DELETED":
                    self.pods.pop(key, None)
                elif kind in ("ADDED", "MODIFIED"):
                    self.pods[key] = obj
                await self._bump()
        return version
