"""One pod's changes as watch events, on the router's event loop.

Why: a cold start waits for its new pod to get an IP. Reading the pod in a loop (the
first version) found the change up to one poll interval late, and each start cost a
dozen API reads; on a real node the fresh-pod cold starts clustered 0.5 s apart, the
polling cap. A watch of that one pod (``fieldSelector=metadata.name=<pod>``) delivers the
change as it happens, with one request. It is an aiohttp stream, not the official
client's thread-bound ``Watch``, so leaving the ``async with`` closes it at once.

Credentials come from the same kubernetes-client ``Configuration`` as every other call
(``lambdakube.kubeclient``): server, CA, client certificate, and the bearer token
re-read through the client's refresh hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from lambdakube.kubeclient import authorization

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request; the view reconnects after it.
WATCH_SECONDS = 60
#: Pause before reconnecting after an error (the start's own deadline bounds the wait).
RETRY_SECONDS = 0.2


@dataclass
class WatchedPod:
    """The newest state of one pod, as the watch last saw it.

    ``version`` counts the changes: a reader remembers the version it looked at and
    waits for a newer one, so a change that lands while it is busy (probing the pod)
    is never missed, whatever the order of set and clear."""

    pod: dict | None = None
    gone: bool = False
    #: Why the watch cannot go on (a refused request); the start fails with it.
    error: str | None = None
    version: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    async def _bump(self) -> None:
        self.version += 1
        async with self._changed:
            self._changed.notify_all()

    async def apply(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "DELETED":
            self.gone = True
            self.pod = event.get("object")
        elif kind in ("ADDED", "MODIFIED"):
            self.pod = event.get("object")
        else:  # ERROR or unknown: nothing to update; reconnecting re-lists the pod
            return
        await self._bump()

    async def fail(self, error: str) -> None:
        self.error = error
        await self._bump()

    async def poke(self) -> None:
        """Wake the reader without a pod change (news about the pod from elsewhere: its
        runtime's announce)."""
        await self._bump()

    async def next_change(self, seen: int, timeout: float) -> None:
        """Return once ``version`` is past ``seen``, or after ``timeout``."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout)


class PodWatcher:
    def __init__(self, configuration) -> None:
        self.cfg = configuration
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

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=WATCH_SECONDS + 10),
                read_bufsize=2**20)  # one event is one line: a pod can exceed 64 KiB
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @contextlib.asynccontextmanager
    async def watch(self, namespace: str, name: str) -> AsyncIterator[WatchedPod]:
        view = WatchedPod()
        task = asyncio.get_running_loop().create_task(self._follow(namespace, name, view),
                                                      name=f"watch-pod-{namespace}/{name}")
        try:
            yield view
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _follow(self, namespace: str, name: str, view: WatchedPod) -> None:
        url = (f"{self.cfg.host}/api/v1/namespaces/{quote(namespace)}/pods?watch=1"
               f"&fieldSelector={quote('metadata.name=' + name)}&timeoutSeconds={WATCH_SECONDS}")
        while not view.gone:
            headers = {"Accept": "application/json"}
            auth = authorization(self.cfg)
            if auth:
                headers["Authorization"] = auth
            try:
                async with self._http().get(url, headers=headers) as resp:
                    if 400 <= resp.status < 500 and resp.status != 429:
                        # Refused (RBAC, a bad request): retrying cannot help.
                        await view.fail(f"watching pod {namespace}/{name}: HTTP {resp.status}"
                                        f" {(await resp.text())[:300]}")
                        return
                    if resp.status != 200:
                        await asyncio.sleep(RETRY_SECONDS)
                        continue
                    async for line in resp.content:
                        if line.strip():
                            await view.apply(json.loads(line))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                log.debug("watch of pod %s/%s: %s; reconnecting", namespace, name, exc)
                await asyncio.sleep(RETRY_SECONDS)
