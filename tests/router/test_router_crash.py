"""A router killed with SIGKILL: its runtimes die with it, a restarted router removes
what they left in its state directory, and an async event whose handler had started
runs again with the same request id (at-least-once, as Lambda documents: handlers
deduplicate on ``context.aws_request_id``).

Real processes throughout: a router subprocess on the local backend, its runtime
children, ``kill -9``, and a second router on the same state directory.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import urllib.request
from pathlib import Path

import yaml

from bench.local_router import start_router, stop

HANDLER = """
import os, time

def handler(event, context):
    marks = os.environ["MARK_DIR"]
    first = not os.listdir(marks)
    with open(os.path.join(marks, f"{time.monotonic_ns()}"), "w") as f:
        f.write(context.aws_request_id)
    if event.get("hang") and first:
        time.sleep(60)  # the router is killed meanwhile
    return {"pid": os.getpid()}
"""


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in "ZX":
                out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def invoke(port: int, payload: dict, event: bool = False) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/crash/invocations",
        data=json.dumps(payload).encode(),
        headers={"X-Amz-Invocation-Type": "Event"} if event else {},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers)


def eventually(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def test_a_killed_router_takes_its_runtimes_along_and_its_restart_cleans_up(tmp_path: Path):
    marks, functions, state = tmp_path / "marks", tmp_path / "functions", tmp_path / "state"
    marks.mkdir()
    functions.mkdir()
    manifest = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "crash"},
        "spec": {
            "handler": "index.handler",
            "timeoutSeconds": 90,
            "env": {"MARK_DIR": str(marks)},
            "code": {"inline": {"source": textwrap.dedent(HANDLER)}},
        },
    }
    (functions / "crash.yaml").write_text(yaml.safe_dump(manifest))
    router, port = start_router(functions, state, "--generic-pool-size", "2")
    second = None
    try:
        status, headers = invoke(port, {"hang": True}, event=True)
        assert status == 202
        request_id = headers["X-Amz-Request-Id"]
        eventually(lambda: os.listdir(marks))  # the handler started
        runtimes = eventually(lambda: children(router.pid) if len(children(router.pid)) >= 3 else None)
        leftovers = set(os.listdir(state / "environments"))
        assert leftovers, "the environments' files are in the state directory"

        router.send_signal(signal.SIGKILL)
        router.wait(timeout=10)
        eventually(lambda: not any(alive(p) for p in runtimes), timeout=10)  # no orphans

        assert set(os.listdir(state / "environments")) & leftovers  # nobody cleaned up
        second, port = start_router(functions, state, "--generic-pool-size", "0")
        eventually(lambda: len(os.listdir(marks)) >= 2)  # the event ran again
        ids = [(marks / m).read_text() for m in sorted(os.listdir(marks))]
        assert ids == [request_id, request_id], ids
        assert not set(os.listdir(state / "environments")) & leftovers
    finally:
        for proc in (router, second):
            if proc is not None:
                stop(proc)
