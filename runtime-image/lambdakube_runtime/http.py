"""A deliberately small HTTP/1.1 server on an ``asyncio`` protocol.

Why not ``http.server`` or aiohttp: the runtime sits on the cold-start path of every
function, so it must import quickly and keep the image small (stdlib only), and it must
keep serving probes while a handler runs (``http.server`` is thread-per-request and
blocking; aiohttp is a dependency and tens of milliseconds of imports).

Why a protocol and not ``asyncio.start_server`` streams: every warm invocation crosses
this code twice, and the stream API costs a task per connection, a ``wait_for`` task per
line read and several loop iterations per request. Here a request that arrives in one
segment (the router sends head and body in one write) is parsed synchronously in
``buffer_updated`` and dispatched in the same loop iteration; the answer is written
straight to the transport. ``BufferedProtocol`` lets the kernel copy into one reusable
buffer instead of allocating a fresh 256 KiB ``bytes`` object per read.

The only client is the lambdakube router (plus kubelet probes and humans with curl), so
the subset implemented is small but strict, because a lenient parser in front of a
"one request at a time" guard is how request smuggling starts:

* request line + headers, capped at ``MAX_HEADER_BYTES`` / ``MAX_HEADERS`` (431);
* bodies only with ``Content-Length`` (capped at ``MAX_BODY_BYTES``, 413); any
  ``Transfer-Encoding`` is refused with 411 and the connection closed, since the body's
  end cannot be found without decoding it;
* keep-alive (HTTP/1.1 default, HTTP/1.0 opt-in) and pipelining, answered in order and
  one at a time (the next request on a connection is parsed only once the previous one
  has been answered);
* ``Expect: 100-continue`` (curl sends it for bodies over 1 KiB).

What this subset accepts and refuses is compared with h11's reading of the same bytes in
``tests/runtime/test_http_differential.py`` (where they differ, the test says why).

Protocol errors are answered with a JSON body shaped like every other runtime error
(``{"errorType", "errorMessage"}``) and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
#: Lambda's synchronous invocation payload limit (6 MB), with a little room for /init.
MAX_BODY_BYTES = 6 * 1024 * 1024 + 64 * 1024
#: A keep-alive connection may sit idle this long; routers should recycle theirs sooner.
IDLE_TIMEOUT_SECONDS = 620.0
#: Once a request has started, its headers and body must arrive within this time.
READ_TIMEOUT_SECONDS = 30.0
#: After refusing a request, unread input is discarded for at most this long / this many
#: bytes before the connection is closed (see ``_Connection._linger``).
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
#: The kernel copies received bytes into a reusable buffer of this size.
RECV_BUFFER_BYTES = 64 * 1024
#: Input buffered beyond this while a request is being answered pauses reading (pipelining
#: clients cannot make us buffer without bound).
PIPELINE_BUFFER_BYTES = 64 * 1024

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than TAB are never valid in a header value; echoing one back
# (X-Request-Id is echoed) could split our response.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The end of a request head: an empty line (CRLF or bare LF line endings).
_HEAD_END = re.compile(rb"\n\r?\n")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Request:
    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    keep_alive: bool
    #: The client connected from this host's loopback (the pod's or process's own).
    loopback: bool = False
    #: The size of a body over the server's ``max_body`` that was read and dropped
    #: (``body`` is then empty); only on a server with ``keep_oversize``.
    oversize: int = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    #: Close the connection after this response.
    close: bool = False
    #: Called once the response has been written (or writing failed) and, if ``close``,
    #: the connection is closed. Used to exit after reporting an unhealthy environment.
    after_sent: Callable[[], None] | None = None


def json_response(status: int, obj: object, headers: list[tuple[str, str]] | None = None, **kw) -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, headers or [], **kw)


def error_response(status: int, error_type: str, message: str, **kw) -> Response:
    return json_response(status, {"errorType": error_type, "errorMessage": message}, **kw)


class ProtocolError(Exception):
    """A request we refuse to parse further; answered, then the connection is closed."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.response = error_response(status, error_type, message, close=True)


class Pending:
    """An answer that comes later, from a callback on the event loop (``resolve``).

    Why not an ``asyncio.Future``: a future runs its callbacks in the *next* loop
    iteration, one more pass through the selector on every warm invocation. Resolving a
    ``Pending`` writes the answer to the connection right away.
    """

    __slots__ = ("done", "_deliver")

    def __init__(self) -> None:
        self.done = False
        self._deliver: Callable[[Response], None] | None = None

    def resolve(self, response: Response) -> None:
        """Answer (once; later calls are ignored). Call on the event loop thread."""
        if self.done:
            return
        self.done = True
        assert self._deliver is not None, "resolved before the server saw it"
        self._deliver(response)


#: A route answers at once (``Response``), later (``Pending``), or with a coroutine.
Handler = Callable[[Request], "Response | Pending | Awaitable[Response]"]


def http_date(now: float | None = None) -> str:
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


_date_cache: tuple[int, str] = (0, "")


def _cached_http_date() -> str:
    """The Date header changes once a second; formatting it per response is waste."""
    global _date_cache
    now = time.time()
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, http_date(now))
    return _date_cache[1]


def serialize(response: Response, keep_alive: bool, http10: bool = False) -> bytes:
    """Status line, headers and body as one ``bytes`` (one ``send`` on the socket)."""
    head = (
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}\r\n"
        f"Date: {_cached_http_date()}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
    )
    if not keep_alive:
        head += "Connection: close\r\n"
    elif http10:
        head += "Connection: keep-alive\r\n"
    for name, value in response.headers:
        head += f"{name}: {value}\r\n"
    return (head + "\r\n").encode("latin-1", "replace") + response.body


class HTTPServer:
    """``chunked``, ``max_body`` and ``keep_oversize`` are for the Runtime API
    (``runtime_api``), whose one client is the function's own runtime on loopback: Go's
    ``net/http`` sends a response body of unknown length chunked (with trailers), and a
    body over Lambda's 6 MB limit must be read to its end and answered 413 on the same
    connection (as Lambda's emulator does), so the runtime keeps its connection and the
    invocation gets its ``Function.ResponseSizeTooLarge`` error. The router-facing server
    keeps the strict defaults (no chunked bodies, 413 and close)."""

    def __init__(
        self, handler: Handler, *, chunked: bool = False, max_body: int = MAX_BODY_BYTES, keep_oversize: bool = False
    ):
        self._handler = handler
        self.chunked = chunked
        self.max_body = max_body
        self.keep_oversize = keep_oversize
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False

    async def start(self, host: str, port: int) -> int:
        """Listen and return the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting connections and wait (bounded) for requests being handled.

        Idle keep-alive connections are closed at once; a connection whose request is
        being handled closes after its answer has been written."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close_if_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            pass

    def dispatch(self, request: Request, respond: Callable[[Response], None]) -> None:
        """Run the route for ``request``; ``respond`` is called exactly once, possibly later."""
        self._in_flight += 1
        self._idle.clear()

        def done(response: Response) -> None:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            respond(response)

        try:
            result = self._handler(request)
        except Exception as exc:
            done(internal_error(exc))
            return
        if isinstance(result, Response):
            done(result)
            return
        if isinstance(result, Pending):
            result._deliver = done
            return
        # A coroutine (runs as a task) or a future: answer when it resolves.
        try:
            future = asyncio.ensure_future(result)
        except TypeError as exc:
            done(internal_error(exc))
            return
        future.add_done_callback(lambda fut: done(_result_or_error(fut)))


def internal_error(exc: BaseException) -> Response:
    """500 for a bug in the runtime itself (logged to stderr, never the function's log).
    The answer goes out even when stderr cannot be written (a full disk under the log
    file): otherwise the request would never be answered."""
    try:
        print(f"lambdakube-runtime: internal error: {exc!r}", file=sys.__stderr__, flush=True)
    except (OSError, ValueError):  # stderr full, closed or gone
        pass
    return error_response(500, "Runtime.InternalError", f"{type(exc).__name__}: {exc}")


def _result_or_error(future: asyncio.Future) -> Response:
    if future.cancelled():
        return internal_error(asyncio.CancelledError("the request handler was cancelled"))
    exc = future.exception()
    if exc is not None:
        return internal_error(exc)
    return future.result()


class _Connection(asyncio.BufferedProtocol):
    """One client connection: buffers input, parses and answers requests one at a time.

    States, all on the event loop thread:
    * *idle*: waiting for the first byte of a request (idle timeout applies);
    * *reading*: part of a request arrived (read timeout applies);
    * *busy*: a request was dispatched and its answer is pending; further input is
      buffered but not parsed (pipelined requests are answered in order);
    * *lingering*: a request was refused; input is discarded until the client closes.
    """

    def __init__(self, server: HTTPServer):
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._recv = bytearray(RECV_BUFFER_BYTES)
        self._buf = bytearray()
        self._head: _Head | None = None  # parsed head of a request whose body is pending
        self._busy = False
        self._processing = False
        self._eof = False
        self._closed = False
        self._lingering = -1  # bytes discarded so far once lingering; -1: not lingering
        self._write_paused = False
        self._read_paused = False
        self._after_close: list[Callable[[], None]] = []
        # Idle timer, re-armed lazily: requests only move ``_idle_since``.
        self._idle_since: float | None = self._loop.time()
        self._idle_timer = self._loop.call_later(IDLE_TIMEOUT_SECONDS, self._check_idle)
        self._read_timer: asyncio.TimerHandle | None = None
        self._loopback = False

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loopback = _is_loopback(transport.get_extra_info("peername"))
        self._server._connections.add(self)
        if self._server.closing:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        self._idle_timer.cancel()
        self._cancel_read_timer()
        callbacks, self._after_close = self._after_close, []
        for callback in callbacks:
            callback()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._recv)

    def buffer_updated(self, nbytes: int) -> None:
        if self._lingering >= 0:
            self._lingering += nbytes
            if self._lingering >= LINGER_BYTES:
                self._close()
            return
        self._buf += self._recv[:nbytes]
        if self._busy:
            if len(self._buf) > PIPELINE_BUFFER_BYTES and not self._read_paused:
                self._read_paused = True
                self._transport.pause_reading()
            return
        self._process()

    def eof_received(self) -> bool:
        """Keep the transport open: a request being handled still gets its answer."""
        self._eof = True
        if self._lingering >= 0 or not self._busy:
            self._process_then_close()
        return True

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._busy:
            self._process()

    def close_if_idle(self) -> None:
        """Server shutdown: close unless a request is being answered."""
        if not self._busy:
            self._close()

    # -- parsing and dispatch ----------------------------------------------------------

    def _process(self) -> None:
        """Parse and dispatch buffered requests until one is pending or input runs out.

        Not re-entered: a route that answers at once calls ``_respond`` from inside this
        loop, which then just continues (recursing would nest once per pipelined request).
        """
        if self._processing:
            return
        self._processing = True
        try:
            self._process_buffered()
        finally:
            self._processing = False
        if self._eof and not self._busy:
            self._close()
        elif self._read_paused and not self._busy:
            self._read_paused = False
            self._transport.resume_reading()

    def _process_buffered(self) -> None:
        while not (self._busy or self._closed or self._write_paused or self._lingering >= 0):
            try:
                request = self._parse()
            except ProtocolError as exc:
                self._refuse(exc.response)
                return
            if request is None:
                break
            self._busy = True
            self._idle_since = None
            self._server.dispatch(request, lambda response, request=request: self._respond(request, response))  # type: ignore[misc]

    def _process_then_close(self) -> None:
        if self._lingering >= 0:
            self._close()
        else:
            self._process()  # answers complete pipelined requests; closes once idle

    def _parse(self) -> Request | None:
        """One complete request from the buffer, or None (and timers armed) if incomplete."""
        buf = self._buf
        if self._head is None:
            # RFC 9112 2.2: ignore empty lines before a request.
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                del buf[: 2 if buf[:1] == b"\r" else 1]
            if not buf:
                self._request_incomplete(started=False)
                return None
            match = _HEAD_END.search(buf, 0, MAX_HEADER_BYTES + 4)
            if match is None:
                if len(buf) > MAX_HEADER_BYTES + 4:
                    raise _headers_too_large()
                self._request_incomplete(started=True)
                return None
            end = match.end()
            server = self._server
            self._head = _parse_head(buf[:end].decode("latin-1"), server.chunked, server.max_body, server.keep_oversize)
            del buf[:end]
        head = self._head
        if head.chunks is not None or head.dropped >= 0:
            return self._parse_streamed(head)
        if len(buf) < head.length:
            if head.expect_continue:
                head.expect_continue = False
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._request_incomplete(started=True)
            return None
        body = bytes(buf[: head.length])
        del buf[: head.length]
        self._head = None
        self._cancel_read_timer()
        return head.request(body, self._loopback)

    def _parse_streamed(self, head: _Head) -> Request | None:
        """A chunked body, or one over ``max_body`` being dropped: consumed as it arrives."""
        buf = self._buf
        if head.expect_continue:
            head.expect_continue = False
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if head.chunks is not None:
            if not head.chunks.feed(buf):
                self._request_incomplete(started=True)
                return None
            body, oversize = head.chunks.body(), head.chunks.dropped
            head.headers.update(head.chunks.trailers)
        else:
            take = min(len(buf), head.length - head.dropped)
            del buf[:take]
            head.dropped += take
            if head.dropped < head.length:
                self._request_incomplete(started=True)
                return None
            body, oversize = b"", head.length
        self._head = None
        self._cancel_read_timer()
        request = head.request(body, self._loopback)
        request.oversize = oversize
        return request

    def _request_incomplete(self, started: bool) -> None:
        if not started:
            if self._idle_since is None:
                self._idle_since = self._loop.time()
            return
        self._idle_since = None
        if self._read_timer is None:
            self._read_timer = self._loop.call_later(READ_TIMEOUT_SECONDS, self._read_timed_out)

    # -- answering ---------------------------------------------------------------------

    def _respond(self, request: Request, response: Response) -> None:
        self._busy = False
        keep_alive = request.keep_alive and not response.close and not self._server.closing
        if not self._closed:
            self._transport.write(serialize(response, keep_alive, request.version == "HTTP/1.0"))
        if response.after_sent is not None:
            if keep_alive or self._closed:
                response.after_sent()
            else:  # once the answer is flushed and the connection closed
                self._after_close.append(response.after_sent)
        if not keep_alive:
            self._close()
            return
        self._idle_since = self._loop.time()
        self._process()

    def _refuse(self, response: Response) -> None:
        """Answer a protocol error, then linger (see ``_linger``)."""
        if not self._closed:
            self._transport.write(serialize(response, keep_alive=False))
        self._linger()

    def _linger(self) -> None:
        """Close after refusing a request whose rest may still be arriving.

        Closing a socket with unread input makes the kernel send RST, which can destroy
        our error response in the client's receive buffer before it is read. So: send
        FIN, then discard input (bounded in time and bytes) until the client closes.
        """
        self._cancel_read_timer()
        self._lingering = 0
        self._buf.clear()
        if self._closed:
            return
        if self._read_paused:
            self._read_paused = False
            self._transport.resume_reading()
        if self._eof or not self._transport.can_write_eof():
            self._close()
            return
        try:
            self._transport.write_eof()
        except (OSError, RuntimeError):
            self._close()
            return
        self._loop.call_later(LINGER_SECONDS, self._close)

    def _close(self) -> None:
        """Close after flushing what was written (the transport does the flushing).
        Nothing is parsed, run or written on this connection after this."""
        self._closed = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- timers ------------------------------------------------------------------------

    def _check_idle(self) -> None:
        """Close an idle keep-alive connection; otherwise re-arm for the next deadline."""
        if self._closed:
            return
        now = self._loop.time()
        since = self._idle_since
        if since is not None and now - since >= IDLE_TIMEOUT_SECONDS - 0.001:
            self._close()
            return
        next_check = (since if since is not None else now) + IDLE_TIMEOUT_SECONDS
        self._idle_timer = self._loop.call_at(next_check, self._check_idle)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self._closed and not self._busy and self._lingering < 0:
            self._refuse(ProtocolError(408, "RequestTimeout", "request headers/body not received in time").response)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None


class _Head:
    """A parsed request line and header block; the body is still to come."""

    __slots__ = (
        "method",
        "target",
        "version",
        "headers",
        "length",
        "keep_alive",
        "expect_continue",
        "chunks",
        "dropped",
    )

    def __init__(self, method, target, version, headers, length, keep_alive, expect_continue):
        #: The decoder of a chunked body, else None.
        self.chunks: _Chunked | None = None
        #: Bytes of an oversize Content-Length body dropped so far; -1: not dropping.
        self.dropped = -1
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue

    def request(self, body: bytes, loopback: bool = False) -> Request:
        path = self.target.split("?", 1)[0]
        return Request(self.method, self.target, path, self.version, self.headers, body, self.keep_alive, loopback)


def _is_loopback(peer: object) -> bool:
    """A TCP peer (``(host, port, ...)``) on 127.0.0.0/8 or ::1 (also IPv4-mapped)."""
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    if not isinstance(host, str):
        return False
    host = host.removeprefix("::ffff:")
    return host.startswith("127.") or host == "::1"


def _parse_head(text: str, chunked: bool = False, max_body: int = MAX_BODY_BYTES, keep_oversize: bool = False) -> _Head:
    """Validate and parse a complete head (request line, headers, the empty line)."""
    # Lines end in LF or CRLF, and rstrip("\r") below would also eat a bare CR before the
    # CRLF, which RFC 9112 2.2 says is invalid (bare CRs elsewhere fail the character
    # checks). One scan of the head costs less than checking each line.
    if "\r\r\n" in text:
        raise ProtocolError(400, "BadRequest", "bare CR at the end of a line")
    lines = text.split("\n")
    del lines[-2:]  # the empty line that ends the head, and what follows its LF
    method, target, version = _parse_request_line(lines[0].rstrip("\r"))
    headers, content_lengths = _parse_headers(lines[1:])
    encoding = headers.get("transfer-encoding")
    if chunked and encoding is not None and encoding.lower() == "chunked" and not content_lengths:
        keep_alive = _keep_alive(headers, version)
        head = _Head(method, target, version, headers, 0, keep_alive, version == "HTTP/1.1" and _expects(headers))
        head.chunks = _Chunked(max_body, keep_oversize)
        return head
    if encoding is not None:
        raise ProtocolError(
            411,
            "LengthRequired",
            "Transfer-Encoding (e.g. chunked) request bodies are not supported; "
            "send the body with a Content-Length header",
        )
    length = _content_length(content_lengths, max_body, keep_oversize)
    keep_alive = _keep_alive(headers, version)
    expect_continue = length > 0 and version == "HTTP/1.1" and _expects(headers)
    head = _Head(method, target, version, headers, length, keep_alive, expect_continue)
    if length > max_body:  # only with keep_oversize (else _content_length refused it)
        head.dropped = 0
    return head


def _keep_alive(headers: dict[str, str], version: str) -> bool:
    connection = headers.get("connection")
    tokens = {t.strip().lower() for t in connection.split(",")} if connection else ()
    return "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens


def _expects(headers: dict[str, str]) -> bool:
    return headers.get("expect", "").lower() == "100-continue"


def _parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    # The target is visible ASCII only (RFC 9112 3.2): it has no spaces (split on them),
    # so isascii + isprintable (no control characters, TAB or DEL) says exactly that.
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not parts[1]
        or not (parts[1].isascii() and parts[1].isprintable())
    ):
        raise ProtocolError(400, "BadRequest", "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        # 505 only for a well-formed version we do not speak; anything else (a stray CR,
        # "HTTP/one") is not a version at all. re's cache compiles this on first use.
        if re.fullmatch(r"HTTP/[0-9]\.[0-9]", version):
            raise ProtocolError(505, "HTTPVersionNotSupported", f"{version} is not supported")
        raise ProtocolError(400, "BadRequest", "malformed request line")
    return method, target, version


def _parse_headers(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    if len(lines) > MAX_HEADERS:
        raise _headers_too_large()
    headers: dict[str, str] = {}
    content_lengths: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise ProtocolError(400, "BadRequest", "obsolete header line folding is not accepted")
        name, sep, value = line.rstrip("\r").partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise ProtocolError(400, "BadRequest", f"malformed header line: {name[:40]!r}")
        name = name.lower()
        value = value.strip(" \t")
        if _CONTROL_CHARS.search(value):
            raise ProtocolError(400, "BadRequest", f"control character in the {name} header")
        if name == "content-length":
            content_lengths.append(value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers, content_lengths


def _content_length(values: list[str], max_body: int = MAX_BODY_BYTES, keep_oversize: bool = False) -> int:
    if not values:
        return 0
    value = values[0]
    # Over 20 digits is beyond any 64-bit length (h11 draws the same line), and int()
    # raises ValueError past 4300 digits, which would escape as a crash, not a 400.
    if len(set(values)) != 1 or not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise ProtocolError(400, "BadRequest", "invalid Content-Length header")
    length = int(value)
    if length > max_body and not keep_oversize:
        raise ProtocolError(413, "RequestTooLargeException", f"request body of {length} bytes exceeds {max_body} bytes")
    return length


def _headers_too_large() -> ProtocolError:
    return ProtocolError(
        431, "RequestHeaderFieldsTooLarge", f"request headers exceed {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields"
    )


#: A chunk-size line (hex size, optional extensions) or a trailer line is at most this long.
MAX_CHUNK_LINE_BYTES = 4096
_CHUNK_SIZE = re.compile(r"[0-9A-Fa-f]{1,15}")


class _Chunked:
    """Incremental decoder of a ``Transfer-Encoding: chunked`` body (RFC 9112 7.1).

    ``feed`` consumes what it can from the connection's buffer and returns True once the
    last chunk and the trailers have arrived. Data beyond ``limit`` bytes is counted in
    ``dropped`` instead of kept with ``keep_oversize`` (an oversize body costs no memory),
    else refused (413, as a Content-Length body). Trailers (Go's runtime
    client sends ``Lambda-Runtime-Function-Error-Type`` as one) are parsed like headers."""

    __slots__ = (
        "_parts",
        "_size",
        "_left",
        "_state",
        "limit",
        "keep_oversize",
        "dropped",
        "trailers",
        "_trailer_lines",
    )

    def __init__(self, limit: int, keep_oversize: bool):
        self._parts: list[bytes] = []
        self._size = 0  # bytes of data seen, kept or dropped
        self._left = 0  # bytes of the current chunk still to come
        self._state = "size"  # size | data | data_end | trailers | done
        self.limit = limit
        self.keep_oversize = keep_oversize
        self.dropped = 0
        self.trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []

    def body(self) -> bytes:
        return b"".join(self._parts)

    def _line(self, buf: bytearray) -> str | None:
        end = buf.find(b"\n", 0, MAX_CHUNK_LINE_BYTES + 2)
        if end < 0:
            if len(buf) > MAX_CHUNK_LINE_BYTES:
                raise ProtocolError(400, "BadRequest", "chunk-size or trailer line too long")
            return None
        line = buf[:end].decode("latin-1")
        del buf[: end + 1]
        return line[:-1] if line.endswith("\r") else line

    def feed(self, buf: bytearray) -> bool:
        while True:
            if self._state == "size":
                line = self._line(buf)
                if line is None:
                    return False
                size = line.split(";", 1)[0].strip(" \t")
                if not _CHUNK_SIZE.fullmatch(size):
                    raise ProtocolError(400, "BadRequest", "invalid chunk size")
                self._left = int(size, 16)
                self._state = "data" if self._left else "trailers"
            elif self._state == "data":
                if not buf:
                    return False
                take = min(len(buf), self._left)
                self._keep(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if self._left:
                    return False
                self._state = "data_end"
            elif self._state == "data_end":
                line = self._line(buf)
                if line is None:
                    return False
                if line:
                    raise ProtocolError(400, "BadRequest", "chunk data longer than its size")
                self._state = "size"
            elif self._state == "trailers":
                line = self._line(buf)
                if line is None:
                    return False
                if line:
                    self._trailer_lines.append(line)
                    if len(self._trailer_lines) > MAX_HEADERS:
                        raise _headers_too_large()
                    continue
                self.trailers, _ = _parse_headers(self._trailer_lines)
                self._state = "done"
                return True
            else:
                return True

    def _keep(self, data: bytes) -> None:
        size = self._size + len(data)
        if size > self.limit and not self.keep_oversize:
            raise ProtocolError(413, "RequestTooLargeException", f"request body exceeds {self.limit} bytes")
        if size > self.limit:
            self.dropped = size
            self._parts.clear()  # an oversize body is dropped whole
        else:
            self._parts.append(data)
        self._size = size
