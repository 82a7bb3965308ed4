"""The runtime's small HTTP/1.1 server: routing, keep-alive, and refusing what it does not parse."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

import pytest

from tests.runtime.harness import HOST, raw_exchange, read_response


@pytest.fixture
def runtime(shared_runtime):
    """The module's one ``basic.count`` runtime. No test here changes what it is, only
    its counter, which each test reads relative to its own ``invocations`` baseline."""
    return shared_runtime("basic.count")


def invocations(runtime) -> int:
    """The counter after one more invocation: the next one that runs says this + 1, so
    a test sees exactly how many of its own requests ran."""
    return runtime.invoke({}).json()["count"]


def test_unknown_path_is_404(runtime):
    reply = runtime.request("GET", "/nope")
    assert reply.status == 404 and reply.json()["errorType"] == "NotFound"
    assert runtime.request("POST", "/2015-03-31/functions/x/invocations", b"{}").status == 404


@pytest.mark.parametrize(
    "method, path, allow",
    [("GET", "/invoke", "POST"), ("POST", "/healthz", "GET"), ("DELETE", "/readyz", "GET"), ("GET", "/init", "POST")],
)
def test_wrong_method_is_405(runtime, method, path, allow):
    reply = runtime.request(method, path, b"{}" if method == "POST" else None)
    assert reply.status == 405
    assert reply.header("Allow") == allow
    assert reply.json()["errorType"] == "MethodNotAllowed"


def test_query_string_is_ignored_for_routing(runtime):
    assert runtime.request("GET", "/readyz?verbose=1").status == 200


def test_keep_alive_serves_many_requests_on_one_connection(runtime):
    base = invocations(runtime)
    conn = runtime.connection()
    try:
        sock = None
        seen = []
        for method, path, body in [
            ("GET", "/healthz", None),
            ("POST", "/invoke", b"{}"),
            ("GET", "/readyz", None),
            ("POST", "/invoke", b"{bad json"),
            ("GET", "/missing", None),
            ("POST", "/invoke", b"{}"),
        ]:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            payload = response.read()
            assert response.getheader("Connection") is None  # HTTP/1.1 default: keep-alive
            seen.append((response.status, payload))
            sock = sock or conn.sock
            assert conn.sock is sock, "the client had to reconnect"
        assert [status for status, _ in seen] == [200, 200, 200, 400, 404, 200]
        assert json.loads(seen[1][1])["count"] == base + 1 and json.loads(seen[5][1])["count"] == base + 2
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(runtime):
    one = b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\nContent-Length: 2\r\n\r\n{}"
    two = b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-Request-Id: p2\r\nContent-Length: 2\r\n\r\n{}"
    three = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    base = invocations(runtime)
    responses, closed = raw_exchange(runtime.port, one + two + three, responses=3)
    assert [r[0] for r in responses] == ["HTTP/1.1 200 OK"] * 3
    assert [r[1].get("x-request-id") for r in responses[:2]] == ["p1", "p2"]
    assert [json.loads(r[2])["count"] for r in responses[:2]] == [base + 1, base + 2]
    assert responses[2][1]["connection"] == "close" and closed


def test_http10_closes_unless_keep_alive_requested(runtime):
    responses, closed = raw_exchange(runtime.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert responses[0][0] == "HTTP/1.1 200 OK" and closed
    # Kept alive, the connection is still open: it serves one more request afterwards
    # (shown by the answer, not by waiting for a close that does not come).
    request = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.sendall(request * 2)
        reader = sock.makefile("rb")
        kept = [read_response(reader) for _ in range(2)]
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        last = read_response(reader)
        closed = reader.read(1) == b""
    assert [r[1]["connection"] for r in kept] == ["keep-alive", "keep-alive"]
    assert last[0] == "HTTP/1.1 200 OK" and closed


def test_expect_100_continue(runtime):
    base = invocations(runtime)
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.sendall(b"POST /invoke HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        reader = sock.makefile("rb")
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n" and reader.readline() == b"\r\n"
        sock.sendall(b"{}")
        status, _, body = read_response(reader)
        assert status == "HTTP/1.1 200 OK" and json.loads(body)["count"] == base + 1


def test_chunked_request_body_is_refused(runtime):
    request = b"POST /invoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    base = invocations(runtime)
    responses, closed = raw_exchange(runtime.port, request)
    status, headers, body = responses[0]
    assert status == "HTTP/1.1 411 Length Required"
    assert json.loads(body)["errorType"] == "LengthRequired" and "Content-Length" in json.loads(body)["errorMessage"]
    assert headers["connection"] == "close" and closed
    assert runtime.invoke({}).json()["count"] == base + 1  # the handler never ran


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", "431"),
        (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", "431"),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", "431"),
        (b"POST /invoke HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "413"),
        (b"POST /invoke HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "400"),
        (b"POST /invoke HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"),
        (b"POST /invoke HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n{}", "400"),
        (b"GET /healthz\r\n\r\n", "400"),
        (b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n", "400"),
        (b"GET /healthz HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n", "400"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", "505"),
        (b"POST /invoke HTTP/1.1\r\nX-Request-Id: a\rInjected: 1\r\nContent-Length: 2\r\n\r\n{}", "400"),
    ],
    ids=[
        "big-header",
        "many-headers",
        "long-target",
        "huge-body",
        "conflicting-length",
        "negative-length",
        "non-ascii-digit-length",
        "no-version",
        "space-in-name",
        "obs-fold",
        "http2",
        "bare-cr-in-value",
    ],
)
def test_malformed_requests_are_refused_and_closed(runtime, request_bytes, status):
    responses, closed = raw_exchange(runtime.port, request_bytes)
    status_line, headers, body = responses[0]
    assert status_line.split(" ")[1] == status
    assert set(json.loads(body)) == {"errorType", "errorMessage"}
    assert headers["connection"] == "close" and closed
    assert runtime.get_json("/healthz")[0] == 200  # the server is fine


INVOKE_TWO = b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-Request-Id: seg\r\nContent-Length: 2\r\n\r\n{}"


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_request_arriving_in_small_segments(runtime):
    """Head and body may arrive split anywhere (here: a few bytes per send)."""
    base = invocations(runtime)
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = INVOKE_TWO.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
        reader = sock.makefile("rb")
        status, headers, body = read_response(reader)
    assert status == "HTTP/1.1 200 OK" and headers["x-request-id"] == "seg"
    assert json.loads(body)["count"] == base + 1


def test_pipelined_requests_split_across_segments(runtime):
    data = INVOKE_TWO * 3
    base = invocations(runtime)
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cut = len(INVOKE_TWO) + 20  # the second request's head is split
        sock.sendall(data[:cut])
        sock.sendall(data[cut:])
        reader = sock.makefile("rb")
        counts = [json.loads(read_response(reader)[2])["count"] for _ in range(3)]
    assert counts == [base + 1, base + 2, base + 3]


def test_empty_lines_before_a_request_and_bare_lf_line_endings(runtime):
    request = b"\r\n\n" + b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n"
    responses, closed = raw_exchange(runtime.port, request)
    assert responses[0][0] == "HTTP/1.1 200 OK" and closed


def test_half_closed_client_still_gets_its_answer(start_runtime):
    """A client may shut down its sending side right after the request (EOF while the
    handler runs): the answer is still written, then the connection closed."""
    runtime = start_runtime("basic.slow")
    body = json.dumps({"seconds": 0.3}).encode()
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.sendall(b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        sock.shutdown(socket.SHUT_WR)
        data = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b'{"slept": 0.3}')


def test_large_event_arrives_in_many_reads(start_runtime):
    runtime = start_runtime("basic.echo")
    event = {"blob": "x" * (3 * 1024 * 1024)}
    reply = runtime.invoke(event)
    assert reply.status == 200 and reply.json() == event


def test_incomplete_body_then_eof_closes_without_running(runtime):
    base = invocations(runtime)
    with socket.create_connection((HOST, runtime.port), timeout=10) as sock:
        sock.sendall(b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)
        assert _read_until_closed(sock) == b""
    assert runtime.invoke({}).json()["count"] == base + 1  # the partial request never ran


def test_many_pipelined_probes_in_one_segment(runtime):
    """Thousands of tiny pipelined requests answered in order (no recursion per request)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    count = 3000
    with socket.create_connection((HOST, runtime.port), timeout=20) as sock:
        sock.sendall(request * count + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = _read_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == count + 1


def test_nothing_runs_after_connection_close(runtime):
    """Requests pipelined after one that asked to close the connection are not run."""
    close = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    base = invocations(runtime)
    responses, closed = raw_exchange(runtime.port, close + INVOKE_TWO)
    assert responses[0][0] == "HTTP/1.1 200 OK" and closed
    assert runtime.invoke({}).json()["count"] == base + 1  # the pipelined invoke never ran


@pytest.mark.parametrize("stderr", ["/dev/full", "closed"], ids=["stderr on a full disk", "stderr closed"])
def test_an_internal_error_is_answered_even_when_stderr_cannot_be_written(monkeypatch, stderr):
    """A full disk under the log file must not swallow the 500 (the request would wait
    for an answer forever)."""
    from lambdakube_runtime import http

    stream = open(os.devnull if stderr == "closed" else stderr, "w")  # noqa: SIM115 - closed below
    if stderr == "closed":
        stream.close()
    monkeypatch.setattr(sys, "__stderr__", stream)
    try:
        response = http.internal_error(OSError(28, "No space left on device"))
    finally:
        with contextlib.suppress(OSError):  # what is still buffered cannot be written either
            stream.close()
    assert response.status == 500
    assert json.loads(response.body)["errorType"] == "Runtime.InternalError"
