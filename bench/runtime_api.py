"""The Runtime API's cost: warm invokes and cold starts of each runtime kind, in one run.

    python bench/runtime_api.py [--requests 2000] [--max-seconds 60] [--cold 5]

All on 127.0.0.1, straight to the environment (no router), the same trivial handler:
1. **built-in**: our runtime running the Python handler in-process (today's fast path);
2. **runtime-api+awslambdaric**: our runtime serving Lambda's Runtime API to
   awslambdaric (PyPI, Lambda's own Python client) as a ``provided`` bootstrap;
3. **rie+awslambdaric**: Lambda's emulator (aws-lambda-rie) with the same awslambdaric;
4. for reference, our Runtime API with the other clients: our Node.js bootstrap,
   aws-lambda-ric (npm), aws-lambda-go, when built (``make runtime-clients``).

Warm: sequential invokes over one keep-alive connection per target, interleaved in
rounds so drift hits every target alike; p50/p99 and the ratios to the built-in path
and to the emulator (issue 17's goal: the Runtime API path within 1.3x of built-in,
and faster than the emulator). Cold: a new process each time, from spawn until the
first invoke's answer (the environment's own start, Init and the first invoke; the
emulator starts its runtime at the first invoke).

Bounded: ``--requests`` per target and ``--max-seconds`` for the warm series; ``--cold``
starts per kind. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from local_router import process_env, stop
from raw_http import RawConnection
from router_overhead import HANDLER, PAYLOAD, free_port, rie_paths
from stats import pct

REPO = Path(__file__).resolve().parents[1]
NODE_HANDLER = "export const handler = async (event) => ({ ok: true, echo: event.i });\n"
#: The floor of the Runtime API path: a client that does nothing but the protocol (one
#: keep-alive socket, no handler), so the rows above it show what each client adds.
RAW_CLIENT = f"""#!{sys.executable}
import os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
s = socket.create_connection((host, int(port)))
f = s.makefile("rb")
def read():
    f.readline()
    length = 0
    while (line := f.readline()) not in (b"\\r\\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return f.read(length)
while True:
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    f.readline()
    rid, length = b"", 0
    while (line := f.readline()) not in (b"\\r\\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"lambda-runtime-aws-request-id":
            rid = value.strip()
        elif name.lower() == b"content-length":
            length = int(value)
    f.read(length)
    s.sendall(b"POST /2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1\\r\\nHost: x\\r\\n"
              b"Content-Length: 11\\r\\n\\r\\n{{\\"ok\\":true}}")
    read()
"""


def tool(name: str) -> Path | None:
    """A built test tool's root, or None (the reference rows are optional)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh"), "--check", name], capture_output=True, text=True
    )
    if out.returncode:
        return None
    return Path(os.path.realpath(Path(out.stdout.strip()) / name)).parent.parent


def awslambdaric_task(root: Path) -> Path:
    _, ric = rie_paths()
    task = root / "awslambdaric"
    task.mkdir()
    (task / "index.py").write_text(HANDLER)
    boot = task / "bootstrap"
    boot.write_text(f'#!/bin/sh\nexport PYTHONPATH="{ric}"\nexec "{sys.executable}" -m awslambdaric "$_HANDLER"\n')
    boot.chmod(0o755)
    return task


class Target:
    """One way to run the handler: how to start it, its ``POST /init`` body (ours: a
    generic environment specialised as the router does it), where to POST an invoke."""

    def __init__(self, name: str, start, path: str, init: dict | None = None):
        self.name, self.start, self.path, self.init = name, start, path, init


def ours(name: str, init: dict) -> Target:
    return Target(name, runtime_starter({}), "/invoke", {"functionName": "bench", "timeoutSeconds": 10, **init})


def runtime_starter(extra: dict[str, str]):
    def start() -> tuple[subprocess.Popen, int]:
        env = process_env()
        env.update(
            LAMBDAKUBE_FUNCTION_NAME="bench", LAMBDAKUBE_TIMEOUT_SECONDS="10", LAMBDAKUBE_ENV_ID="bench", **extra
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        line = proc.stdout.readline().decode()
        assert line.startswith("LAMBDAKUBE_LISTENING port="), line
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        return proc, int(line.split("=")[1])

    return start


def rie_starter(task: Path):
    def start() -> tuple[subprocess.Popen, int]:
        binary, ric = rie_paths()
        port, api = free_port(), free_port()
        env = process_env()
        env.update(PYTHONPATH=f"{ric}:{task}", LAMBDA_TASK_ROOT=str(task), LOG_LEVEL="error")
        argv = [str(binary), "--runtime-interface-emulator-address", f"127.0.0.1:{port}"]
        argv += ["--runtime-api-address", f"127.0.0.1:{api}", sys.executable, "-m", "awslambdaric", "index.handler"]
        proc = subprocess.Popen(argv, cwd=task, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        deadline = time.monotonic() + 15
        while True:  # the emulator prints nothing machine-readable when it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("aws-lambda-rie did not listen") from None
                time.sleep(0.005)

    return start


def targets(root: Path) -> list[Target]:
    ric_task = awslambdaric_task(root)
    rie_task = root / "rie"
    rie_task.mkdir()
    (rie_task / "index.py").write_text(HANDLER)
    found = [
        ours("built-in", {"handler": "index.handler", "inlineCode": HANDLER}),
        ours("runtime-api+awslambdaric", {"handler": "index.handler", "codeDir": str(ric_task), "runtime": "provided"}),
        Target("rie+awslambdaric", rie_starter(rie_task), "/2015-03-31/functions/function/invocations"),
    ]
    node_task = root / "node"
    node_task.mkdir()
    (node_task / "index.mjs").write_text(NODE_HANDLER)
    node = {"handler": "index.handler", "codeDir": str(node_task), "runtime": "nodejs20.x"}
    if shutil.which("node"):
        found.append(ours("runtime-api+node-bootstrap", node))
        ric = tool("noderic")
        if ric is not None:
            index = str(ric / "node_modules" / "aws-lambda-ric" / "index.mjs")
            found.append(ours("runtime-api+aws-lambda-ric", {**node, "env": {"LAMBDAKUBE_NODE_RIC": index}}))
    raw = root / "raw"
    raw.mkdir()
    (raw / "bootstrap").write_text(RAW_CLIENT)
    (raw / "bootstrap").chmod(0o755)
    found.append(ours("runtime-api+minimal-client", {"handler": "a.b", "codeDir": str(raw), "runtime": "provided"}))
    go = tool("lambdago")
    if go is not None:
        go_task = root / "go"
        go_task.mkdir()
        os.symlink(go / "bin" / "lambdago", go_task / "bootstrap")
        found.append(
            ours(
                "runtime-api+aws-lambda-go", {"handler": "main.handler", "codeDir": str(go_task), "runtime": "provided"}
            )
        )
    return found


def request(path: str, payload: bytes = PAYLOAD) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


async def connect(target: Target, port: int) -> RawConnection:
    """A connection to a started target, specialised first if it is ours."""
    _, conn = await asyncio.get_running_loop().create_connection(RawConnection, "127.0.0.1", port)
    if target.init is not None:
        answer = await conn.post(request("/init", json.dumps(target.init).encode()))
        assert answer.status == 200, (target.name, answer.status, answer.body[:300])
    return conn


async def warm(found: list[Target], requests: int, max_seconds: float) -> dict[str, list[float]]:
    procs, conns = [], {}
    try:
        for target in found:
            proc, port = target.start()
            procs.append(proc)
            conns[target.name] = (await connect(target, port), request(target.path))
        for conn, req in conns.values():  # warm-up: Init, first imports, JIT
            for _ in range(50):
                assert (await conn.post(req)).status == 200
        samples: dict[str, list[float]] = {t.name: [] for t in found}
        deadline = time.monotonic() + max_seconds
        rounds = max(1, requests // 100)
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            for name, (conn, req) in conns.items():
                for _ in range(100):
                    answer = await conn.post(req)
                    assert answer.status == 200, (name, answer.status, answer.body[:200])
                    samples[name].append(answer.done - answer.sent)
        return samples
    finally:
        for conn, _ in conns.values():
            conn.transport.close()
        for proc in procs:
            stop(proc)


async def cold(target: Target, times: int) -> list[float]:
    """Spawn -> first answer, seconds, of ``times`` new processes."""
    totals = []
    for _ in range(times):
        t0 = time.perf_counter()
        proc, port = target.start()
        try:
            conn = await connect(target, port)
            answer = await conn.post(request(target.path))
            totals.append(time.perf_counter() - t0)
            assert answer.status == 200, (target.name, answer.status, answer.body[:300])
            conn.transport.close()
        finally:
            stop(proc)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="warm invokes per target")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound on the warm series")
    parser.add_argument("--cold", type=int, default=5, help="cold starts per target")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lk-bench-runtime-api-") as tmp:
        found = targets(Path(tmp))
        samples = asyncio.run(warm(found, args.requests, args.max_seconds))
        base = pct(samples["built-in"], 50)
        rie = pct(samples["rie+awslambdaric"], 50)
        print(f"warm invoke, sequential, one connection each ({len(samples['built-in'])} per target)")
        print(f"  {'target':30} {'p50 ms':>8} {'p99 ms':>8} {'/built-in':>10} {'/rie':>8}")
        for name, values in samples.items():
            p50 = pct(values, 50)
            print(f"  {name:30} {p50 * 1e3:8.3f} {pct(values, 99) * 1e3:8.3f} {p50 / base:9.2f}x {p50 / rie:7.2f}x")
        print(f"\ncold start: spawn -> first answer, {args.cold} new processes each")
        print(f"  {'target':30} {'p50 ms':>8} {'min ms':>8}")
        for target in found:
            totals = asyncio.run(cold(target, args.cold))
            print(f"  {target.name:30} {pct(totals, 50) * 1e3:8.1f} {min(totals) * 1e3:8.1f}")


if __name__ == "__main__":
    main()
