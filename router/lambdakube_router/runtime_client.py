"""HTTP/1.1 client for the runtime's ``POST /invoke``: one keep-alive connection per env.

Why not aiohttp's client here: an environment serves one request at a time and the pool
leases it exclusively, so a connection pool keyed by host is pure overhead on the hot
path. Each environment owns one ``EnvConnection``; the request is written in a single
``writelines`` (the payload bytes are forwarded as received, never re-encoded) and the
response is parsed straight from ``data_received``. The runtime always answers with a
``Content-Length`` (see ``lambdakube_runtime.http``), which is all we need to parse; a
response framed any other way (``Transfer-Encoding``, conflicting lengths, read-to-EOF)
is refused rather than guessed at, since a wrong guess hands one invocation's bytes to
the next. Interim 1xx responses are skipped (RFC 9110 15.2), and a connection that
delivers bytes nobody asked for is closed. The parser is compared with h11's in
``tests/router/test_runtime_client_differential.py``.

A connection that the runtime closed while idle is noticed (``connection_lost``) and
reopened on the next request; a connection lost *during* a request means the
environment died mid-request: ``EnvironmentGone``, never a retry (the handler may have
run, and a request must not be served twice). A connection that cannot be made at all
(the environment died while idle: refused) is ``NotDelivered``: nothing was sent, so the
engine sends the request to another environment. Why a reused connection is peeked at
first (one non-blocking ``recv(MSG_PEEK)``, about a microsecond): a runtime killed
an instant ago has closed its end in the kernel before the event loop ran
``connection_lost``; written to anyway, the request would be lost "mid-request" and
answered 502, although the runtime could never have read it. Seen closed, the connection
is reopened instead, and a dead runtime refuses that: ``NotDelivered``. Connecting has its own short deadline
(``CONNECT_TIMEOUT``): a SYN into a deleted pod's address must not eat the function's
whole timeout.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

MAX_RESPONSE_HEAD = 64 * 1024
#: Seconds to establish a connection (bounded further by the request's own timeout).
CONNECT_TIMEOUT = 5.0
#: Payloads up to this size are copied into the request head's buffer (one syscall).
_COPY_LIMIT = 256 * 1024
#: A whole response head (without its final CRLFCRLF), validated in one regex call, which
#: costs less than checking line by line: status line, then ``token: value`` lines whose
#: values hold no control character but TAB (so CR and LF only appear as CRLF). Possessive
#: quantifiers: nothing here needs backtracking.
_HEAD = re.compile(
    rb"HTTP/1\.[0-9] ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*+)?+"
    rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[\t\x20-\x7e\x80-\xff]*+)*+"
)


class EnvironmentGone(ConnectionError):
    """The connection to the environment failed or closed before a complete response."""


class NotDelivered(EnvironmentGone):
    """No connection to the environment could be made (refused, unreachable, timed
    out): not one byte of the request left the router, so sending it to another
    environment cannot run it twice."""


class RuntimeResponse:
    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
        self.status = status
        self.headers = headers  # lower-cased names; repeated headers joined with ", "
        self.body = body
        #: The connection cannot carry another request (Connection: close, HTTP/1.0, or
        #: bytes after the body that nobody asked for).
        self.close = close


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: EnvConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[RuntimeResponse] | None = None
        #: status, headers, body length, close after, body start: a final head whose body is pending
        self.head: tuple[int, dict[str, str], int, bool, int] | None = None
        #: A duplicate of the transport's socket, only to peek at it (``peer_closed``):
        #: the loop's own socket object is not ours to call (and uvloop has none).
        self.peek: socket.socket | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.peek = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))

    def peer_closed(self) -> bool:
        """The runtime closed (or reset) its end, or sent something unasked: either way
        this connection cannot carry a request."""
        if self.peek is None:
            return False
        try:
            self.peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"" (EOF) or bytes
        except BlockingIOError:
            return False  # nothing to read: open and quiet, as it should be
        except OSError:
            return True  # reset
        return True

    def connection_lost(self, exc) -> None:
        if self.peek is not None:
            self.peek.close()
            self.peek = None
        self.conn._lost(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                EnvironmentGone(f"connection to the environment closed mid-request ({exc or 'EOF'})")
            )

    def eof_received(self):
        return False  # close the transport; connection_lost reports it

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # The runtime never sends unasked. Kept, these bytes could later be read as the
            # next request's answer; dropped, the framing is still in doubt. Close instead:
            # the next request reconnects.
            if self.transport is not None:
                self.transport.close()
            return
        buf = self.buf
        buf += data
        while self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_RESPONSE_HEAD:
                    self._fail("response headers too large")
                return
            try:
                status, headers, length, close = _parse_head(bytes(buf[:end]))
            except ValueError as exc:
                self._fail(f"malformed response from the runtime: {exc}")
                return
            if status >= 200:
                self.head = (status, headers, length, close, end + 4)
            else:  # an interim response (100 Continue, 103 ...): the final one follows
                del buf[: end + 4]
        status, headers, length, close, start = self.head
        extra = len(buf) - start - length
        if extra >= 0:
            body = bytes(buf[start : start + length])
            del buf[:]
            self.head = None
            self.waiter.set_result(RuntimeResponse(status, headers, body, close or extra > 0))

    def _fail(self, message: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(EnvironmentGone(message))
        if self.transport is not None:
            self.transport.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str], int, bool]:
    """(status, headers, body length, close after) of a response head without its CRLFCRLF.

    Raises ValueError for anything the runtime would not send, above all for any framing
    other than one valid Content-Length."""
    match = _HEAD.fullmatch(head)
    if match is None:
        raise ValueError(f"malformed response head, starting {head[:60]!r}")
    status = int(match[1])
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if status < 200:
        if status == 101:
            raise ValueError("101 Switching Protocols, but no upgrade was asked for")
        return status, headers, 0, False
    if "transfer-encoding" in headers:
        raise ValueError("Transfer-Encoding in a response (the runtime always sends Content-Length)")
    cl = headers.get("content-length")
    if cl is None:
        raise ValueError("response without Content-Length")
    if "," in cl:  # repeated (or listed) values must all be the same (RFC 9110 8.6)
        values = {v.strip(" \t") for v in cl.split(",")}
        if len(values) != 1:
            raise ValueError(f"conflicting Content-Length values {cl[:60]!r}")
        cl = headers["content-length"] = values.pop()
    if not (cl.isascii() and cl.isdigit()) or len(cl) > 20:
        raise ValueError(f"invalid Content-Length {cl[:60]!r}")
    connection = headers.get("connection")
    close = head[5:8] == b"1.0" or (
        connection is not None and "close" in {t.strip(" \t") for t in connection.lower().split(",")}
    )
    return status, headers, int(cl), close


def _expire(fut: asyncio.Future, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no response from the environment within {timeout:g}s"))


class EnvConnection:
    """A persistent connection to one environment. Not for concurrent use (by design):
    an environment with several slots (``perEnvironmentConcurrency``) gets one more per
    invocation running at once (``Environment.spare``)."""

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

    @property
    def busy(self) -> bool:
        """A request is on it (an environment with several slots needs more than one)."""
        return self._busy

    @classmethod
    def for_address(cls, address: str) -> EnvConnection:
        host, _, port = address.rpartition(":")
        return cls(host, int(port))

    def _lost(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def _connect(self, timeout: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(timeout, CONNECT_TIMEOUT)):
                _, proto = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        except TimeoutError as exc:
            raise NotDelivered(
                f"cannot connect to the environment at {self.host}:{self.port}: no answer within"
                f" {min(timeout, CONNECT_TIMEOUT):g}s"
            ) from exc
        except OSError as exc:
            raise NotDelivered(f"cannot connect to the environment at {self.host}:{self.port}: {exc}") from exc
        self._proto = proto
        self._loop = loop
        return proto

    def _prefix(self, path: str) -> bytes:
        prefix = self._prefixes[path] = (
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\n"
            + self._host_header
            + b"Content-Type: application/json\r\nContent-Length: "
        )
        return prefix

    async def request(self, path: str, body: bytes, headers: list[tuple[str, str]], timeout: float) -> RuntimeResponse:
        """POST ``body`` to ``path``; raises EnvironmentGone or TimeoutError (then closed)."""
        assert not self._busy, "two requests on one environment connection"
        self._busy = True
        timer = None
        try:
            proto = self._proto
            if proto is not None and proto.peer_closed():
                self.close()
                proto = None
            if proto is None or proto.transport is None or proto.transport.is_closing():
                proto = await self._connect(timeout)
            loop = self._loop
            # one timer per request: cheaper than asyncio.timeout on the hot path
            fut = loop.create_future()
            timer = loop.call_later(timeout, _expire, fut, timeout)
            # the static part of the head is built once per path; the rest in one format
            head = b"%s%d\r\n%s\r\n" % (
                self._prefixes.get(path) or self._prefix(path),
                len(body),
                "".join([f"{name}: {value}\r\n" for name, value in headers]).encode("latin-1"),
            )
            proto.waiter = fut
            if len(body) <= _COPY_LIMIT:
                # one send() for head + body: on loopback each send costs a wakeup
                proto.transport.write(head + body)
            else:
                proto.transport.writelines((head, body))
            resp = await fut
            if resp.close:
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
