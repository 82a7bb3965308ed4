"""Differential tests: the router's client for the runtime (``runtime_client``) against h11.

Why: the client parses the runtime's answers with a small private parser that had only
ever read what ``lambdakube_runtime.http`` writes. A framing mistake here is worse than a
failed request: the environment's connection is reused, so bytes misread as the end of
one answer become the start of the next invocation's. h11 (an independent sans-I/O
HTTP/1.1 implementation, test dependency only) reads the same bytes, and each row
compares the conclusions: the status, headers and body delivered, or a refusal, and
whether the connection may carry another request.

Rows are agreements, divergences by design (``why`` says why, and h11's side is asserted
so a row that stops diverging fails), or regression rows (marked in a comment) for what
ours got wrong before. Ours is driven through ``EnvConnection.request`` itself, with an
in-memory transport under its protocol object, so the request it writes is also checked
by h11's server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11
import pytest

from lambdakube_router.runtime_client import EnvConnection, EnvironmentGone, _Protocol
from tests.http_compare import joined_headers as _joined

PAYLOAD = b'{"i": 1}'
HEADERS = [("X-Request-Id", "req-1"), ("X-Deadline-Ms", "1700000000000")]


@dataclass(frozen=True)
class Outcome:
    #: (status, headers sorted, names lower-cased and repeats joined with ", ", body)
    response: tuple[int, tuple[tuple[str, str], ...], bytes] | None
    refused: bool  # the answer was refused as malformed (or the connection ended too soon)
    reusable: bool  # the connection may carry the next request
    pending: bool  # still waiting for more bytes

    def summary(self) -> tuple[int | None, bool]:
        return (self.response[0] if self.response else None), self.refused


class _Transport(asyncio.Transport):
    """Records what the client writes; closing reports connection_lost soon, as asyncio does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: _Protocol | None = None
        self.written = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.written += data

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.written += chunk

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)


async def _exchange_ours(chunks: list[bytes], eof: bool, body: bytes) -> tuple[Outcome, bytes]:
    loop = asyncio.get_running_loop()
    conn = EnvConnection("10.0.0.7", 8080)
    transport = _Transport(loop)
    proto = transport.protocol = _Protocol(conn)
    proto.connection_made(transport)
    conn._proto, conn._loop = proto, loop  # as _connect leaves them
    task = asyncio.ensure_future(conn.request("/invoke", body, HEADERS, timeout=60))
    await asyncio.sleep(0)  # one loop pass: request() writes and then waits for the answer
    waiter = proto.waiter
    assert waiter is not None and transport.written, "request() did not write its request"
    for chunk in chunks:  # all of them, as the loop would, even after a complete answer
        if not transport.closed:
            proto.data_received(chunk)
    if eof and not transport.closed:
        assert proto.eof_received() is False  # asyncio then closes the transport
        transport.close()
        await asyncio.sleep(0)  # connection_lost runs
    if not waiter.done():
        task.cancel()
        return Outcome(None, False, False, True), bytes(transport.written)
    try:
        resp = await task
    except EnvironmentGone:
        return Outcome(None, True, False, False), bytes(transport.written)
    await asyncio.sleep(0)  # a close() in request() reports connection_lost
    reusable = conn._proto is proto and not transport.closed
    response = (resp.status, _joined(resp.headers.items()), resp.body)
    return Outcome(response, False, reusable, False), bytes(transport.written)


def exchange_ours(chunks: list[bytes], eof: bool = False, body: bytes = PAYLOAD) -> tuple[Outcome, bytes]:
    """Ours: send a request, feed the answer's ``chunks`` (then EOF if ``eof``); also
    returns the bytes the client wrote."""
    return asyncio.run(_exchange_ours(chunks, eof, body))


def exchange_h11(chunks: list[bytes], eof: bool = False) -> Outcome:
    """h11's client after sending the same request, fed the same answer."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(
        h11.Request(
            method="POST", target="/invoke", headers=[("Host", "10.0.0.7:8080"), ("Content-Length", str(len(PAYLOAD)))]
        )
    )
    conn.send(h11.Data(data=PAYLOAD))
    conn.send(h11.EndOfMessage())
    head: h11.Response | None = None
    body = b""
    response = None
    try:
        for chunk in chunks + ([b""] if eof else []):
            conn.receive_data(chunk)
            while response is None:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    headers = _joined((n.decode(), v.decode("latin-1")) for n, v in head.headers)
                    response = (head.status_code, headers, body)
                else:  # ConnectionClosed before the end of the message
                    return Outcome(None, True, False, False)
    except h11.RemoteProtocolError:
        return Outcome(None, True, False, False)
    if response is None:
        return Outcome(None, False, False, True)
    # Reusable only if h11 would start a clean next cycle: both sides DONE (not
    # MUST_CLOSE), nothing left over, no EOF seen.
    leftover, eof_seen = conn.trailing_data
    reusable = conn.their_state is h11.DONE and conn.our_state is h11.DONE and not (leftover or eof_seen)
    return Outcome(response, False, reusable, False)


@dataclass(frozen=True)
class Row:
    id: str
    chunks: list[bytes]
    #: status ours delivers (None: refused or pending)
    status: int | None = 200
    refused: bool = False
    eof: bool = False
    why: str | None = None
    #: h11's (status, refused) in a divergent row
    h11: tuple[int | None, bool] | None = None


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _resp(head: bytes, body: bytes = b"{}") -> list[bytes]:
    return [head + b"\r\n\r\n" + body]


def _with(header: bytes, body: bytes = b"{}") -> list[bytes]:
    return _resp(b"HTTP/1.1 200 OK\r\n" + header, body)


ROWS = [
    # -- answers both read the same way --------------------------------------------------
    Row("content-length", [OK]),
    Row("content-length-zero", _with(b"Content-Length: 0", b"")),
    Row("binary-body", _with(b"Content-Length: 6", b"\r\n\r\n\x00\xff")),
    Row("error-status", _resp(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 2"), status=413),
    Row("http12-status-line", _resp(b"HTTP/1.2 200 OK\r\nContent-Length: 2")),
    Row("no-reason-phrase", _resp(b"HTTP/1.1 503\r\nContent-Length: 2"), status=503),
    Row("header-names-any-case", _with(b"CONTENT-LENGTH: 2\r\nx-env-ID: env-1\r\nX-Log-Result: YQ==")),
    Row("value-whitespace-trimmed", _with(b"Content-Length:\t2 \r\nX-Function-Error:  Unhandled\t")),
    # regression: of repeated headers only the last was kept (RFC 9110 5.3: combine them).
    Row("repeated-header-joined", _with(b"Content-Length: 2\r\nX-A: 1\r\nX-A: 2")),
    Row("content-length-repeated-equal", _with(b"Content-Length: 2\r\nContent-Length: 2")),
    # regression: "2, 2" (RFC 9110 8.6 allows it) was refused as not a number.
    Row("content-length-list-equal", _with(b"Content-Length: 2, 2")),
    Row("connection-close", _with(b"Content-Length: 2\r\nConnection: close")),
    Row("connection-keep-alive", _with(b"Content-Length: 2\r\nConnection: keep-alive")),
    # regression: only a Connection header of exactly "close" closed the connection.
    Row("connection-close-in-token-list", _with(b"Content-Length: 2\r\nConnection: keep-alive, Close")),
    # regression: an HTTP/1.0 answer left the connection open for the next request.
    Row("http10-response-closes", _resp(b"HTTP/1.0 200 OK\r\nContent-Length: 2")),
    # regression: a 1xx was taken for the final answer (and refused for lacking a
    # Content-Length); RFC 9110 15.2 says a client must skip any number of them.
    Row("100-continue-first", [b"HTTP/1.1 100 Continue\r\n\r\n" + OK]),
    Row("several-1xx-first", [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK]),
    Row("1xx-in-its-own-read", [b"HTTP/1.1 100 Continue\r\n\r\n", OK]),
    Row("101-not-asked-for", [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"], status=None, refused=True),
    # -- incomplete answers ------------------------------------------------------------------
    Row("partial-head", [OK[:20]], status=None),
    Row("partial-body", [OK[:-1]], status=None),
    Row("eof-before-anything", [], status=None, refused=True, eof=True),
    Row("eof-in-head", [OK[:20]], status=None, refused=True, eof=True),
    Row("truncated-body", [OK[:-1]], status=None, refused=True, eof=True),
    Row("eof-after-complete-answer", [OK], eof=True),  # delivered; the connection is not reused
    # -- malformed status lines ------------------------------------------------------------
    Row("status-not-a-number", _resp(b"HTTP/1.1 abc OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-double-space", _resp(b"HTTP/1.1  200 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-http2", _resp(b"HTTP/2 200 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-not-http", _resp(b"ICY 200 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-empty", _resp(b"\r\nContent-Length: 2"), status=None, refused=True),
    # regression: this and the next four were read with int(): 99, 200 and 2000 passed.
    Row("status-below-100", _resp(b"HTTP/1.1 099 Low\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-with-underscore", _resp(b"HTTP/1.1 2_00 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-with-plus", _resp(b"HTTP/1.1 +200 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-two-digits", _resp(b"HTTP/1.1 20 OK\r\nContent-Length: 2"), status=None, refused=True),
    Row("status-four-digits", _resp(b"HTTP/1.1 2000 OK\r\nContent-Length: 2"), status=None, refused=True),
    # -- malformed headers -----------------------------------------------------------------
    Row("header-no-colon", _with(b"Content-Length: 2\r\nX-A"), status=None, refused=True),
    # regression: no character was refused in a value.
    Row("nul-in-value", _with(b"Content-Length: 2\r\nX-A: a\x00b"), status=None, refused=True),
    # regression: names were stripped and never checked to be tokens, so
    # "Content-Length : 2" framed the body (and "X A" was a header).
    Row("space-before-colon", _with(b"Content-Length : 2"), status=None, refused=True),
    Row("space-in-name", _with(b"Content-Length: 2\r\nX A: 1"), status=None, refused=True),
    # regression: lines were split on CRLF only, so a bare LF hid a second Content-Length
    # inside a value, where h11 (which accepts bare LF) sees the conflicting header.
    Row("bare-lf-hides-header", _with(b"Content-Length: 2\r\nX-A: a\nContent-Length: 5"), status=None, refused=True),
    # -- Content-Length --------------------------------------------------------------------
    # regression: duplicate differing lengths: the last one won.
    Row("content-length-conflicting", _with(b"Content-Length: 5\r\nContent-Length: 2"), status=None, refused=True),
    Row("content-length-conflicting-list", _with(b"Content-Length: 2, 5"), status=None, refused=True),
    Row("content-length-negative", _with(b"Content-Length: -1"), status=None, refused=True),
    Row("content-length-not-digits", _with(b"Content-Length: 0x2"), status=None, refused=True),
    # regression: "²" passes str.isdigit() and then made int() raise inside data_received.
    Row("content-length-non-ascii-digit", _with(b"Content-Length: \xb2"), status=None, refused=True),
    # regression: any number of digits went to int() (past 4300 digits it raises).
    Row("content-length-too-many-digits", _with(b"Content-Length: " + b"9" * 30), status=None, refused=True),
    # -- divergences by design ---------------------------------------------------------------
    Row(
        "chunked",
        _with(b"Transfer-Encoding: chunked", b"2\r\n{}\r\n0\r\n\r\n"),
        status=None,
        refused=True,
        h11=(200, False),
        why="the runtime always sends Content-Length; one framing rule, nothing to guess",
    ),
    # regression: with both headers ours framed the body by Content-Length while h11 (and
    # RFC 9112 6.3) let Transfer-Encoding win: two readings of the same bytes.
    Row(
        "content-length-and-chunked",
        _with(b"Content-Length: 2\r\nTransfer-Encoding: chunked", b"2\r\n{}\r\n0\r\n\r\n"),
        status=None,
        refused=True,
        h11=(200, False),
        why="a response with Transfer-Encoding is refused, with or without Content-Length",
    ),
    Row(
        "read-until-close",
        _resp(b"HTTP/1.1 200 OK", b"{}"),
        status=None,
        refused=True,
        eof=True,
        h11=(200, False),
        why="a body ended by EOF cannot be told from a truncated one; the runtime never sends it",
    ),
    Row(
        "no-body-204",
        [b"HTTP/1.1 204 No Content\r\n\r\n"],
        status=None,
        refused=True,
        h11=(204, False),
        why="the runtime sends Content-Length even for empty bodies; its absence means a stranger",
    ),
    Row(
        "bare-lf-line-endings",
        [b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}"],
        status=None,
        refused=True,
        eof=True,
        h11=(200, False),
        why="the runtime writes CRLF; ours looks for CRLFCRLF only, so this never "
        "completes and the EOF makes it a failure",
    ),
    Row(
        "obs-fold",
        _with(b"Content-Length: 2\r\nX-A: 1\r\n  folded"),
        status=None,
        refused=True,
        h11=(200, False),
        why="obs-fold is refused (RFC 9112 5.2 allows it); h11 unfolds it",
    ),
    # regression: a folded line that looks like a header became one: ours framed the body
    # by the folded " Content-Length: 5" that h11 reads as part of X-A's value.
    Row(
        "obs-fold-hiding-content-length",
        _with(b"X-A: 1\r\n Content-Length: 5\r\nContent-Length: 2"),
        status=None,
        refused=True,
        h11=(200, False),
        why="obs-fold is refused, as above",
    ),
    Row(
        "del-in-value",
        _with(b"Content-Length: 2\r\nX-A: a\x7f"),
        status=None,
        refused=True,
        h11=(200, False),
        why="h11's field-vchar lets DEL through; RFC 9110 5.5 does not, and the router passes "
        "some runtime headers on to API clients",
    ),
]


def _check(row: Row, ours: Outcome, theirs: Outcome) -> None:
    assert ours.summary() == (row.status, row.refused), ours
    if row.why is None:
        assert ours == theirs
    else:
        assert row.h11 is not None, "a divergent row states h11's conclusion"
        assert theirs.summary() == row.h11, theirs
        assert ours != theirs, "no longer diverges: make it an agreement row"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_answer(row):
    ours, _ = exchange_ours(row.chunks, row.eof)
    _check(row, ours, exchange_h11(row.chunks, row.eof))


@pytest.mark.parametrize("row", [r for r in ROWS if r.why is None], ids=lambda row: row.id)
def test_answer_one_byte_per_read(row):
    """The same conclusions when every byte is its own read (no state lost at a boundary)."""
    data = b"".join(row.chunks)
    chunks = [data[i : i + 1] for i in range(len(data))]
    ours, _ = exchange_ours(chunks, row.eof)
    _check(row, ours, exchange_h11(chunks, row.eof))
    assert ours == exchange_ours(row.chunks, row.eof)[0]


def test_answer_split_at_every_byte_boundary():
    """A realistic answer (1xx first, the runtime's headers) cut into two reads anywhere."""
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: 12\r\nX-Request-Id: req-1\r\n"
        b'X-Env-Id: env-1\r\n\r\n{"ok":\r\n\r\n1}'
    )
    whole, _ = exchange_ours([data])
    assert whole.summary() == (200, False) and whole.response[2] == b'{"ok":\r\n\r\n1}' and whole.reusable
    for cut in range(1, len(data)):
        chunks = [data[:cut], data[cut:]]
        ours, _ = exchange_ours(chunks)
        assert ours == whole == exchange_h11(chunks), cut


def test_bytes_after_the_body_close_the_connection():
    """Regression: bytes after the body were silently dropped and the connection kept,
    so whatever followed them could be read as the next invocation's answer. Now the
    answer is delivered and the connection closed; h11 keeps them for the next cycle
    (a divergence by design: the runtime sends one answer per request, never more)."""
    chunks = [OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"]
    ours, _ = exchange_ours(chunks)
    theirs = exchange_h11(chunks)
    assert ours.response == theirs.response and ours.response[2] == b"{}"
    assert not ours.reusable and not theirs.reusable  # h11: leftover data, not DONE/clean


def test_unsolicited_bytes_on_an_idle_connection_close_it():
    """Regression: bytes arriving while no request was waiting were ignored and the
    connection kept; now it is closed, so the next request reconnects."""

    async def run() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        conn = EnvConnection("10.0.0.7", 8080)
        transport = _Transport(loop)
        proto = transport.protocol = _Protocol(conn)
        proto.connection_made(transport)
        conn._proto, conn._loop = proto, loop
        before = transport.closed
        proto.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await asyncio.sleep(0)  # connection_lost runs
        return before, transport.closed and conn._proto is None

    assert asyncio.run(run()) == (False, True)


@pytest.mark.parametrize("size", [0, 2, 300 * 1024], ids=["empty", "small", "over-copy-limit"])
def test_request_written_is_read_by_h11_as_sent(size):
    """What the client writes (one buffer, or head + body in writelines past the copy
    limit) is one well-formed request to h11's server: target, headers, body intact."""
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    _, written = exchange_ours([OK], body=body)
    server = h11.Connection(h11.SERVER)
    server.receive_data(written)
    request = server.next_event()
    assert isinstance(request, h11.Request) and (request.method, request.target) == (b"POST", b"/invoke")
    headers = dict(_joined((n.decode(), v.decode()) for n, v in request.headers))
    assert headers["host"] == "10.0.0.7:8080" and headers["content-length"] == str(size)
    assert headers["x-request-id"] == "req-1" and headers["x-deadline-ms"] == "1700000000000"
    received = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        received += event.data
    assert received == body and server.next_event() is h11.NEED_DATA  # nothing after it
