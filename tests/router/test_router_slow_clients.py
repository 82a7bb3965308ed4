"""Slow, gone and too many clients each get one defined answer (``client_guard``):

- a connection without a complete request for ``--keepalive-seconds`` is closed, whether
  it never sent a byte, is dribbling its first request's head (a slowloris), or sits
  idle after an answer;
- a body that does not arrive within ``--body-timeout-seconds`` gets 408 and a close;
- a client that hangs up mid-body or before its answer is counted, and logged at DEBUG
  only (aiohttp logged an ERROR traceback for the first);
- connections over ``--max-connections`` get 503 ServiceException, unread, and close.

A real router subprocess and raw sockets on 127.0.0.1; the timeouts are shortened to 1 s.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from bench.local_router import start_router, stop

KEEPALIVE = 1.0
BODY_TIMEOUT = 1.0
ECHO = b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def _functions(root: Path) -> Path:
    functions = root / "functions"
    functions.mkdir()
    sources = {
        "echo": "def handler(e, c):\n    return e\n",
        "slow": "import time\ndef handler(e, c):\n    time.sleep(1)\n    return e\n",
    }
    for name, source in sources.items():
        manifest = {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": name},
            "spec": {"handler": "index.handler", "code": {"inline": {"source": source}}},
        }
        (functions / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    return functions


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    """(port, path of the router's log)"""
    root: Path = tmp_path_factory.mktemp("slow")
    log = root / "router.log"
    with log.open("wb") as stderr:
        proc, port = start_router(
            _functions(root),
            root / "state",
            "--keepalive-seconds",
            str(KEEPALIVE),
            "--body-timeout-seconds",
            str(BODY_TIMEOUT),
            "--generic-pool-size",
            "0",
            stderr=stderr,
        )
    try:
        yield port, log
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def router_port(router):
    return router[0]


def metric(port: int, name: str) -> float:
    """A sample of the router's /metrics by its full name with labels; 0 if absent."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_metric(port: int, name: str, at_least: float, seconds: float = 15) -> float:
    deadline = time.monotonic() + seconds
    while (value := metric(port, name)) < at_least:
        assert time.monotonic() < deadline, f"{name} still {value}, expected >= {at_least}"
        time.sleep(0.05)
    return value


def read_answer(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes."""
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Read until the server closes (b""); how long that took. Fails after ``seconds``."""
    start = time.monotonic()
    sock.settimeout(seconds)
    while True:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            raise AssertionError(f"connection still open after {seconds} s") from None
        except ConnectionResetError:
            return time.monotonic() - start


@pytest.mark.parametrize(
    "sends",
    [
        pytest.param(b"", id="a connection that never sends a byte"),
        pytest.param(b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\n", id="a slowloris head"),
        pytest.param(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            id="idle after an answer",
        ),
    ],
)
def test_a_connection_without_a_complete_request_is_closed(router_port, sends):
    with socket.create_connection(("127.0.0.1", router_port), timeout=5) as sock:
        if sends:
            sock.sendall(sends)
        closed_within(sock, KEEPALIVE + 10)


def test_an_active_client_keeps_its_connection(router_port):
    """Requests in a row reuse one connection (the keep-alive does not close it)."""
    request = b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", router_port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b"{}"):
                chunk = sock.recv(65536)
                assert chunk, "closed while active"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")


def test_a_body_that_does_not_arrive_gets_408_and_a_close(router_port):
    before = metric(router_port, 'lambdakube_http_closed_connections_total{reason="body_timeout"}')
    with socket.create_connection(("127.0.0.1", router_port), timeout=5) as sock:
        sock.sendall(b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = read_answer(sock, BODY_TIMEOUT + 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"x-amzn-errortype: requesttimeoutexception" in head.lower()
    assert b"connection: close" in head.lower()
    assert json.loads(body)["errorType"] == "RequestTimeoutException"
    after = metric(router_port, 'lambdakube_http_closed_connections_total{reason="body_timeout"}')
    assert after == before + 1


def test_a_body_that_arrives_in_pieces_in_time_is_served(router_port):
    with socket.create_connection(("127.0.0.1", router_port), timeout=10) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\n"
            b'Content-Length: 8\r\nConnection: close\r\n\r\n{"a"'
        )
        time.sleep(BODY_TIMEOUT / 5)
        sock.sendall(b":1}")
        sock.sendall(b"   ")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b'{"a": 1}') or answer.endswith(b'{"a":1}'), answer


@pytest.mark.parametrize(
    "request_bytes, stage",
    [
        pytest.param(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
            "body",
            id="mid-body",
        ),
        pytest.param(
            ECHO.replace(b"/echo/", b"/slow/"),
            "response",
            id="while its invoke runs",
        ),
    ],
)
def test_a_client_that_hangs_up_is_counted_and_not_logged_as_an_error(router, request_bytes, stage):
    port, log = router
    name = f'lambdakube_http_aborted_requests_total{{stage="{stage}"}}'
    before = metric(port, name)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_bytes)
        time.sleep(0.2)  # let the router start on the request before the hang-up
    wait_for_metric(port, name, before + 1)
    text = log.read_text()
    assert " ERROR " not in text and "Traceback" not in text, text


@pytest.fixture(scope="module")
def capped_port(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("capped")
    proc, port = start_router(_functions(root), root / "state", "--max-connections", "2", "--generic-pool-size", "0")
    try:
        yield port
    finally:
        stop(proc)


def test_connections_over_the_cap_get_503_unread_and_the_cap_frees_up(capped_port):
    held = [socket.create_connection(("127.0.0.1", capped_port), timeout=10) for _ in range(2)]
    try:
        for sock in held:  # both are served, and kept open
            sock.sendall(ECHO)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # the third one sends a large request that is never read: it still gets the answer
        with socket.create_connection(("127.0.0.1", capped_port), timeout=10) as third:
            body = b"{" + b" " * 200_000 + b"}"
            head = b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\n"
            third.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = read_answer(third)
        head_out, _, body_out = answer.partition(b"\r\n\r\n")
        assert head_out.startswith(b"HTTP/1.1 503"), answer[:300]
        assert b"retry-after: 1" in head_out.lower() and b"connection: close" in head_out.lower()
        assert json.loads(body_out)["errorType"] == "ServiceException"
        with pytest.raises(urllib.error.HTTPError) as refused:  # an HTTP client sees the same
            urllib.request.urlopen(f"http://127.0.0.1:{capped_port}/metrics", timeout=10)
        assert refused.value.code == 503
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 15
    while True:  # the closed connections leave the count, and new ones are served
        try:
            assert metric(capped_port, 'lambdakube_http_closed_connections_total{reason="connection_cap"}') >= 2
            break
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and time.monotonic() < deadline, "the cap did not free up"
            time.sleep(0.05)
    assert metric(capped_port, "lambdakube_http_connections_limit") == 2
