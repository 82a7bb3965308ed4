"""Differential tests: the runtime's HTTP/1.1 request parser against h11.

Why: ``lambdakube_runtime.http`` is a private HTTP/1.1 dialect that was only ever tested
against the router's own client. h11 is an independent, widely used sans-I/O
implementation; feeding both the same bytes and comparing what each concludes (how many
requests, their method/target/headers/body, refused or not, keep-alive or not) finds the
places where ours reads RFC 9112 differently from somebody else, which is exactly the
raw material of request smuggling. h11 is a test dependency only: the runtime stays
stdlib-only because its import time is the cold start.

Every row is one of:

* an *agreement*: both parsers reach the same conclusion (the exact status ours answers
  is asserted as well; h11 only gives a status hint);
* a *divergence by design*: ``why`` says why ours differs on purpose, and both sides'
  conclusions are asserted, so a row that stops diverging (or diverges differently)
  fails and has to be reclassified;
* a *regression* row (marked in a comment): ours used to get it wrong and was fixed.

Ours is driven through its real protocol object (``_Connection``) with an in-memory
transport, the same calls the event loop makes (``get_buffer`` / ``buffer_updated``);
routes answer at once, so pipelined requests are parsed as they would be in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from dataclasses import dataclass

import h11
import pytest

from lambdakube_runtime import http
from tests.runtime.harness import HOST, raw_exchange
from tests.http_compare import joined_headers as _joined


@dataclass(frozen=True)
class Req:
    method: str
    target: str
    version: str  # "1.1" / "1.0"
    headers: tuple[tuple[str, str], ...]  # sorted; lower-cased names, repeats joined with ", "
    body: bytes


@dataclass(frozen=True)
class Outcome:
    requests: tuple[Req, ...]  # complete requests handed to the application, in order
    refused: int | None  # status ours answered / h11's error_status_hint; None: nothing refused
    closed: bool  # the server reads no further request on this connection
    pending: bool  # a started request is waiting for more bytes
    continued: bool  # "100 Continue" was (ours) / is due to be (h11) sent

    def verdict(self) -> Outcome:
        """What must agree: everything, except that h11 only hints at a status."""
        return dataclasses.replace(self, refused=self.refused is not None)

    def summary(self) -> tuple[int, int | None]:
        return len(self.requests), self.refused


class _Transport(asyncio.Transport):
    """Records what the server writes, and whether it half-closed or closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof_written = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def parse_ours(chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` (one per read) to the runtime's server protocol."""

    async def drive() -> Outcome:
        seen: list[http.Request] = []

        def route(request: http.Request) -> http.Response:
            seen.append(request)
            return http.Response(200)

        conn = http._Connection(http.HTTPServer(route))
        transport = _Transport()
        conn.connection_made(transport)
        for chunk in chunks:
            while chunk:
                view = conn.get_buffer(len(chunk))
                n = min(len(view), len(chunk))
                view[:n] = chunk[:n]
                conn.buffer_updated(n)
                chunk = chunk[n:]
        statuses = [int(w[9:12]) for w in transport.writes]
        assert all(w.startswith(b"HTTP/1.1 ") for w in transport.writes)
        refused = next((s for s in statuses if s not in (100, 200)), None)
        closed = transport.closed or transport.eof_written
        return Outcome(
            requests=tuple(
                Req(r.method, r.target, r.version.removeprefix("HTTP/"), _joined(r.headers.items()), r.body)
                for r in seen
            ),
            refused=refused,
            closed=closed,
            pending=not closed and (conn._head is not None or bool(conn._buf)),
            continued=100 in statuses,
        )

    return asyncio.run(drive())


def parse_h11(chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` to an h11 server connection that answers every request at once
    with a 200 (as the routes in ``parse_ours`` do) and stops reading where h11 would
    close the connection."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=http.MAX_HEADER_BYTES)
    requests: list[Req] = []
    head: h11.Request | None = None
    body = b""
    refused = None
    closed = continued = False
    for chunk in chunks:
        conn.receive_data(chunk)
        head_in_this_read = False
        waiting = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                refused, closed = exc.error_status_hint, True
                break
            if event is h11.NEED_DATA:
                # ours sends 100 when a head with Expect arrives without its whole body
                continued |= head_in_this_read and waiting
                break
            if isinstance(event, h11.Request):
                head, body, head_in_this_read = event, b"", True
                waiting = conn.they_are_waiting_for_100_continue
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                head_in_this_read = False
                requests.append(
                    Req(
                        head.method.decode(),
                        head.target.decode("latin-1"),
                        head.http_version.decode(),
                        _joined((n.decode(), v.decode("latin-1")) for n, v in head.headers),
                        body,
                    )
                )
                head = None
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    closed = True
                    break
                conn.start_next_cycle()
            else:  # pragma: no cover - nothing else can come from a client
                raise AssertionError(f"unexpected h11 event {event!r}")
        if closed:
            break
    leftover = conn.trailing_data[0]
    return Outcome(
        requests=tuple(requests),
        refused=refused,
        closed=closed,
        pending=not closed and (head is not None or bool(leftover)),
        continued=continued,
    )


@dataclass(frozen=True)
class Row:
    id: str
    data: bytes
    #: requests ours hands to the application
    count: int = 1
    #: the status ours refuses with (None: not refused)
    status: int | None = None
    #: set for a divergence by design: why ours differs from h11 on purpose
    why: str | None = None
    #: h11's (requests, error status hint) in a divergent row
    h11: tuple[int, int | None] | None = None


H = b"Host: x\r\n"
GET = b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n"
POST = b"POST /invoke HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\n{}"
CLOSE = b"GET /readyz HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"


def _cl(value: bytes, body: bytes = b"{}") -> bytes:
    return b"POST /invoke HTTP/1.1\r\n" + H + b"Content-Length: " + value + b"\r\n\r\n" + body


def _te(value: bytes, body: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"POST /invoke " + version + b"\r\n" + H + extra + b"Transfer-Encoding: " + value + b"\r\n\r\n" + body


def _header(line: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\n" + H + line + b"\r\n\r\n"


def _line(line: bytes) -> bytes:
    return line + b"\r\n" + H + b"\r\n"


CHUNKED_BODY = b"2\r\n{}\r\n0\r\n\r\n"

ROWS = [
    # -- accepted by both ------------------------------------------------------------
    Row("get", GET),
    Row("post-content-length", POST),
    Row("binary-body-with-crlf-and-nul", _cl(b"8", b"\r\n\r\n\x00GET")),
    Row("get-with-body", b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"),
    Row("content-length-zero", _cl(b"0", b"")),
    Row("content-length-leading-zeros", _cl(b"002")),
    Row("query-string", _line(b"GET /readyz?verbose=1&x=%20 HTTP/1.1")),
    Row("absolute-form-target", _line(b"GET http://x/healthz HTTP/1.1")),
    Row("asterisk-form-target", _line(b"OPTIONS * HTTP/1.1")),
    Row("extension-method", _line(b"PURGE /healthz HTTP/1.1")),
    Row("header-names-any-case", b"GET /healthz HTTP/1.1\r\nHOST: x\r\nx-REQUEST-id: A\r\n\r\n"),
    Row("repeated-header-joined", _header(b"X-A: 1\r\nX-B: b\r\nx-a: 2")),
    Row("value-whitespace-trimmed", _header(b"X-A: \t v  w \t")),
    Row("empty-value", _header(b"X-A:")),
    Row("tab-inside-value", _header(b"X-A: a\tb")),
    Row("obs-text-in-value", _header(b"X-A: caf\xe9")),
    Row("bare-lf-line-endings", b"GET /healthz HTTP/1.1\nHost: x\nX-A: 1\n\n"),
    Row("mixed-line-endings", b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: 1\r\n\n"),
    Row("http10-no-host", b"GET /healthz HTTP/1.0\r\n\r\n"),
    # -- Expect: 100-continue ----------------------------------------------------------
    Row(
        "expect-head-only",
        b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        count=0,
    ),
    Row(
        "expect-head-and-body",
        b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    ),
    Row(
        "expect-any-case",
        b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-Continue\r\nContent-Length: 2\r\n\r\n",
        count=0,
    ),
    Row(
        "expect-partial-body",
        b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{",
        count=0,
    ),
    Row("expect-empty-body", b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"),
    Row(
        "expect-http10-ignored", b"POST /invoke HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", count=0
    ),
    # -- keep-alive, pipelining, incomplete input --------------------------------------
    Row("connection-close", CLOSE),
    Row("connection-close-in-token-list", _header(b"Connection: keep-alive, Close")),
    Row("connection-close-in-second-header", _header(b"Connection: keep-alive\r\nConnection: close")),
    Row("nothing-parsed-after-close", CLOSE + POST),
    Row("http10-closes-by-default", b"GET /healthz HTTP/1.0\r\n\r\n" + GET),
    Row("pipelined-three", GET + POST + CLOSE, count=3),
    Row("pipelined-keep-alive", GET + POST, count=2),
    Row("pipelined-then-partial-head", GET + POST + b"GET /heal", count=2),
    Row("partial-head", b"GET /healthz HTTP/1.1\r\nHo", count=0),
    Row("partial-body", _cl(b"10"), count=0),
    Row("request-after-refused-is-not-parsed", GET + b"GET /\x00 HTTP/1.1\r\n\r\n" + GET, status=400),
    # -- malformed request lines ---------------------------------------------------------
    Row("no-version", _line(b"GET /healthz"), count=0, status=400),
    Row("double-space", _line(b"GET  /healthz HTTP/1.1"), count=0, status=400),
    Row("trailing-space", _line(b"GET /healthz HTTP/1.1 "), count=0, status=400),
    Row("tab-separators", _line(b"GET\t/healthz\tHTTP/1.1"), count=0, status=400),
    Row("lowercase-version", _line(b"GET /healthz http/1.1"), count=0, status=400),
    Row("method-not-a-token", _line(b"GE(T /healthz HTTP/1.1"), count=0, status=400),
    Row("empty-method", _line(b" /healthz HTTP/1.1"), count=0, status=400),
    Row("nul-in-target", _line(b"GET /a\x00b HTTP/1.1"), count=0, status=400),
    Row("del-in-target", _line(b"GET /a\x7fb HTTP/1.1"), count=0, status=400),
    # regression: a TAB in the target was accepted (only other control characters were
    # refused); RFC 9112 3.2 allows visible ASCII only.
    Row("tab-in-target", _line(b"GET /a\tb HTTP/1.1"), count=0, status=400),
    # regression: raw non-ASCII bytes in the target were accepted (decoded as latin-1).
    Row("non-ascii-target", _line(b"GET /caf\xc3\xa9 HTTP/1.1"), count=0, status=400),
    # regression: "\r\r\n" ended the request line (every trailing CR was stripped), so a
    # bare CR was silently dropped; RFC 9112 2.2 says a bare CR is invalid.
    Row("bare-cr-ends-request-line", b"GET /healthz HTTP/1.1\r\r\n" + H + b"\r\n", count=0, status=400),
    # regression: a malformed version that merely starts with "HTTP/" was answered 505
    # (version not supported) instead of 400 (not a version at all).
    Row("garbage-version", _line(b"GET /healthz HTTP/one"), count=0, status=400),
    # -- malformed header lines ------------------------------------------------------------
    Row("no-colon", _header(b"X-A"), count=0, status=400),
    Row("space-in-name", _header(b"Bad Header: x"), count=0, status=400),
    Row("space-before-colon", _header(b"X-A : x"), count=0, status=400),
    Row("empty-name", _header(b": x"), count=0, status=400),
    Row("nul-in-name", _header(b"X\x00A: x"), count=0, status=400),
    Row("whitespace-first-header-line", b"GET /healthz HTTP/1.1\r\n X-A: 1\r\n" + H + b"\r\n", count=0, status=400),
    Row("nul-in-value", _header(b"X-A: a\x00b"), count=0, status=400),
    Row("bare-cr-in-value", _header(b"X-Request-Id: a\rInjected: 1"), count=0, status=400),
    Row("vertical-tab-in-value", _header(b"X-A: a\x0bb"), count=0, status=400),
    # regression: "\r\r\n" ended a header line too (the stray CR vanished).
    Row("bare-cr-ends-header-line", _header(b"X-A: a\r"), count=0, status=400),
    # -- Content-Length ------------------------------------------------------------------
    Row("content-length-conflicting", _cl(b"2\r\nContent-Length: 3"), count=0, status=400),
    Row("content-length-conflicting-list", _cl(b"2, 3"), count=0, status=400),
    Row("content-length-negative", _cl(b"-1"), count=0, status=400),
    Row("content-length-plus", _cl(b"+2"), count=0, status=400),
    Row("content-length-hex", _cl(b"0x2"), count=0, status=400),
    Row("content-length-underscore", _cl(b"1_0"), count=0, status=400),
    Row("content-length-inner-space", _cl(b"1 2"), count=0, status=400),
    Row("content-length-empty", _cl(b""), count=0, status=400),
    Row("content-length-non-ascii-digit", _cl(b"\xb2"), count=0, status=400),
    # regression: over 20 digits was answered 413 like any large number, and over 4300
    # digits made int() raise ValueError inside buffer_updated: the connection was torn
    # down by the event loop with no answer at all. h11 caps Content-Length at 20 digits.
    Row("content-length-30-digits", _cl(b"9" * 30), count=0, status=400),
    Row("content-length-5000-digits", _cl(b"9" * 5000), count=0, status=400),
    # -- Transfer-Encoding: refused by both ------------------------------------------------
    Row("te-unknown-coding", _te(b"gzip", b"{}"), count=0, status=411),
    Row("te-chunked-twice", _te(b"chunked\r\nTransfer-Encoding: chunked", CHUNKED_BODY), count=0, status=411),
    Row("te-coding-list", _te(b"gzip, chunked", CHUNKED_BODY), count=0, status=411),
    Row("te-chunked-bad-size", _te(b"chunked", b"zz\r\n{}\r\n0\r\n\r\n"), count=0, status=411),
    Row(
        "te-name-space-before-colon",
        b"POST /invoke HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n",
        count=0,
        status=400,
    ),
    # -- divergences by design -----------------------------------------------------------
    Row(
        "te-chunked",
        _te(b"chunked", CHUNKED_BODY),
        count=0,
        status=411,
        h11=(1, None),
        why="chunked request bodies are refused (411, RFC 9110 15.5.12): the router always sends "
        "Content-Length, and one framing rule is one less to get wrong",
    ),
    Row(
        "te-chunked-extensions",
        _te(b"chunked", b"2;name=value\r\n{}\r\n0;last\r\n\r\n"),
        count=0,
        status=411,
        h11=(1, None),
        why="chunked bodies are refused, with or without chunk extensions",
    ),
    Row(
        "te-chunked-trailers",
        _te(b"chunked", b"2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        count=0,
        status=411,
        h11=(1, None),
        why="chunked bodies are refused, with or without trailers",
    ),
    Row(
        "te-chunked-http10",
        _te(b"chunked", CHUNKED_BODY, version=b"HTTP/1.0"),
        count=0,
        status=411,
        h11=(1, None),
        why="Transfer-Encoding is refused whatever the version",
    ),
    Row(
        "cl-plus-te-smuggling",
        _te(b"chunked", b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", extra=b"Content-Length: 38\r\n"),
        count=0,
        status=411,
        h11=(2, None),
        why="Content-Length with Transfer-Encoding is the classic smuggling vector: h11 lets "
        "chunked win (RFC 9112 6.3) and so sees a second request; ours refuses the message "
        "(which 6.3 allows) and parses nothing after it",
    ),
    Row(
        "content-length-repeated-equal",
        _cl(b"2\r\nContent-Length: 2"),
        h11=(1, None),
        why="the same framing (a 2-byte body), but ours keeps the header as received, joined like "
        "any repeated header ('2, 2'), where h11 collapses equal Content-Length values",
    ),
    Row(
        "content-length-list-equal",
        _cl(b"2, 2"),
        count=0,
        status=400,
        h11=(1, None),
        why="RFC 9112 6.3 lets a recipient either reject '2, 2' or collapse it; ours rejects "
        "(only separate equal header lines are collapsed)",
    ),
    Row(
        "content-length-over-body-cap",
        _cl(b"99999999999"),
        count=0,
        status=413,
        h11=(0, None),
        why="bodies are capped at Lambda's 6 MB invoke payload; h11 has no cap and waits for the body",
    ),
    Row(
        "header-too-large",
        _header(b"X-Big: " + b"a" * 20000),
        count=0,
        status=431,
        h11=(1, None),
        why="h11 caps only a head that is still incomplete (see test_oversize_head_in_pieces); ours "
        "caps every head, however it arrived",
    ),
    Row(
        "target-too-long",
        _line(b"GET /" + b"a" * 20000 + b" HTTP/1.1"),
        count=0,
        status=431,
        h11=(1, None),
        why="as header-too-large: the request line counts towards the same cap",
    ),
    Row(
        "too-many-headers",
        b"GET /healthz HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
        count=0,
        status=431,
        h11=(1, None),
        why="ours caps the number of header lines (MAX_HEADERS) as well as their bytes",
    ),
    Row(
        "obs-fold",
        _header(b"X-A: 1\r\n  folded"),
        count=0,
        status=400,
        h11=(1, None),
        why="RFC 9112 5.2 lets a server reject obs-fold with 400 instead of unfolding it",
    ),
    Row(
        "http2-version",
        _line(b"GET /healthz HTTP/2.0"),
        count=0,
        status=505,
        h11=(1, None),
        why="h11 parses any N.N version and leaves the decision to the application; ours answers 505",
    ),
    Row(
        "http12-version",
        _line(b"GET /healthz HTTP/1.2"),
        count=0,
        status=505,
        h11=(1, None),
        why="RFC 9112 2.3 says SHOULD treat 1.2 as 1.1; no client sends it, and refusing is safer",
    ),
    Row(
        "missing-host",
        b"GET /healthz HTTP/1.1\r\n\r\n",
        h11=(0, 400),
        why="Host is not used by the runtime (no virtual hosts; reached by pod IP), and kubelet "
        "probes or hand-written tools must not get a 400 for leaving it out",
    ),
    Row("duplicate-host", _header(b"Host: y"), h11=(0, 400), why="Host is never read by the runtime"),
    Row(
        "leading-empty-lines",
        b"\r\n\n" + GET,
        h11=(0, 400),
        why="RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request; h11 refuses",
    ),
    Row(
        "del-in-value",
        _header(b"X-A: a\x7f"),
        count=0,
        status=400,
        h11=(1, None),
        why="h11's field-vchar is [^\\x00\\s], so it lets DEL and most control characters through; "
        "RFC 9110 5.5 forbids them and ours echoes X-Request-Id into its answer",
    ),
    Row(
        "control-char-in-value",
        _header(b"X-Request-Id: a\x01b"),
        count=0,
        status=400,
        h11=(1, None),
        why="as del-in-value",
    ),
    Row(
        "tls-client-hello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
        count=0,
        h11=(0, 400),
        why="h11 refuses a request line that is obviously invalid before it is complete; ours "
        "judges only complete heads, so such a client waits for the read timeout (408)",
    ),
    Row(
        "http10-keep-alive",
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET,
        count=2,
        h11=(1, None),
        why="ours keeps HTTP/1.0 connections alive on request; h11 always closes them",
    ),
]


def _check(row: Row, ours: Outcome, theirs: Outcome) -> None:
    assert ours.summary() == (row.count, row.status), ours
    if row.why is None:
        assert ours.verdict() == theirs.verdict()
    else:
        assert row.h11 is not None, "a divergent row states h11's conclusion"
        assert theirs.summary() == row.h11, theirs
        assert ours.verdict() != theirs.verdict(), "no longer diverges: make it an agreement row"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_one_read(row):
    """The whole stream in one read (the router writes head and body in one send)."""
    _check(row, parse_ours([row.data]), parse_h11([row.data]))


@pytest.mark.parametrize("row", [r for r in ROWS if len(r.data) < 1000], ids=lambda row: row.id)
def test_one_byte_per_read(row):
    """The same conclusions when every byte arrives on its own: no state is lost at any
    boundary (a CR without its LF, a head without its body, a chunk of a pipeline)."""
    chunks = [row.data[i : i + 1] for i in range(len(row.data))]
    ours = parse_ours(chunks)
    _check(row, ours, parse_h11(chunks))
    assert dataclasses.replace(ours, continued=False) == dataclasses.replace(parse_ours([row.data]), continued=False), (
        "splitting the stream changed what ours parsed"
    )


SPLIT_STREAMS = {
    "pipelined": GET + _cl(b"9", b"a\r\n\r\nb\r\nc") + b"GET /x?y HTTP/1.1\r\n" + H + b"X-A: 1\r\n\r\n" + CLOSE,
    "expect-then-pipelined": b"POST /invoke HTTP/1.1\r\n"
    + H
    + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"
    + GET,
    "bare-lf-pipelined": b"\n" + b"GET /a HTTP/1.1\nHost: x\n\n" + b"POST /b HTTP/1.1\nHost: x\nContent-Length: 1\n\nz",
    "refused-mid-pipeline": GET + _cl(b"2\r\nContent-Length: 3") + GET,
}


@pytest.mark.parametrize("name", SPLIT_STREAMS)
def test_split_at_every_byte_boundary(name):
    """A stream cut into two reads at every possible offset parses exactly as in one read,
    and as h11 parses the same two reads."""
    data = SPLIT_STREAMS[name]
    whole = parse_ours([data])
    for cut in range(1, len(data)):
        chunks = [data[:cut], data[cut:]]
        ours = parse_ours(chunks)
        assert dataclasses.replace(ours, continued=False) == dataclasses.replace(whole, continued=False), cut
        if name == "bare-lf-pipelined":
            continue  # h11 refuses the leading empty line: see the leading-empty-lines row
        assert ours.verdict() == parse_h11(chunks).verdict(), cut


def test_split_streams_parse_as_expected():
    """Anchor for the split test: what the streams parse to in one read."""
    counts = {name: parse_ours([data]).summary() for name, data in SPLIT_STREAMS.items()}
    assert counts == {
        "pipelined": (4, None),
        "expect-then-pipelined": (2, None),
        "bare-lf-pipelined": (2, None),
        "refused-mid-pipeline": (1, 400),
    }
    pipelined = parse_ours([SPLIT_STREAMS["pipelined"]])
    assert pipelined.requests[1].body == b"a\r\n\r\nb\r\nc" and pipelined.closed


def test_oversize_head_in_pieces():
    """A head over the cap that arrives in reads of 1 KiB is refused by both with 431
    (h11's cap applies while a head is incomplete; the one-read rows diverge)."""
    for data in (_header(b"X-Big: " + b"a" * 20000), _line(b"GET /" + b"a" * 20000 + b" HTTP/1.1")):
        chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)]
        ours, theirs = parse_ours(chunks), parse_h11(chunks)
        assert ours.summary() == (0, 431) and theirs.summary() == (0, 431)
        assert ours.verdict() == theirs.verdict()


def test_expect_continue_sent_only_while_the_body_is_missing():
    """100 Continue goes out when the head arrives without its body, not when the body
    came with the head; h11 agrees on when the client is waiting."""
    head = b"POST /invoke HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    for chunks, continued in [([head, b"{}"], True), ([head + b"{}"], False), ([head + b"{", b"}"], True)]:
        ours, theirs = parse_ours(chunks), parse_h11(chunks)
        assert ours.continued is continued and ours.summary() == (1, None)
        assert ours.verdict() == theirs.verdict()


# -- end to end: a real runtime process ------------------------------------------------------


def _h11_exchange(sock: socket.socket, conn: h11.Connection, request: h11.Request, body: bytes) -> list:
    """One request written by h11's client and the answer as h11 reads it (its events).
    With ``Expect: 100-continue`` the body is held back until the 100 arrives."""
    sock.sendall(conn.send(request))
    held = any(name == b"expect" for name, _ in request.headers)
    if not held:
        sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    events: list = []
    while not events or not isinstance(events[-1], h11.EndOfMessage):
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = sock.recv(65536)
            assert data, "the runtime closed the connection before answering"
            conn.receive_data(data)
            continue
        events.append(event)
        if isinstance(event, h11.InformationalResponse) and held:
            sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            held = False
    return events


def test_real_runtime_answers_read_by_h11(start_runtime):
    """The runtime's answers (serializer included), read by h11's client on one
    keep-alive connection: statuses, bodies, 100 Continue and the final close."""
    runtime = start_runtime("basic.count")
    host = [("Host", "runtime")]
    exchanges = [
        (h11.Request(method="GET", target="/healthz", headers=host), b""),
        (h11.Request(method="POST", target="/invoke", headers=host + [("Content-Length", "2")]), b"{}"),
        (
            h11.Request(
                method="POST", target="/invoke", headers=host + [("Content-Length", "2"), ("Expect", "100-continue")]
            ),
            b"{}",
        ),
        (h11.Request(method="GET", target="/nope", headers=host), b""),
        (h11.Request(method="GET", target="/readyz", headers=host + [("Connection", "close")]), b""),
    ]
    conn = h11.Connection(h11.CLIENT)
    seen = []
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        for request, body in exchanges:
            events = _h11_exchange(sock, conn, request, body)
            final = next(e for e in events if isinstance(e, h11.Response))
            informational = [e.status_code for e in events if isinstance(e, h11.InformationalResponse)]
            data = b"".join(e.data for e in events if isinstance(e, h11.Data))
            seen.append((informational, final.status_code, data))
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
        assert conn.their_state is h11.MUST_CLOSE  # the runtime said Connection: close
        sock.settimeout(5)
        assert sock.recv(1) == b""  # ...and closed
    assert [(i, s) for i, s, _ in seen] == [([], 200), ([], 200), ([100], 200), ([], 404), ([], 200)]
    assert [json.loads(d)["count"] for _, s, d in seen[1:3]] == [1, 2]


@pytest.mark.parametrize(
    "data",
    [_cl(b"9" * 5000), b"GET /healthz HTTP/1.1\r\r\n" + H + b"\r\n", _line(b"GET /caf\xc3\xa9 HTTP/1.1")],
    ids=["content-length-5000-digits", "bare-cr-ends-request-line", "non-ascii-target"],
)
def test_regressions_against_a_real_runtime(start_runtime, data):
    """Regression rows through a real process: a 400 with the usual JSON error body, the
    connection closed, nothing run, and the server unharmed. (The 5000-digit length used
    to crash the protocol callback: no answer, the connection aborted.)"""
    runtime = start_runtime("basic.count")
    responses, closed = raw_exchange(runtime.port, data)
    status_line, headers, body = responses[0]
    assert status_line == "HTTP/1.1 400 Bad Request" and json.loads(body)["errorType"] == "BadRequest"
    assert headers["connection"] == "close" and closed
    assert runtime.invoke({}).json()["count"] == 1  # nothing ran before this invoke
