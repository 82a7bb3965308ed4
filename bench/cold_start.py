"""Cold starts through the router (local backend): fresh process vs pre-warmed generic env.

    python bench/cold_start.py [--samples 40] [--pool-size 2] [--warm-requests 300]

What it does, in one run, all on 127.0.0.1, with bounded loops:

(a) **fresh**: a router with ``--generic-pool-size 0``; every sample invokes a function
    that has never run (``cold-0``, ``cold-1``, ... from a temporary manifests
    directory), so each is a cold start that spawns a new runtime process;
(b) **generic**: a second router with ``--generic-pool-size N``; before each sample it
    waits (bounded) until the pool is full again, as it would be when cold starts are
    rarer than a refill, then invokes another never-run function: the cold start takes
    a spare and specialises it (``POST /init``);
(c) **warm**: repeated invokes of one function on router (b) after its first call;
(d) **burst** (informational): ``--burst`` never-run functions invoked back to back on
    router (b) without waiting for refills, to show what a cold-start rate above the
    refill rate gets (a mix of generic and fresh; none fail).

Every answer must say what served it (``X-Environment-Source``) and the benchmark checks
it. Reported per series: end-to-end latency at the client (p50/p99), and the router's
phase headers: queue wait (for a cold start: lease request to environment ready),
Init duration (the runtime's import of the handler) and run duration.

The client runs in this process; on a small machine it shares the CPU with the routers,
the runtimes and whatever else runs there, so the load average is printed first.
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
import textwrap
import time
from pathlib import Path

import aiohttp
from local_router import start_router, stop

HANDLER = 'def handler(event, context):\n    return {"ok": True, "echo": event.get("i")}\n'
PAYLOAD = json.dumps({"i": 1}).encode()
TARGET_P50_MS = 100.0
TARGET_P99_MS = 250.0


def manifest(name: str) -> str:
    return f"""---
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  handler: index.handler
  timeoutSeconds: 10
  idleTimeoutSeconds: 3600
  code:
    inline:
      source: |
{textwrap.indent(HANDLER, " " * 8)}"""


class Sample:
    __slots__ = ("total", "queue", "init", "run", "source", "cold")

    def __init__(self, total: float, h) -> None:
        self.total = total * 1000
        self.queue = float(h.get("X-Queue-Wait-Ms", "nan"))
        self.init = float(h.get("X-Init-Duration-Ms", "nan"))
        self.run = float(h.get("X-Run-Duration-Ms", "nan"))
        self.source = h.get("X-Environment-Source", "?")
        self.cold = h.get("X-Cold-Start") == "true"


async def invoke(session: aiohttp.ClientSession, port: int, name: str) -> Sample:
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations"
    t0 = time.perf_counter()
    async with session.post(url, data=PAYLOAD) as resp:
        body = await resp.read()
        total = time.perf_counter() - t0
        assert resp.status == 200, (resp.status, body[:300])
        return Sample(total, resp.headers)


async def pool_available(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("lambdakube_generic_pool_available "):
            return int(float(line.split()[1]))
    return 0


async def wait_pool_full(session, port: int, size: int, limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await pool_available(session, port) >= size:
            return True
        await asyncio.sleep(0.02)
    return False


def pct(values: list[float], p: float) -> float:
    values = sorted(v for v in values if v == v)  # drop NaN
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def line(label: str, samples: list[Sample]) -> str:
    def col(attr: str) -> str:
        vals = [getattr(s, attr) for s in samples]
        if all(v != v for v in vals):
            return f"{'-':>7} /{'-':>7}"
        return f"{pct(vals, 50):7.1f} /{pct(vals, 99):7.1f}"

    return (
        f"  {label:<26} n={len(samples):<3} end-to-end {col('total')}   queue wait {col('queue')}"
        f"   init {col('init')}   run {col('run')}"
    )


async def run(args) -> int:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    n, burst = args.samples, args.burst
    tmp = Path(tempfile.mkdtemp(prefix="lambdakube-coldbench-"))
    fns = tmp / "fns"
    fns.mkdir()
    names = [f"cold-{i}" for i in range(2 * n + burst)]
    (fns / "functions.yaml").write_text("\n".join(manifest(x) for x in names + ["warm"]) + "\n")
    fresh_names, generic_names, burst_names = names[:n], names[n : 2 * n], names[2 * n :]
    routers: list[subprocess.Popen] = []
    ok = True
    try:
        fresh_router, fresh_port = start_router(fns, tmp / "state-fresh", "--generic-pool-size", "0")
        routers.append(fresh_router)
        gen_router, gen_port = start_router(fns, tmp / "state-generic", "--generic-pool-size", str(args.pool_size))
        routers.append(gen_router)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:
            await wait_pool_full(s, gen_port, args.pool_size)
            # warm the client and both routers' HTTP paths (not the function paths)
            for port in (fresh_port, gen_port):
                for _ in range(5):
                    async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                        await r.read()

            # interleave (a) and (b) so background noise from other processes hits both alike
            fresh, generic, not_full = [], [], 0
            for a_name, b_name in zip(fresh_names, generic_names):
                fresh.append(await invoke(s, fresh_port, a_name))
                await asyncio.sleep(args.pause)
                if not await wait_pool_full(s, gen_port, args.pool_size):
                    not_full += 1
                await asyncio.sleep(args.pause)
                generic.append(await invoke(s, gen_port, b_name))
                await asyncio.sleep(args.pause)

            await invoke(s, gen_port, "warm")  # its cold start, not measured
            warm = [await invoke(s, gen_port, "warm") for _ in range(args.warm_requests)]

            await wait_pool_full(s, gen_port, args.pool_size)
            bursts = [await invoke(s, gen_port, x) for x in burst_names]

        # what served each series must be what the series claims
        checks = {
            "fresh": all(x.cold and x.source == "fresh" for x in fresh),
            "generic": all(x.cold and x.source == "generic" for x in generic),
            "warm": all(not x.cold and x.source == "warm" for x in warm),
            "burst": all(x.cold and x.source in ("fresh", "generic") for x in bursts),
        }
        print(
            f"{n} cold starts per series (each a never-invoked function), generic pool size"
            f" {args.pool_size}; ms as p50 / p99 (with n={n}, p99 is about the maximum)"
        )
        print(line("(a) cold, fresh", fresh))
        print(line("(b) cold, generic", generic))
        print(line("(c) warm", warm))
        src = {k: sum(1 for x in bursts if x.source == k) for k in ("generic", "fresh")}
        if bursts:
            print(
                line("(d) burst, no refill wait", bursts)
                + f"   sources: {src['generic']} generic, {src['fresh']} fresh"
            )
        a50, a99 = pct([x.total for x in fresh], 50), pct([x.total for x in fresh], 99)
        b50, b99 = pct([x.total for x in generic], 50), pct([x.total for x in generic], 99)
        print(f"ratio fresh/generic cold start: p50 {a50 / b50:.1f}x, p99 {a99 / b99:.1f}x")
        verdict = lambda v, t: "meets" if v <= t else "MISSES"  # noqa: E731
        print(
            f"generic cold start vs targets: p50 {b50:.1f} ms {verdict(b50, TARGET_P50_MS)}"
            f" {TARGET_P50_MS:.0f} ms; p99 {b99:.1f} ms {verdict(b99, TARGET_P99_MS)}"
            f" {TARGET_P99_MS:.0f} ms"
        )
        if not_full:
            print(f"note: {not_full} generic sample(s) ran before the pool had refilled")
        bad = [k for k, v in checks.items() if not v]
        if bad:
            ok = False
            print(f"ERROR: unexpected X-Environment-Source/X-Cold-Start in: {', '.join(bad)}")
        load = os.getloadavg()
        print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        for proc in routers:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=40, help="cold starts per series (a) and (b)")
    p.add_argument("--pool-size", type=int, default=2, help="generic pool size of router (b)")
    p.add_argument("--warm-requests", type=int, default=300)
    p.add_argument("--burst", type=int, default=10, help="back-to-back cold starts in (d)")
    p.add_argument(
        "--pause", type=float, default=0.05, help="seconds between samples (lets the previous start's tail settle)"
    )
    args = p.parse_args()
    if args.pool_size < 1:
        p.error("--pool-size must be >= 1 (series (b) needs spares)")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
