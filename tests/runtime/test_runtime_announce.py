"""A runtime started with ``LAMBDAKUBE_ANNOUNCE_URL`` tells that URL where it listens,
with its env id and token, as soon as it listens (a real runtime process, a real HTTP
server recording what it is told)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambdakube_runtime.announce import _split, request_bytes


class Recorder(BaseHTTPRequestHandler):
    bodies: list[dict] = []
    got = threading.Event()

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        Recorder.bodies.append({"path": self.path, **json.loads(self.rfile.read(length))})
        self.send_response(204)
        self.end_headers()
        Recorder.got.set()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    Recorder.bodies, Recorder.got = [], threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_runtime_announces_where_it_listens(start_runtime, recorder):
    url = f"http://127.0.0.1:{recorder.server_address[1]}/internal/v1/environments/listening"
    runtime = start_runtime(
        code_dir=None,
        wait=None,
        env={"LAMBDAKUBE_ANNOUNCE_URL": url, "LAMBDAKUBE_ANNOUNCE_TOKEN": "t0ken", "LAMBDAKUBE_POD_IP": "127.0.0.1"},
    )
    assert Recorder.got.wait(10), "no announce arrived"
    assert Recorder.bodies == [
        {
            "path": "/internal/v1/environments/listening",
            "envId": "env-test",
            "address": f"127.0.0.1:{runtime.port}",
            "token": "t0ken",
        }
    ]
    # What the router then checks: the address answers as this environment.
    assert runtime.get_json("/readyz") == (503, {"ready": False, "state": "generic", "envId": "env-test"})


@pytest.mark.parametrize(
    "url, parsed",
    [
        (
            "http://10.244.0.5:9000/internal/v1/environments/listening",
            ("10.244.0.5", 9000, "/internal/v1/environments/listening"),
        ),
        ("http://[fd00::5]:9000/x", ("fd00::5", 9000, "/x")),
        ("http://router:9000", ("router", 9000, "/")),
    ],
)
def test_announce_url_parsing(url, parsed):
    assert _split(url) == parsed


@pytest.mark.parametrize("url", ["https://r:1/x", "r:1/x", "http://r/x", "http://:1/x", "http://r:p/x"])
def test_a_bad_announce_url_is_refused(url):
    with pytest.raises(ValueError):
        _split(url)


def test_the_announce_is_one_http_request():
    host, port, data = request_bytes("http://10.0.0.1:9000/a", "env-1", "10.0.0.2:8080", "tok")
    head, _, body = data.partition(b"\r\n\r\n")
    assert (host, port) == ("10.0.0.1", 9000)
    assert head.split(b"\r\n")[0] == b"POST /a HTTP/1.1"
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"envId": "env-1", "address": "10.0.0.2:8080", "token": "tok"}
