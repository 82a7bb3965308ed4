"""A watch-fed cache of one kind of Kubernetes object (an informer), on aiohttp.

Why: the router used to read the API server by polling (pods) and through threads
running the synchronous client's blocking watch (Functions, ConcurrencyQuotas). A
cache answers reads from memory and wakes a waiter on the change itself
(``next_change``), as Knative's listers and KEDA's ready cache do; an aiohttp stream
runs on the router's event loop and ends at once when its task is cancelled.

The list/watch protocol, written once here: LIST gives the objects and a
resourceVersion; WATCH from that version (with bookmarks) applies ADDED/MODIFIED/DELETED;
a stream that ends normally (its server-side ``timeoutSeconds``) is resumed from the
last version seen, so a quiet watch costs one request a minute; ``410 Gone`` (the version
is too old) or any error relists, after a ``Backoff`` pause. A relist replaces exactly
its scope's objects, so a delete missed while disconnected is not remembered forever.
Each scope (a served namespace, or the whole cluster) has its own list/watch: a
namespaced install has Roles per namespace and no cluster-wide read.

Consumers either read ``objects`` (``PodCache``) or follow each change through
``on_event(key, old, new)`` and keep their own derived state (``KubernetesSource``
re-parses only the object that changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable, Iterable
from urllib.parse import quote

import aiohttp

from lambdakube.backoff import Backoff
from lambdakube.kubeclient import authorization

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request (then it is resumed from the last version).
WATCH_SECONDS = 60
#: Pause before a relist after an error or a 410, growing while failures repeat.
RETRY = Backoff(0.2, 5.0)

#: (namespace, name); namespace "" for a cluster-scoped object.
Key = tuple[str, str]

#: List answers that retrying will not change (credentials, RBAC, an unknown resource).
_REFUSED = frozenset({401, 403, 404})
#: ``on_event(key, old, new)``: ``old`` None for a new object, ``new`` None for a gone one.
OnEvent = Callable[[Key, dict | None, dict | None], None]


def object_key(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _resource_version(obj: dict | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


class ApiSession:
    """A lazily created ``aiohttp.ClientSession`` for ``configuration``'s API server, the
    ``http`` factory informers share (it makes a new session after ``close``).

    Why these settings: TLS (CA, verification, client certificate) follows the
    kubernetes-client configuration like every other call; no total timeout, since a
    watch lasts ``watch_seconds``, but a read waits at most that long plus a margin, so
    a silently stalled stream still ends (the most reported controller bug); one event
    is one line, and an object can exceed aiohttp's default 64 KiB line buffer.
    """

    def __init__(self, configuration, watch_seconds: int = WATCH_SECONDS) -> None:
        self.cfg = configuration
        self.watch_seconds = watch_seconds
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.cfg.host.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.cfg.ssl_ca_cert)
        if not self.cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cfg.cert_file:
            ctx.load_cert_chain(self.cfg.cert_file, self.cfg.key_file)
        return ctx

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.watch_seconds + 10),
                read_bufsize=2**20,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Informer:
    """The objects of one resource (``api`` + ``plural``: ``/api/v1`` ``pods``, or
    ``/apis/lambdakube.dev/v1alpha1`` ``functions``) in ``namespaces`` (empty: the
    whole cluster), optionally only those matching ``label_selector``."""

    def __init__(
        self,
        http: Callable[[], aiohttp.ClientSession],
        configuration,
        *,
        api: str,
        plural: str,
        namespaces: Iterable[str] = (),
        label_selector: str | None = None,
        on_event: OnEvent | None = None,
        watch_seconds: int = WATCH_SECONDS,
        retry: Backoff = RETRY,
    ) -> None:
        #: The session factory; shared, never closed here (its owner closes it).
        self._http = http
        self.cfg = configuration
        self.api = api.rstrip("/")
        self.plural = plural
        #: Served namespaces; empty: the whole cluster.
        self.namespaces = tuple(namespaces)
        self.label_selector = label_selector
        self.on_event = on_event
        self.watch_seconds = watch_seconds
        self.retry = retry
        self.objects: dict[Key, dict] = {}
        #: Bumped on every change: a reader waits for a version past the one it saw.
        self.version = 0
        self._changed = asyncio.Condition()
        self._synced: dict[str | None, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        #: Once closed, never started again (a start racing the owner's shutdown would
        #: otherwise leave a list/watch loop behind).
        self._closed = False
        #: Why the informer cannot follow a scope (a refused list: RBAC); None once a
        #: list succeeds again. Waiters see it.
        self.error: str | None = None
        #: The list was refused for good (401/403/404: credentials, RBAC, no CRD), not
        #: for now (429 while the apiserver's storage initialises, 5xx): only then does
        #: ``synced(or_error=True)`` give up early.
        self.refused = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        for scope in self.namespaces or (None,):
            self._synced[scope] = asyncio.Event()
            self._tasks.append(loop.create_task(self._follow(scope), name=f"informer-{self.plural}-{scope or 'all'}"))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def is_synced(self) -> bool:
        """Every scope has been listed at least once."""
        return bool(self._synced) and all(e.is_set() for e in self._synced.values())

    async def synced(self, timeout: float = 30.0, *, or_error: bool = False) -> bool:
        """Start if needed; return once every scope has been listed once (True), or after
        ``timeout`` (False). ``or_error``: also return (False) as soon as a list is
        refused for good (``refused``), for a caller that would rather fail than wait (the router's start)."""
        self.start()
        if not self._synced:  # closed before it ever started
            return False
        await self.wait_for(lambda: self.is_synced or (or_error and self.refused), timeout)
        return self.is_synced

    # -- reading -----------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> dict | None:
        return self.objects.get((namespace, name))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Return once ``predicate()`` holds (checked now and after every change or
        ``poke``), or after ``timeout``; what it says then.

        Why ``asyncio.timeout`` and not ``asyncio.wait_for``: on Python 3.11, a task
        cancelled in the instant its ``wait_for`` inner wait completes gets the result
        instead of ``CancelledError`` (the cancel is lost), and a cancelled claim or start
        waiting here on a busy cache then ran on after its pool closed."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(predicate)
            return predicate()

    async def next_change(self, seen: int, timeout: float) -> None:
        """Return once ``version`` is past ``seen``, or after ``timeout``."""
        await self.wait_for(lambda: self.version > seen, timeout)

    async def poke(self) -> None:
        """Wake every ``next_change`` waiter as if the cache changed (news from outside the
        watch, such as a runtime's announce, that a waiter should look at now)."""
        await self._bump()

    async def _bump(self) -> None:
        self.version += 1
        await self._notify()

    async def _notify(self) -> None:
        """Wake waiters to re-check (they wait on a predicate: a wake without a version
        change only tells ``synced(or_error=True)`` about an error)."""
        async with self._changed:
            self._changed.notify_all()

    def _emit(self, key: Key, old: dict | None, new: dict | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(key, old, new)
        except Exception:  # a consumer's bug must not stop the watch of everyone else
            log.exception("%s: handling the change of %s/%s failed", self.plural, *key)

    # -- list + watch ------------------------------------------------------------------

    def _url(self, scope: str | None) -> str:
        base = f"{self.cfg.host}{self.api}/" + (f"namespaces/{quote(scope)}/{self.plural}" if scope else self.plural)
        return f"{base}?labelSelector={quote(self.label_selector)}" if self.label_selector else base

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
                log.debug("%s (%s): %s; relisting", self.plural, scope or "all namespaces", exc)
            delay = self.retry.next(delay)
            await asyncio.sleep(delay)

    async def _list(self, scope: str | None) -> str:
        async with self._http().get(self._url(scope), headers=self._headers()) as resp:
            if resp.status != 200:
                where = scope or "all namespaces"
                self.error = f"listing {self.plural} ({where}): HTTP {resp.status} {(await resp.text())[:300]}"
                self.refused = resp.status in _REFUSED
                log.warning("%s", self.error)
                await self._notify()
                raise ValueError(self.error)
            body = await resp.json(content_type=None)
        items = {object_key(o): o for o in body.get("items") or ()}
        version = body["metadata"]["resourceVersion"]
        for key in [k for k in self.objects if (scope is None or k[0] == scope) and k not in items]:
            self._emit(key, self.objects.pop(key), None)
        for key, obj in items.items():
            old = self.objects.get(key)
            self.objects[key] = obj
            if _resource_version(old) != _resource_version(obj) or old is None:
                self._emit(key, old, obj)
        self.error = None
        self.refused = False
        self._synced[scope].set()
        await self._bump()
        return version

    async def _watch(self, scope: str | None, version: str) -> str | None:
        """One watch request from ``version``; the version to resume from, or None to
        relist (the server said the version is gone)."""
        url = self._url(scope)
        url += ("&" if "?" in url else "?") + (
            f"watch=1&allowWatchBookmarks=true&resourceVersion={quote(version)}&timeoutSeconds={self.watch_seconds}"
        )
        async with self._http().get(url, headers=self._headers()) as resp:
            if resp.status == 410:
                return None
            if resp.status != 200:
                raise ValueError(f"watching {self.plural}: HTTP {resp.status}")
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise ValueError(f"watch error: {obj.get('message')}")
                version = str(_resource_version(obj) or version)
                if kind == "BOOKMARK":
                    continue
                key = object_key(obj)
                if kind == "DELETED":
                    old = self.objects.pop(key, None)
                    if old is not None:
                        self._emit(key, old, None)
                elif kind in ("ADDED", "MODIFIED"):
                    old = self.objects.get(key)
                    self.objects[key] = obj
                    self._emit(key, old, obj)
                await self._bump()
        return version
