"""The router's front on a real router (``fast_invoke``): what it serves itself, what it
hands to aiohttp, and that a connection's requests are answered in order either way.

Which server answered is visible on the wire: aiohttp sends a ``Server`` header, the
front does not. Raw sockets on 127.0.0.1, so each test controls how the bytes are cut.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.router.conftest import eventually, function

ECHO = function("echo", "def handler(event, context):\n    return event\n")


def invoke_bytes(payload: bytes, *headers: str, target: str = "/2015-03-31/functions/echo/invocations") -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: x", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 20)
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
async def echo(make_router):
    router = await make_router(ECHO)
    reader, writer = await asyncio.open_connection("127.0.0.1", router.client.server.port)
    yield router, reader, writer
    writer.close()


async def test_pipelined_invokes_are_answered_in_order_by_the_front(echo):
    _, reader, writer = echo
    writer.write(b"".join(invoke_bytes(json.dumps({"i": i}).encode()) for i in range(3)))
    for i in range(3):
        status, headers, body = await read_answer(reader)
        assert (status, json.loads(body)) == (200, {"i": i})
        assert "server" not in headers  # the front's answer
        assert headers["content-type"] == "application/json" and headers["x-amz-request-id"]


async def test_a_head_and_body_sent_apart_as_http_client_does_are_served(echo):
    _, reader, writer = echo
    raw = invoke_bytes(b'{"split": true}')
    cut = raw.index(b"\r\n\r\n") + 4
    for piece in (raw[:20], raw[20:cut], raw[cut:-3], raw[-3:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)  # separate segments (what is asserted is the answer)
    status, headers, body = await read_answer(reader)
    assert (status, json.loads(body), "server" in headers) == (200, {"split": True}, False)


async def test_another_route_hands_the_connection_to_aiohttp_which_serves_what_follows(echo):
    _, reader, writer = echo
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + invoke_bytes(b'{"after": 1}'))
    status, headers, _ = await read_answer(reader)
    assert status == 200 and headers["server"].startswith("Python/")
    status, headers, body = await read_answer(reader)
    assert (status, json.loads(body)) == (200, {"after": 1})
    assert "server" in headers  # the connection stays with aiohttp


async def test_an_invoke_the_front_is_unsure_of_is_answered_by_aiohttp_after_the_front_served_others(echo):
    _, reader, writer = echo
    chunked = invoke_bytes(b"", "Transfer-Encoding: chunked") + b'b\r\n{"chunk":1}\r\n0\r\n\r\n'
    writer.write(invoke_bytes(b'{"first": 1}') + chunked)
    status, headers, body = await read_answer(reader)
    assert (status, json.loads(body), "server" in headers) == (200, {"first": 1}, False)
    status, headers, body = await read_answer(reader)
    assert (status, json.loads(body), "server" in headers) == (200, {"chunk": 1}, True)


ERRORS = [
    ("a body that is not JSON", invoke_bytes(b"{not json"), 400, "InvalidRequestContentException"),
    (
        "an unknown function",
        invoke_bytes(b"{}", target="/2015-03-31/functions/nobody/invocations"),
        404,
        "ResourceNotFoundException",
    ),
    (
        "an unknown invocation type",
        invoke_bytes(b"{}", "X-Amz-Invocation-Type: Sometimes"),
        400,
        "InvalidParameterValueException",
    ),
    (
        "an Event over the asynchronous limit",
        invoke_bytes(b"x" * (256 * 1024 + 1), "X-Amz-Invocation-Type: Event"),
        413,
        "RequestTooLargeException",
    ),
    (
        "multipart",
        invoke_bytes(b"{}", "Content-Type: multipart/form-data; boundary=x"),
        415,
        "UnsupportedMediaTypeException",
    ),
]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}", id="LF"
        ),
        pytest.param(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\n\r\n{}",
            id="CRLF, then LF CRLF",
        ),
    ],
)
async def test_a_head_ended_by_a_bare_lf_is_aiohttps_to_answer_at_once(echo, raw):
    """No CRLFCRLF will come: the front hands over at once (not after the keep-alive
    timeout), and the client gets aiohttp's answer to those bytes."""
    _, reader, writer = echo
    writer.write(raw)
    status, headers, _ = await read_answer(reader)
    assert "server" in headers and status in (200, 400)


@pytest.mark.parametrize(("request_bytes", "status", "error_type"), [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
async def test_the_fronts_errors_are_the_invoke_apis_and_the_connection_goes_on(
    echo, request_bytes, status, error_type
):
    _, reader, writer = echo
    writer.write(request_bytes + invoke_bytes(b'{"next": 1}'))
    got, headers, body = await read_answer(reader)
    assert (got, headers["x-amzn-errortype"], json.loads(body)["errorType"]) == (status, error_type, error_type)
    assert "server" not in headers
    got, _, body = await read_answer(reader)
    assert (got, json.loads(body)) == (200, {"next": 1})


async def test_event_and_dry_run_through_the_front(echo):
    router, reader, writer = echo
    writer.write(invoke_bytes(b"{}", "X-Amz-Invocation-Type: DryRun"))
    status, headers, body = await read_answer(reader)
    assert (status, body, "content-length" in headers, "server" in headers) == (204, b"", False, False)
    writer.write(invoke_bytes(b'{"async": 1}', "X-Amz-Invocation-Type: Event"))
    status, headers, body = await read_answer(reader)
    assert (status, body, "server" in headers) == (202, b"", False)
    assert headers["x-amz-request-id"]


BOOM = function("boom", "def handler(event, context):\n    raise ValueError('no')\n")
#: Headers that differ between any two answers (or between the servers, by design).
_VARYING = {"date", "server", "x-amz-request-id", "x-amz-log-result"}
#: Headers whose values are measured or random: their names are compared, not their values.
_MEASURED = {
    "x-init-duration-ms",
    "x-run-duration-ms",
    "x-billed-duration-ms",
    "x-queue-wait-ms",
    "x-max-memory-used-mb",
    "x-environment-id",
    "x-environment-source",  # fresh or generic: which got there first
    "content-length",  # the bodies are compared
}


def _comparable(body: bytes):
    """A body, without its request id and stack trace (file paths in each router's own
    directory)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return body
    if isinstance(decoded, dict):
        decoded.pop("stackTrace", None)
        decoded.pop("requestId", None)
    return decoded


SAME_ANSWERS = [
    ("ok", invoke_bytes(b'{"a": 1}')),
    ("empty body", invoke_bytes(b"")),
    ("not JSON", invoke_bytes(b"{not json")),
    ("unknown function", invoke_bytes(b"{}", target="/2015-03-31/functions/nobody/invocations")),
    ("bad function name", invoke_bytes(b"{}", target="/2015-03-31/functions/Bad_Name/invocations")),
    (
        "ARN",
        invoke_bytes(
            b"{}", target="/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Aecho/invocations"
        ),
    ),
    ("$LATEST", invoke_bytes(b"{}", target="/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST")),
    ("unknown qualifier", invoke_bytes(b"{}", target="/2015-03-31/functions/echo/invocations?Qualifier=7")),
    ("bad invocation type", invoke_bytes(b"{}", "X-Amz-Invocation-Type: Sometimes")),
    ("dry run", invoke_bytes(b"{}", "X-Amz-Invocation-Type: DryRun")),
    ("event", invoke_bytes(b"{}", "X-Amz-Invocation-Type: Event")),
    ("tail", invoke_bytes(b"{}", "X-Amz-Log-Type: Tail")),
    ("bad client context", invoke_bytes(b"{}", "X-Amz-Client-Context: !!")),
    ("multipart", invoke_bytes(b"{}", "Content-Type: multipart/mixed")),
    ("function error", invoke_bytes(b"{}", target="/2015-03-31/functions/boom/invocations")),
    ("namespace header, elsewhere", invoke_bytes(b"{}", "X-Lambdakube-Namespace: other")),
]


async def test_the_front_and_aiohttp_give_the_same_answers(make_router, tmp_path):
    """The same requests to a router with its front and one without (``--no-fast-invoke``):
    the same status, header names and body, but for what differs between any two answers."""
    answers = {}
    for fast in (True, False):
        router = await make_router(ECHO, BOOM, fast_invoke=fast, state_dir=tmp_path / f"state-{fast}")
        reader, writer = await asyncio.open_connection("127.0.0.1", router.client.server.port)
        got = []
        for _, raw in SAME_ANSWERS:
            writer.write(raw)
            status, headers, body = await read_answer(reader)
            got.append(
                (
                    status,
                    sorted(set(headers) - _VARYING),
                    {k: headers[k] for k in set(headers) - _VARYING - _MEASURED},
                    _comparable(body),
                )
            )
            assert ("server" in headers) is not fast  # each answered by the server meant
        writer.close()
        answers[fast] = got
    for (name, _), front, aio in zip(SAME_ANSWERS, answers[True], answers[False], strict=True):
        assert front == aio, name


SLOW = function("slow", "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return event\n")


async def test_a_large_request_pipelined_behind_one_being_served_waits_and_is_served(make_router):
    """Reading pauses above the front's pipeline buffer while a request is answered, and
    resumes after: both answers arrive, in order, nothing lost."""
    router = await make_router(ECHO, SLOW)
    reader, writer = await asyncio.open_connection("127.0.0.1", router.client.server.port)
    big = json.dumps({"data": "x" * (1024 * 1024)}).encode()
    slow = invoke_bytes(b'{"first": 1}', target="/2015-03-31/functions/slow/invocations")
    writer.write(slow + invoke_bytes(big))
    front = router.client.server.listening.front
    await eventually(lambda: any(c.paused for c in front.connections), what="reading paused")
    status, _, body = await read_answer(reader)
    assert (status, json.loads(body)) == (200, {"first": 1})
    status, headers, body = await read_answer(reader)
    assert (status, body, "server" in headers) == (200, big, False)
    writer.close()


async def test_a_client_that_does_not_read_stops_the_front_starting_its_next_requests(make_router):
    """Write back-pressure: with answers piling up unread, the front starts no further
    pipelined request until the transport drains; once the client reads, every answer
    arrives, in order."""
    router = await make_router(ECHO)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a small window: the router's buffer fills
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", router.client.server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    payloads = [json.dumps({"i": i, "data": "x" * (512 * 1024)}).encode() for i in range(12)]
    sending = asyncio.ensure_future(writer.drain())
    writer.write(b"".join(invoke_bytes(p) for p in payloads))
    front = router.client.server.listening.front
    await eventually(lambda: any(c.write_paused for c in front.connections), what="writing paused")
    conn = next(iter(front.connections))
    stats = router.pool("echo").stats
    # paused between requests, holding the next ones unstarted (without back-pressure
    # it would go on serving them, answer after answer into the transport's buffer)
    assert conn.serving is None and conn.buf
    assert stats.cold_starts + stats.warm_starts < len(payloads)
    for payload in payloads:
        status, _, body = await read_answer(reader)
        assert (status, body) == (200, payload)
    await sending
    writer.close()
