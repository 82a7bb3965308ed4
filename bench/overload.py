"""Overload: many more clients than a function's concurrency, through the router.

    python bench/overload.py [--clients 1000] [--cap 200] [--handler-ms 200] [--seconds 15]

What it does, in one run, all on 127.0.0.1, every loop bounded in count and time:

1. starts a router (local backend, no generic pool) serving ``capped``, a function with
   ``reservedConcurrency: --cap`` whose handler sleeps ``--handler-ms``; once with the
   default uvloop loop and once with ``--no-uvloop`` (the baseline, same run);
2. **storm**: ``--cap`` concurrent invokes on the never-run function, so that ``--cap``
   environments cold-start at once, repeated until all are warm (bounded); reports the
   router's worst event-loop lag meanwhile (``lambdakube_event_loop_lag_max_seconds``);
3. **overload**: ``--clients`` keep-alive clients invoke as fast as they are answered for
   ``--seconds`` (a client pauses ``--throttle-pause`` after a 429, as an SDK backs off);
   meanwhile the listening socket's accept queue is sampled (``ss``: connections the
   kernel accepted and the router has not yet taken).

Printed per loop: p50/p99 of successful answers (and above the handler time), p50/p99
of 429s, the worst time to a first byte (how long a request sat unread), successful
throughput against the function's capacity (cap / handler time), the accept queue's
worst depth, and the loop lag; then uvloop/asyncio ratios. The one-request-per-
environment invariant is checked from the handlers' own start/end times: no two
answers from one environment overlap (a violation fails the run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from local_router import start_router, stop
from stats import pct
from raw_http import Answer, RawConnection

HANDLER = """\
import os, time
def handler(event, context):
    start = time.time()
    time.sleep(float(os.environ["PAUSE_MS"]) / 1000)
    return {"env": os.environ["LAMBDAKUBE_ENV_ID"], "start": start, "end": time.time()}
"""


def request_bytes(port: int) -> bytes:
    return (
        b"POST /2015-03-31/functions/capped/invocations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % port
    )


async def clients_run(port: int, clients: int, seconds: float, pause: float, max_requests: int) -> list[Answer]:
    loop = asyncio.get_running_loop()
    request = request_bytes(port)
    answers: list[Answer] = []
    deadline = time.monotonic() + seconds

    async def one() -> None:
        _, conn = await loop.create_connection(RawConnection, "127.0.0.1", port)
        try:
            while time.monotonic() < deadline and len(answers) < max_requests:
                a = await conn.post(request)
                answers.append(a)
                if a.status == 429:
                    await asyncio.sleep(pause)
        finally:
            assert conn.transport is not None
            conn.transport.close()

    results = await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"  {len(errors)} clients failed, first: {errors[0]!r}")
    return answers


class AcceptQueue:
    """Samples the listening socket's accept queue (Recv-Q of the LISTEN row, ``ss``)."""

    def __init__(self, port: int, interval: float = 0.1) -> None:
        self.port, self.interval = port, interval
        self.worst = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["ss", "-ltnH", f"sport = :{self.port}"], capture_output=True, text=True, timeout=5
            ).stdout
            for line in out.splitlines():
                fields = line.split()
                if fields and fields[0] == "LISTEN":
                    self.worst = max(self.worst, int(fields[1]))
            self._stop.wait(self.interval)

    def __enter__(self) -> AcceptQueue:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def lag_buckets(port: int) -> dict[float, float]:
    """The router's loop-lag histogram: cumulative counts by upper bound (seconds)."""
    out: dict[float, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('lambdakube_event_loop_lag_seconds_bucket{le="'):
                le = line.split('"')[1]
                out[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return out


def worst_lag_between(before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """(the upper bound of the worst lag observed between two scrapes, how many timers
    woke over 20 ms late): the histogram's buckets, differenced."""
    bounds = sorted(after)
    worst = 0.0
    below = 0.0
    for b in bounds:
        delta = after[b] - before.get(b, 0.0)
        if delta > below:
            worst = b
        below = delta
    total = after[bounds[-1]] - before.get(bounds[-1], 0.0)
    at_20ms = after.get(0.02, 0.0) - before.get(0.02, 0.0)
    return worst, int(total - at_20ms)


def check_invariant(answers: list[Answer]) -> int:
    """No environment served two requests at once; returns the environments seen."""
    by_env: dict[str, list[tuple[float, float]]] = {}
    for a in answers:
        if a.status == 200:
            body = json.loads(a.body)
            by_env.setdefault(body["env"], []).append((body["start"], body["end"]))
    for env, spans in by_env.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            if start < end:
                raise SystemExit(f"INVARIANT BROKEN: environment {env} ran two requests at once")
    return len(by_env)


async def storm(port: int, cap: int, max_seconds: float) -> tuple[float, int]:
    """Cold-start ``cap`` environments at once (rounds until all are warm)."""
    request = request_bytes(port)
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    start = time.monotonic()
    while len(seen) < cap and time.monotonic() - start < max_seconds:
        conns = [(await loop.create_connection(RawConnection, "127.0.0.1", port))[1] for _ in range(cap)]
        answers = await asyncio.gather(*(c.post(request) for c in conns), return_exceptions=True)
        for c in conns:
            assert c.transport is not None
            c.transport.close()
        for a in answers:
            if isinstance(a, Answer) and a.status == 200:
                seen.add(json.loads(a.body)["env"])
    return time.monotonic() - start, len(seen)


def run_one(args, label: str, extra: tuple[str, ...]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="lk-overload-"))
    try:
        functions = root / "functions"
        functions.mkdir()
        manifest = {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "capped"},
            "spec": {
                "handler": "index.handler",
                "code": {"inline": {"source": HANDLER}},
                "reservedConcurrency": args.cap,
                "timeoutSeconds": 30,
                "env": {"PAUSE_MS": str(args.handler_ms)},
            },
        }
        (functions / "capped.yaml").write_text(yaml.safe_dump(manifest))
        proc, port = start_router(functions, root / "state", "--generic-pool-size", "0", *extra)
        try:
            b0 = lag_buckets(port)
            storm_seconds, warm = asyncio.run(storm(port, args.cap, args.storm_seconds))
            b1 = lag_buckets(port)
            with AcceptQueue(port) as queue:
                t0 = time.monotonic()
                answers = asyncio.run(
                    clients_run(port, args.clients, args.seconds, args.throttle_pause, args.max_requests)
                )
                elapsed = time.monotonic() - t0
            b2 = lag_buckets(port)
            storm_lag, storm_late = worst_lag_between(b0, b1)
            overload_lag, overload_late = worst_lag_between(b1, b2)
        finally:
            stop(proc)
        envs = check_invariant(answers)
        ok = [a for a in answers if a.status == 200]
        throttled = [a for a in answers if a.status == 429]
        other = len(answers) - len(ok) - len(throttled)
        capacity = args.cap / (args.handler_ms / 1000)
        r = {
            "label": label,
            "storm_s": storm_seconds,
            "warm": warm,
            "storm_lag_ms": storm_lag * 1000,
            "ok_p50_ms": pct([a.done - a.sent for a in ok], 50) * 1000,
            "ok_p99_ms": pct([a.done - a.sent for a in ok], 99) * 1000,
            "t429_p50_ms": pct([a.done - a.sent for a in throttled], 50) * 1000,
            "t429_p99_ms": pct([a.done - a.sent for a in throttled], 99) * 1000,
            "first_byte_max_ms": max((a.first_byte - a.sent for a in answers), default=float("nan")) * 1000,
            "ok_per_s": len(ok) / elapsed,
            "capacity_pct": 100 * len(ok) / elapsed / capacity,
            "accept_queue_max": queue.worst,
            "lag_max_ms": overload_lag * 1000,
            "ok": len(ok),
            "throttled": len(throttled),
            "other": other,
            "envs": envs,
        }
        print(
            f"{label}: storm of {args.cap} cold starts {storm_seconds:.1f} s ({warm} warm), loop lag max"
            f" <= {r['storm_lag_ms']:.0f} ms ({storm_late} timers over 20 ms late)\n"
            f"  overload {args.clients} clients {elapsed:.1f} s: {len(ok)} ok, {len(throttled)} throttled,"
            f" {other} other; {envs} environments, none served two requests at once\n"
            f"  ok p50 {r['ok_p50_ms']:.0f} ms p99 {r['ok_p99_ms']:.0f} ms (handler {args.handler_ms} ms:"
            f" p99 +{r['ok_p99_ms'] - args.handler_ms:.0f} ms); 429 p50 {r['t429_p50_ms']:.1f} ms"
            f" p99 {r['t429_p99_ms']:.1f} ms\n"
            f"  worst time to first byte {r['first_byte_max_ms']:.0f} ms; accept queue max {queue.worst};"
            f" ok {r['ok_per_s']:.0f}/s = {r['capacity_pct']:.0f}% of capacity ({capacity:.0f}/s);"
            f" loop lag max <= {r['lag_max_ms']:.0f} ms ({overload_late} timers over 20 ms late)",
            flush=True,
        )
        return r
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--cap", type=int, default=200)
    p.add_argument("--handler-ms", type=int, default=200)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--storm-seconds", type=float, default=180, help="bound on the cold-start storm")
    p.add_argument("--throttle-pause", type=float, default=0.1, help="a client's pause after a 429 (s)")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument(
        "--only", choices=("uvloop", "asyncio"), help="run one only: the uvloop router, or the baseline (--baseline)"
    )
    p.add_argument(
        "--baseline",
        choices=("asyncio", "no-front"),
        default="asyncio",
        help="what the uvloop router is compared with: plain asyncio, or the router without"
        " its front (--no-fast-invoke: every request through aiohttp)",
    )
    args = p.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[:3]}; {args.clients} clients, cap {args.cap}, {args.handler_ms} ms")
    base_label, base_flags = {
        "asyncio": ("asyncio (baseline)", ("--no-uvloop",)),
        "no-front": ("uvloop, no front (baseline)", ("--no-fast-invoke",)),
    }[args.baseline]
    runs = {}
    if args.only != "asyncio":
        runs["uvloop"] = run_one(args, "uvloop", ())
    if args.only != "uvloop":
        runs["baseline"] = run_one(args, base_label, base_flags)
    if len(runs) == 2:
        u, a = runs["uvloop"], runs["baseline"]
        print(f"uvloop / {base_label}:")
        for key in ("ok_p99_ms", "t429_p99_ms", "first_byte_max_ms", "ok_per_s", "storm_lag_ms", "lag_max_ms"):
            ratio = u[key] / a[key] if a[key] else float("nan")
            print(f"  {key}: {u[key]:.1f} / {a[key]:.1f} = {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
