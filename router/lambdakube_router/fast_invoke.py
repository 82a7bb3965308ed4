"""The router's front: every connection starts here, Invoke requests are served without
aiohttp, and anything else hands the connection to aiohttp for good.

Why: a warm invoke's router CPU was about 400 µs through aiohttp, much of it its request
and response machinery (a request object, routing, middlewares, a response object, its
header writer) for a request whose shape is always the same. This protocol recognises
that shape in one regex over the head and answers with one ``write`` (315 µs in the same
run of ``bench/router_overhead.py``); the rules of an Invoke stay in
``invoke_api.answer``, which aiohttp's route calls too.

The rule that keeps it safe: **anything this parser is not sure of goes to aiohttp**,
with every byte read so far, before anything was answered on the connection's current
request. That is a method other than POST, another path or query, HTTP/1.0, any
``Transfer-Encoding``, ``Expect``, ``Upgrade`` or ``Connection`` other than keep-alive,
a missing or repeated header that frames the body, a body over the synchronous limit,
percent-escapes other than ``%3A`` (an ARN's colons) and ``%24`` (``$LATEST``), or
a header line that is not plainly ``token: value``. aiohttp then parses the same bytes
and answers, as it would have without the front; the front never answers a request it
only half understood. A connection handed over stays with aiohttp.

What aiohttp did around the Invoke route, the front does too: an idle connection is
closed after ``keepalive_seconds`` (also one that has not sent a whole head yet), a body
that does not arrive within ``body_timeout`` is answered 408 and the connection closed,
requests are answered in order one at a time (pipelined bytes wait, reading pauses
above ``PIPELINE_BUFFER_BYTES``, and no further request starts while the answers already
written wait for a client that does not read), and a client that hangs up before its answer is
counted (``lambdakube_http_aborted_total{stage="response"}``); its invocation still runs
to the end, as with aiohttp (no handler cancellation); one that hangs up mid-body is
counted too (``stage="body"``). With auth on, the front asks ``auth.Access``, the check
aiohttp's middleware makes, what the Invoke needs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web

from lambdakube_router import invoke_api, keys, request_body
from lambdakube_router.access import INVOKE_ROUTE, Requirement, requirement
from lambdakube_router.auth import Access
from lambdakube_router.client_guard import ConnectionCap
from lambdakube_router.invocations import error_result
from lambdakube_router.names import Accounts

log = logging.getLogger(__name__)

#: A request head longer than this is aiohttp's to judge.
MAX_HEAD_BYTES = 16 * 1024
#: Pipelined input buffered while a request is being answered; above it, reading pauses.
PIPELINE_BUFFER_BYTES = 256 * 1024
INVOKE_PREFIX = b"POST /2015-03-31/functions/"

#: The head of an Invoke the front serves, validated whole (without its final CRLFCRLF):
#: the request line, then ``token: value`` lines with no control character but TAB in a
#: value. Possessive quantifiers: nothing needs backtracking.
_HEAD = re.compile(
    rb"POST /2015-03-31/functions/([A-Za-z0-9_.:%$-]++)/invocations(?:\?Qualifier=([A-Za-z0-9_.%$-]*+))? HTTP/1\.1"
    rb"((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[\t\x20-\x7e]*+)*+)"
)
#: The end of a head written with a bare LF (``\n\n`` or ``\n\r\n`` without CRLFCRLF).
_BARE_LF_END = re.compile(rb"\n\r?\n")
#: The only escapes a name or qualifier may carry here (what the AWS SDKs send).
_ESCAPES = {b"%3A": b":", b"%3a": b":", b"%24": b"$"}
_ESCAPE = re.compile(rb"%..")
#: Headers that change how the request is framed or answered: aiohttp's to handle.
_HAND_OVER = frozenset(("transfer-encoding", "expect", "upgrade", "te", "trailer"))


class Headers(dict):
    """A head's headers by lower-cased name, looked up in any case (as aiohttp's are:
    ``access.request_token`` reads them for both servers)."""

    def get(self, name: str, default=None):
        return dict.get(self, name.lower(), default)


class Head:
    """An Invoke head the front serves."""

    __slots__ = ("function_name", "qualifier", "headers", "length")

    def __init__(self, function_name: str, qualifier: str | None, headers: Headers, length: int) -> None:
        self.function_name = function_name
        self.qualifier = qualifier
        self.headers = headers  # lower-cased names, each once
        self.length = length


def _unescape(raw: bytes) -> str | None:
    if b"%" in raw:
        try:
            raw = _ESCAPE.sub(lambda m: _ESCAPES[m[0]], raw)
        except KeyError:
            return None
        if b"%" in raw:  # a "%" without two characters after it
            return None
    return raw.decode("ascii")


def parse_head(head: bytes, max_body: int = invoke_api.MAX_SYNC_PAYLOAD) -> Head | None:
    """The Invoke ``head`` (without its CRLFCRLF) asks for, or None: aiohttp's to parse.

    A pure function of the bytes, so the cases where the front steps aside are a table
    (``tests/unit/test_fast_invoke.py``)."""
    match = _HEAD.fullmatch(head)
    if match is None:
        return None
    name = _unescape(match[1])
    qualifier = _unescape(match[2]) if match[2] is not None else None
    if name is None or (match[2] is not None and qualifier is None):
        return None
    headers = Headers()
    lines = match[3]
    if lines:
        for line in lines[2:].decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            key = key.lower()
            if key in headers or key in _HAND_OVER:
                return None
            headers[key] = value.strip(" \t")
    connection = headers.get("connection")
    if connection is not None and connection.lower() != "keep-alive":
        return None
    length = headers.get("content-length")
    if length is None or not length.isdigit() or len(length) > 10 or int(length) > max_body:
        return None
    return Head(name, qualifier, headers, int(length))


def _need_in(head: Head, accounts: Accounts) -> Callable[[str], Requirement]:
    """What the Invoke needs, as ``auth.middleware`` asks it of an aiohttp request."""
    match = {"FunctionName": head.function_name}
    query = {} if head.qualifier is None else {"Qualifier": head.qualifier}
    header_namespace = head.headers.get("x-lambdakube-namespace")
    return lambda default: requirement(
        "POST",
        INVOKE_ROUTE,
        match,
        query,
        header_namespace=header_namespace,
        default_namespace=default,
        accounts=accounts,
    )


def _request(head: Head, default_namespace: str) -> invoke_api.InvokeRequest:
    h = dict(head.headers)  # looked up by lower-cased names: a plain dict's get
    ctype = h.get("content-type")
    return invoke_api.InvokeRequest(
        function_name=head.function_name,
        qualifier=head.qualifier,
        namespace=h.get("x-lambdakube-namespace") or default_namespace,
        invocation_type=h.get("x-amz-invocation-type", "RequestResponse"),
        content_type=ctype.partition(";")[0].strip(" \t").lower() if ctype else "application/octet-stream",
        client_context=h.get("x-amz-client-context"),
        log_type=h.get("x-amz-log-type"),
    )


#: The reason phrase of each status (the ones aiohttp sends: ``http.HTTPStatus``'s).
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_date: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The Date header changes once a second: formatted once a second."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode())
    return _date[1]


def serialize(status: int, headers: dict[str, str], body: bytes, close: bool = False) -> bytes:
    """Status line, headers and body as one ``bytes`` (one ``send``). Raises ValueError
    for a header value with CR or LF, as aiohttp does: it would split the answer."""
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if not lines.count("\r") == lines.count("\n") == len(headers):  # one CRLF a line, no other
        raise ValueError("a CR or LF in a response header")
    framing = b"" if status == 204 else b"Content-Length: %d\r\n" % len(body)
    return b"HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s\r\n%s" % (
        status,
        _REASONS.get(status, b"Unknown"),
        _http_date(),
        lines.encode("latin-1"),
        framing,
        b"Connection: close\r\n" if close else b"",
        body,
    )


def _internal_error() -> bytes:
    return serialize(
        *invoke_api.reply(error_result(500, "ServiceException", "The router failed to handle the request"))
    )


class Front:
    """What every connection's front shares: the app, aiohttp's protocol factory (for the
    connections handed over) and the open fronts (counted by ``ConnectionCap``, closed
    at shutdown)."""

    def __init__(self, app: web.Application, server: web.Server, keepalive: float, body_timeout: float) -> None:
        self.app = app
        self.server = server
        self.keepalive = keepalive
        self.body_timeout = body_timeout
        self.metrics = app[keys.METRICS]
        self.config = app[keys.CONFIG]
        #: Fronts still serving their connection (not handed to aiohttp).
        self.connections: set[FastInvoke] = set()
        #: The check of every request, when auth is on (the one aiohttp's routes get).
        self.access: Access | None = app.get(keys.ACCESS)

    def __call__(self) -> asyncio.Protocol:
        if not self.config.fast_invoke:
            return self.server()
        return FastInvoke(self)

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now, and the rest once their answer is written (at
        most ``timeout`` seconds)."""
        busy = [c.serving for c in self.connections if c.serving is not None]
        for c in list(self.connections):
            if c.serving is None:
                c.close()
        if busy:
            await asyncio.wait(busy, timeout=timeout)
        for c in list(self.connections):
            c.close()


class FastInvoke(asyncio.Protocol):
    """One connection's front: serves Invoke heads ``parse_head`` accepts, one at a time."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head: Head | None = None
        self.body_start = 0
        #: The task answering the current request (None: between requests).
        self.serving: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()
        #: Loop time since when the connection has had no complete request (None: it has
        #: one). Why a time and not a timer re-armed after every answer: one timer per
        #: connection, looked at when it fires, costs nothing per request.
        self.idle_since: float | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        #: Armed only while a head waits for the rest of its body.
        self.body_timer: asyncio.TimerHandle | None = None
        self.paused = False
        #: The transport's buffer is over its high-water mark (a client that does not
        #: read): no further request is started until it drains (``resume_writing``).
        self.write_paused = False
        self.closed = False

    # -- the connection -----------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.front.connections.add(self)
        self.idle_since = self.loop.time()
        self.idle_timer = self.loop.call_later(self.front.keepalive, self._idle)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.front.connections.discard(self)
        self._disarm()
        if self.head is not None and self.serving is None:  # gone before its whole body came
            self.front.metrics.http_aborted.labels("body").inc()
            log.debug("a client hung up while sending an Invoke of %r", self.head.function_name)

    def eof_received(self):
        return False  # close; an invocation already running still runs

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.serving is None and self.buf and not self.closed:
            self._advance()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _disarm(self) -> None:
        for timer in (self.idle_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.idle_timer = self.body_timer = None

    def _idle(self) -> None:
        """Close a connection without a complete request for ``keepalive`` seconds;
        otherwise look again when that could first be the case."""
        self.idle_timer = None
        if self.closed:
            return
        keepalive = self.front.keepalive
        wait = keepalive if self.idle_since is None else self.idle_since + keepalive - self.loop.time()
        if wait > 0:
            self.idle_timer = self.loop.call_later(wait, self._idle)
        else:
            self.close()

    def _body_late(self) -> None:
        self.body_timer = None
        if self.serving is not None or self.head is None or self.transport is None:
            return
        self.front.metrics.http_closed.labels("body_timeout").inc()
        seconds = self.front.body_timeout
        log.info("closed a connection: its body took over %s s", seconds)
        late = error_result(408, "RequestTimeoutException", f"the request body was not received within {seconds:g} s")
        self.transport.write(serialize(*invoke_api.reply(late), close=True))
        self.transport.close()

    # -- requests -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.serving is None and not self.write_paused:
            self._advance()
        elif len(self.buf) > PIPELINE_BUFFER_BYTES and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _advance(self) -> None:
        """Start the next request whose head and body are all here (or hand over)."""
        buf = self.buf
        if self.head is None:
            if buf[: len(INVOKE_PREFIX)] != INVOKE_PREFIX[: len(buf)]:
                self._hand_over()  # cannot become an Invoke: no need to wait for the head
                return
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                # A head ended by a bare LF never gets its CRLFCRLF: aiohttp's to judge now,
                # not after the keep-alive timeout.
                if len(buf) > MAX_HEAD_BYTES or _BARE_LF_END.search(buf) is not None:
                    self._hand_over()
                return
            head = parse_head(bytes(buf[:end]))
            if head is None:
                self._hand_over()
                return
            self.head = head
            self.body_start = end + 4
            self.idle_since = None
        need = self.body_start + self.head.length
        if len(buf) < need:
            if self.body_timer is None:
                self.body_timer = self.loop.call_later(self.front.body_timeout, self._body_late)
            return
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        head = self.head
        body = bytes(buf[self.body_start : need])
        del buf[:need]
        self.head = None
        self.serving = asyncio.ensure_future(self._serve(head, body))

    async def _serve(self, head: Head, body: bytes) -> None:
        front = self.front

        async def read_body(limit: int) -> bytes:
            if len(body) > limit:
                raise request_body.TooLarge(len(body))
            return body

        try:
            namespace = front.config.namespace
            access = front.access
            grant = None if access is None else await access.check(_need_in(head, access.accounts), head.headers)
            if isinstance(grant, web.Response):  # refused: 401, 403 or 503
                assert isinstance(grant.body, bytes)
                out = serialize(grant.status, dict(grant.headers), grant.body)
            else:
                if grant is not None and grant.home is not None:
                    namespace = grant.home
                out = serialize(*await invoke_api.answer(front.app, _request(head, namespace), read_body))
        except Exception:
            log.exception("the Invoke of %r failed in the router", head.function_name)
            out = _internal_error()
        self.serving = None
        if self.closed or self.transport is None or self.transport.is_closing():
            front.metrics.http_aborted.labels("response").inc()
            log.debug("a client hung up before its answer to an Invoke of %r", head.function_name)
            return
        self.transport.write(out)
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self.idle_since = self.loop.time()
        if self.buf and not self.write_paused:
            self._advance()

    def _hand_over(self) -> None:
        """From now on aiohttp serves this connection, starting with the bytes read so far."""
        transport = self.transport
        assert transport is not None and self.serving is None
        self._disarm()
        self.front.connections.discard(self)
        handler = self.front.server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self.buf = bytes(self.buf), bytearray()
        self.transport = None
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if data:
            handler.data_received(data)


class Listening:
    """The router's listening socket, served through the front and the connection cap:
    what ``__main__.serve`` runs and what the router tests connect to, so every test
    request takes the way production requests take."""

    def __init__(self, server: asyncio.Server, front: Front) -> None:
        self.server = server
        self.front = front

    async def close(self, timeout: float = 10.0) -> None:
        """No new connections; idle ones closed, busy ones once answered (``timeout``)."""
        self.server.close()
        await self.front.shutdown(timeout)


async def listen(app: web.Application, runner: web.AppRunner, sock) -> Listening:
    """Serve ``app`` (its ``runner`` set up) on the bound ``sock``."""
    assert runner.server is not None
    config = app[keys.CONFIG]
    front = Front(app, runner.server, config.keepalive_seconds, config.body_timeout_seconds)
    cap = ConnectionCap(front, config.max_connections, app[keys.METRICS])
    app[keys.METRICS].attach_connections(cap.open_connections, config.max_connections)
    server = await asyncio.get_running_loop().create_server(cap, sock=sock, backlog=1024)
    return Listening(server, front)
