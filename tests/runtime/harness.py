"""Drives a real ``python -m lambdakube_runtime`` subprocess on 127.0.0.1.

No part of the runtime is mocked: tests talk HTTP to the process and read its stdout,
exactly as the router and the pod log pipeline do.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
RUNTIME_DIR = REPO / "runtime-image"
HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
HOST = "127.0.0.1"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def log_tail(self) -> str:
        return base64.b64decode(self.headers["X-Log-Result"]).decode()


class RuntimeProcess:
    def __init__(self, env: dict[str, str]):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAKUBE_")}
        full_env["PYTHONPATH"] = str(RUNTIME_DIR)
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lambdakube_runtime", "--host", HOST, "--port", "0"],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        self._eof: set[int] = set()  # id() of the sinks whose stream has ended
        for stream, sink in ((self.proc.stdout, self._stdout), (self.proc.stderr, self._stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        line = self.wait_for_line(lambda text: text.startswith("LAMBDAKUBE_LISTENING port="), timeout=15)
        self.port = int(line.split("=", 1)[1])

    # -- output --------------------------------------------------------------------

    def _pump(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof.add(id(sink))
            self._changed.notify_all()

    @property
    def stdout(self) -> list[str]:
        with self._changed:
            return list(self._stdout)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self._stderr)

    def wait_for_line(self, match, timeout: float = 10.0) -> str:
        """The first stdout line for which ``match`` (a predicate or a substring) holds."""
        predicate = match if callable(match) else (lambda line: match in line)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._stdout:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or id(self._stdout) in self._eof:
                    raise AssertionError(f"no matching stdout line; stdout={self._stdout!r} stderr={self._stderr!r}")
                self._changed.wait(min(remaining, 0.1))

    # -- HTTP ----------------------------------------------------------------------

    def connection(self, timeout: float = 15.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def invoke(self, event=None, *, raw: bytes | None = None, headers: dict | None = None) -> Reply:
        body = raw if raw is not None else json.dumps(event if event is not None else {}).encode()
        return self.request("POST", "/invoke", body, headers)

    def get_json(self, path: str) -> tuple[int, dict]:
        reply = self.request("GET", path)
        return reply.status, reply.json()

    def wait_until(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"runtime exited ({self.proc.returncode}); stderr={self.stderr}")
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError(f"condition not met in {timeout}s; stdout={self.stdout} stderr={self.stderr}")

    def wait_ready(self) -> None:
        self.wait_until(lambda: self.request("GET", "/readyz").status == 200)

    def wait_settled(self) -> None:
        """Until Init is over, whatever its result."""
        self.wait_until(lambda: self.get_json("/healthz")[1]["state"] != "initializing")

    # -- lifecycle -----------------------------------------------------------------

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        stop_process(self.proc)


def raw_exchange(
    port: int, data: bytes, responses: int = 1, timeout: float = 10.0
) -> tuple[list[tuple[str, dict, bytes]], bool]:
    """Send raw bytes, parse ``responses`` HTTP responses; also report whether the server
    then closed the connection."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        reader = sock.makefile("rb")
        parsed = [read_response(reader) for _ in range(responses)]
        try:
            sock.settimeout(2.0)
            closed = reader.read(1) == b""
        except TimeoutError:
            closed = False
        return parsed, closed


def read_response(reader) -> tuple[str, dict, bytes]:
    status_line = reader.readline().decode("latin-1").rstrip("\r\n")
    if not status_line:
        raise AssertionError("connection closed before a response")
    headers: dict[str, str] = {}
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return status_line, headers, body
