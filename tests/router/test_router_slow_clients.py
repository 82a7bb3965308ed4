"""Slow and idle clients are not held forever: a connection without a complete request
for ``--keepalive-seconds`` is closed, whether it never sent a byte, is dribbling its
first request's head (a slowloris), or sits idle after an answer. A real router
subprocess and raw sockets on 127.0.0.1; the keep-alive is shortened to 1 s."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from bench.local_router import start_router, stop

KEEPALIVE = 1.0


@pytest.fixture(scope="module")
def router_port(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("slow")
    functions = root / "functions"
    functions.mkdir()
    manifest = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "echo"},
        "spec": {"handler": "index.handler", "code": {"inline": {"source": "def handler(e, c):\n    return e\n"}}},
    }
    (functions / "echo.yaml").write_text(yaml.safe_dump(manifest))
    proc, port = start_router(
        functions, root / "state", "--keepalive-seconds", str(KEEPALIVE), "--generic-pool-size", "0"
    )
    try:
        yield port
    finally:
        stop(proc)


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
