"""HTTP/1.1 client for the runtime's ``POST /invoke``: one keep-alive connection per env.

Why not aiohttp's client here: an environment serves one request at a time and the pool
leases it exclusively, so a connection pool keyed by host is pure overhead on the hot
path. Each environment owns one ``EnvConnection``; the request is written in a single
``writelines`` (the payload bytes are forwarded as received, never re-encoded) and the
response is parsed straight from ``data_received``. The runtime always answers with a
``Content-Length`` (see ``lambdakube_runtime.http``), which is all we need to parse.

A connection that the runtime closed while idle is noticed (``connection_lost``) and
reopened on the next request; a connection lost *during* a request means the
environment died mid-request: ``EnvironmentGone``, never a retry (the handler may have
run, and a request must not be served twice).
"""

from __future__ import annotations

import asyncio

MAX_RESPONSE_HEAD = 64 * 1024
#: Payloads up to this size are copied into the request head's buffer (one syscall).
_COPY_LIMIT = 256 * 1024


class EnvironmentGone(ConnectionError):
    """The connection to the environment failed or closed before a complete response."""


class RuntimeResponse:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: EnvConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[RuntimeResponse] | None = None
        self.head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start
        self.length = -1

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.conn._lost(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                EnvironmentGone(f"connection to the environment closed mid-request ({exc or 'EOF'})")
            )

    def eof_received(self):
        return False  # close the transport; connection_lost reports it

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            return  # unexpected bytes on an idle connection: ignore, the next request fails
        buf = self.buf
        buf += data
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_RESPONSE_HEAD:
                    self._fail("response headers too large")
                return
            try:
                self.head = _parse_head(bytes(buf[:end]), end + 4)
            except ValueError as exc:
                self._fail(f"malformed response from the runtime: {exc}")
                return
            cl = self.head[1].get("content-length")
            self.length = int(cl) if cl is not None and cl.isdigit() else -1
            if self.length < 0:
                self._fail("response without Content-Length")
                return
        status, headers, start = self.head
        if len(buf) - start >= self.length:
            body = bytes(buf[start : start + self.length])
            del buf[:]
            self.head = None
            self.waiter.set_result(RuntimeResponse(status, headers, body))

    def _fail(self, message: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(EnvironmentGone(message))
        if self.transport is not None:
            self.transport.close()


def _parse_head(head: bytes, _start: int) -> tuple[int, dict[str, str], int]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return status, headers, _start


def _expire(fut: asyncio.Future, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no response from the environment within {timeout:g}s"))


class EnvConnection:
    """A persistent connection to one environment. Not for concurrent use (by design)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._proto: _Protocol | None = None
        self._busy = False
        self._host_header = f"Host: {host}:{port}\r\n".encode()
        #: The loop of the current connection. Why cached: in Python 3.11 every
        #: ``asyncio.get_running_loop()`` costs a ``getpid`` syscall.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: path -> request head up to the Content-Length value (static per connection).
        self._prefixes: dict[str, bytes] = {}

    @classmethod
    def for_address(cls, address: str) -> EnvConnection:
        host, _, port = address.rpartition(":")
        return cls(host, int(port))

    def _lost(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        except OSError as exc:
            raise EnvironmentGone(f"cannot connect to the environment at {self.host}:{self.port}: {exc}") from exc
        self._proto = proto
        self._loop = loop
        return proto

    def _prefix(self, path: str) -> bytes:
        prefix = self._prefixes[path] = (
            b"POST " + path.encode() + b" HTTP/1.1\r\n" + self._host_header
            + b"Content-Type: application/json\r\nContent-Length: ")
        return prefix

    async def request(
        self, path: str, body: bytes, headers: list[tuple[str, str]], timeout: float
    ) -> RuntimeResponse:
        """POST ``body`` to ``path``; raises EnvironmentGone or TimeoutError (then closed)."""
        assert not self._busy, "two requests on one environment connection"
        self._busy = True
        timer = None
        try:
            proto = self._proto
            if proto is None or proto.transport is None or proto.transport.is_closing():
                async with asyncio.timeout(timeout):
                    proto = await self._connect()
            loop = self._loop
            # one timer per request: cheaper than asyncio.timeout on the hot path
            fut = loop.create_future()
            timer = loop.call_later(timeout, _expire, fut, timeout)
            # the static part of the head is built once per path; the rest in one format
            head = b"%s%d\r\n%s\r\n" % (
                self._prefixes.get(path) or self._prefix(path), len(body),
                "".join([f"{name}: {value}\r\n" for name, value in headers]).encode("latin-1"))
            proto.waiter = fut
            if len(body) <= _COPY_LIMIT:
                # one send() for head + body: on loopback each send costs a wakeup
                proto.transport.write(head + body)
            else:
                proto.transport.writelines((head, body))
            resp = await fut
            if resp.headers.get("connection", "").lower() == "close":
                self.close()
            return resp
        except BaseException:
            # Timed out or cancelled mid-request: the connection's state is unknown.
            self.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if self._proto is not None:
                self._proto.waiter = None
            self._busy = False

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
