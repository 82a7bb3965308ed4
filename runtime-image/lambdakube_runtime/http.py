"""A deliberately small HTTP/1.1 server on ``asyncio`` streams.

Why not ``http.server`` or aiohttp: the runtime sits on the cold-start path of every
function, so it must import quickly and keep the image small (stdlib only), and it must
keep serving probes while a handler runs (``http.server`` is thread-per-request and
blocking; aiohttp is a dependency and tens of milliseconds of imports).

The only client is the lambdakube router (plus kubelet probes and humans with curl), so
the subset implemented is small but strict, because a lenient parser in front of a
"one request at a time" guard is how request smuggling starts:

* request line + headers, capped at ``MAX_HEADER_BYTES`` / ``MAX_HEADERS`` (431);
* bodies only with ``Content-Length`` (capped at ``MAX_BODY_BYTES``, 413); any
  ``Transfer-Encoding`` is refused with 411 and the connection closed, since the body's
  end cannot be found without decoding it;
* keep-alive (HTTP/1.1 default, HTTP/1.0 opt-in) and pipelining, answered in order;
* ``Expect: 100-continue`` (curl sends it for bodies over 1 KiB).

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

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Control characters other than TAB are never valid in a header value; echoing one back
# (X-Request-Id is echoed) could split our response.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
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


Handler = Callable[[Request], Awaitable[Response]]


def http_date(now: float | None = None) -> str:
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class HTTPServer:
    def __init__(self, handler: Handler):
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    async def start(self, host: str, port: int) -> int:
        """Listen and return the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=MAX_HEADER_BYTES + 2, reuse_address=True
        )
        return self._server.sockets[0].getsockname()[1]

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting connections and wait (bounded) for requests being handled."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            pass

    # -- connection loop -------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not self._closing:
                try:
                    request = await self._read_request(reader, writer)
                except ProtocolError as exc:
                    try:
                        await self._send(writer, exc.response, keep_alive=False)
                    except (ConnectionError, RuntimeError):
                        pass
                    await _linger_close(reader, writer)
                    break
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    break
                if request is None:  # clean EOF between requests
                    break
                keep_alive = await self._dispatch(request, writer)
                if not keep_alive:
                    break
        except Exception as exc:  # never let one connection take the server down
            print(f"lambdakube-runtime: connection error: {exc!r}", file=sys.__stderr__, flush=True)
        finally:
            await _close(writer)

    async def _dispatch(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        self._in_flight += 1
        self._idle.clear()
        response: Response | None = None
        try:
            try:
                response = await self._handler(request)
            except Exception as exc:
                print(f"lambdakube-runtime: internal error: {exc!r}", file=sys.__stderr__, flush=True)
                response = error_response(500, "Runtime.InternalError", f"{type(exc).__name__}: {exc}")
            keep_alive = request.keep_alive and not response.close and not self._closing
            try:
                await self._send(writer, response, keep_alive, http10=request.version == "HTTP/1.0")
            except (ConnectionError, RuntimeError):
                keep_alive = False
            if not keep_alive:
                await _close(writer)
            return keep_alive
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            if response is not None and response.after_sent is not None:
                response.after_sent()

    # -- parsing ---------------------------------------------------------------------

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        # Waiting for the next request on an idle keep-alive connection.
        line = await asyncio.wait_for(_read_line(reader), IDLE_TIMEOUT_SECONDS)
        while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore empty lines before a request
            line = await asyncio.wait_for(_read_line(reader), IDLE_TIMEOUT_SECONDS)
        if not line:
            return None
        try:
            return await asyncio.wait_for(self._read_rest(line, reader, writer), READ_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ProtocolError(408, "RequestTimeout", "request headers/body not received in time") from None

    async def _read_rest(self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if (
            len(parts) != 3
            or not parts[0]
            or not set(parts[0]) <= _TOKEN_CHARS
            or not parts[1]
            or _CONTROL_CHARS.search(parts[1])
        ):
            raise ProtocolError(400, "BadRequest", "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            if version.startswith("HTTP/"):
                raise ProtocolError(505, "HTTPVersionNotSupported", f"{version} is not supported")
            raise ProtocolError(400, "BadRequest", "malformed request line")

        headers: dict[str, str] = {}
        content_lengths: list[str] = []
        total = len(line)
        while True:
            line = await _read_line(reader)
            if not line.endswith(b"\n"):
                raise asyncio.IncompleteReadError(line, None)
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise _headers_too_large()
            if line in (b"\r\n", b"\n"):
                break
            if len(headers) >= MAX_HEADERS:
                raise _headers_too_large()
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError(400, "BadRequest", "obsolete header line folding is not accepted")
            name, sep, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if not sep or not name or not set(name) <= _TOKEN_CHARS:
                raise ProtocolError(400, "BadRequest", f"malformed header line: {name[:40]!r}")
            name = name.lower()
            value = value.strip(" \t")
            if _CONTROL_CHARS.search(value):
                raise ProtocolError(400, "BadRequest", f"control character in the {name} header")
            if name == "content-length":
                content_lengths.append(value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value

        if "transfer-encoding" in headers:
            raise ProtocolError(
                411,
                "LengthRequired",
                "Transfer-Encoding (e.g. chunked) request bodies are not supported; "
                "send the body with a Content-Length header",
            )
        length = 0
        if content_lengths:
            value = content_lengths[0]
            if len(set(content_lengths)) != 1 or not (value.isascii() and value.isdigit()):
                raise ProtocolError(400, "BadRequest", "invalid Content-Length header")
            length = int(value)
            if length > MAX_BODY_BYTES:
                raise ProtocolError(
                    413, "RequestTooLargeException", f"request body of {length} bytes exceeds {MAX_BODY_BYTES} bytes"
                )
        body = b""
        if length:
            if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length)

        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        path = target.split("?", 1)[0]
        return Request(method, target, path, version, headers, body, keep_alive)

    # -- writing ---------------------------------------------------------------------

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, keep_alive: bool, http10: bool = False) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
            f"Date: {http_date()}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        if not keep_alive:
            lines.append("Connection: close")
        elif http10:
            lines.append("Connection: keep-alive")
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        writer.write(head + response.body)
        await writer.drain()


def _headers_too_large() -> ProtocolError:
    return ProtocolError(
        431, "RequestHeaderFieldsTooLarge", f"request headers exceed {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields"
    )


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """One line including its LF; a partial line (or b"") at EOF."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError:
        raise _headers_too_large() from None


async def _linger_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close after refusing a request whose rest may still be arriving.

    Closing a socket with unread input makes the kernel send RST, which can destroy our
    error response in the client's receive buffer before it is read. So: send FIN, then
    read and discard (bounded in time and bytes) until the client closes its side.
    """
    try:
        if writer.can_write_eof():
            writer.write_eof()
        discarded = 0
        async with asyncio.timeout(1.0):
            while discarded < 1024 * 1024:
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    break
                discarded += len(chunk)
    except (TimeoutError, ConnectionError, OSError, RuntimeError):
        pass
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close after flushing what was written; bounded, since the peer may be gone."""
    if writer.is_closing():
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (TimeoutError, ConnectionError, OSError):
        pass
