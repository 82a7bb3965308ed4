"""The HTTP session the router's pod watches run on (``PodCache``'s list + watch).

Why not the official client: its ``Watch`` is thread-bound and blocking; an aiohttp
stream runs on the router's event loop and closes at once when its task is cancelled.
Why one module: the TLS setup and the timeouts a long watch needs are decided once
here, and every stream shares the session's connection pool.

Credentials come from the same kubernetes-client ``Configuration`` as every other call
(``lambdakube.kubeclient``): server, CA, client certificate; the bearer token is re-read
per request by the caller (``lambdakube.kubeclient.authorization``) through the client's
refresh hook.

(This module once also followed a single pod through its own watch during a fresh
start; the start now waits on ``PodCache``, which already sees every environment pod.)
"""

from __future__ import annotations

import ssl

import aiohttp

#: Server-side timeout of one watch request; a read waits this long plus a margin.
WATCH_SECONDS = 60


class PodWatcher:
    """A lazily created ``aiohttp.ClientSession`` for ``configuration``'s API server:
    ``_http`` is the factory handed to ``PodCache`` (it makes a new session after
    ``close``)."""

    def __init__(self, configuration) -> None:
        self.cfg = configuration
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        """False for plain HTTP; else the CA, the verification choice and the client
        certificate of the configuration."""
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
                # No total: a watch lasts WATCH_SECONDS; a silent stream still ends.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=WATCH_SECONDS + 10),
                read_bufsize=2**20,
            )  # one event is one line: a pod can exceed 64 KiB
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
