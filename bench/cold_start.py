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
    refill rate gets (a mix of generic and fresh; none fail);
(e) **baselines**, measured in the same run, so the cold starts read as ratios on any
    machine: a bare isolated interpreter (``python -I -S -c pass``, the floor of any
    fresh process), the same importing ``asyncio`` (the runtime's largest import) and
    the router's interpreter with its ``site`` (``python -c pass``);
(f) **storm** (loop lag): ``--storm`` fresh environments started at once by a local
    backend in this process, while a probe on the same event loop measures how late
    its 5 ms ticks come (the loop is blocked for that long); the same probe over an
    idle loop first is the baseline. Every start must succeed; all are stopped after.

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
from local_router import process_env, start_router, stop
from stats import pct

HANDLER = 'def handler(event, context):\n    return {"ok": True, "echo": event.get("i")}\n'
PAYLOAD = json.dumps({"i": 1}).encode()
TARGET_P50_MS = 100.0
TARGET_P99_MS = 250.0
#: The issue's goals for fresh cold starts, and for the loop during a storm.
FRESH_TARGET_P50_MS = 100.0
FRESH_TARGET_P99_MS = 150.0
LOOP_LAG_TARGET_MS = 20.0
PROBE_TICK = 0.005


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


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


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


def spawn_baselines(samples: int) -> dict[str, list[float]]:
    """Milliseconds from spawn to exit of bare interpreters (blocking; before any router)."""
    cases = {
        "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
        "python -I -S -c 'import asyncio'": [sys.executable, "-I", "-S", "-c", "import asyncio"],
        "python -c pass (with site)": [sys.executable, "-c", "pass"],
    }
    out: dict[str, list[float]] = {}
    for label, argv in cases.items():
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, env=process_env())
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = times
    return out


def runqueue_wait_ms() -> float:
    """How long this thread has waited for a CPU while runnable, in all (ms; Linux
    schedstat), or NaN where that is not known."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return float("nan")


class LoopProbe:
    """Ticks every ``PROBE_TICK`` seconds and records how late each tick came (ms):
    ``lags`` as the clock says, and ``blocked``: the same minus the time the loop's
    thread waited for a CPU meanwhile. On a small machine a storm's runtimes are
    hundreds of runnable processes and the scheduler makes the router wait its turn;
    that is the machine being full, not the loop being blocked (by a callback, a
    blocking call, the GIL held by another thread), which ``blocked`` is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.blocked: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, waited = loop.time() + PROBE_TICK, runqueue_wait_ms()
            await asyncio.sleep(PROBE_TICK)
            lag = max(0.0, (loop.time() - due) * 1000)
            self.lags.append(lag)
            self.blocked.append(max(0.0, lag - (runqueue_wait_ms() - waited)))

    def __enter__(self) -> LoopProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()


async def storm(count: int) -> tuple[LoopProbe, LoopProbe, list[float], float]:
    """``count`` fresh starts at once on a local backend in this process: (the probe
    of the idle loop, the probe during the storm, per-start ms, the storm's total ms)."""
    from lambdakube.models import FunctionSpec  # noqa: PLC0415 - the router's own code, in process
    from lambdakube_router.backends.base import FunctionRef  # noqa: PLC0415
    from lambdakube_router.backends.local import LocalBackend  # noqa: PLC0415

    spec = FunctionSpec.model_validate({"handler": "index.handler", "code": {"inline": {"source": HANDLER}}})
    backend = LocalBackend(stop_grace=2.0, listen_timeout=120.0)
    fn = FunctionRef("default", "storm")
    starts: list[float] = []

    async def one(i: int):
        t0 = time.perf_counter()
        handle = await backend.start(fn, spec, f"storm-{i}", False)
        starts.append((time.perf_counter() - t0) * 1000)
        return handle

    try:
        await backend.stop(await one(-1))  # the compiled runtime copy, once; not measured
        starts.clear()
        with LoopProbe() as idle:
            await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        with LoopProbe() as busy:
            handles = await asyncio.gather(*(one(i) for i in range(count)))
        total = (time.perf_counter() - t0) * 1000
        assert len(handles) == count
    finally:
        await backend.close()
    return idle, busy, starts, total


async def run(args) -> int:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    baselines = spawn_baselines(args.baseline_samples)
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
        print(
            f"generic cold start vs targets: p50 {b50:.1f} ms {verdict(b50, TARGET_P50_MS)}"
            f" {TARGET_P50_MS:.0f} ms; p99 {b99:.1f} ms {verdict(b99, TARGET_P99_MS)}"
            f" {TARGET_P99_MS:.0f} ms"
        )
        print(
            f"fresh cold start vs targets: p50 {a50:.1f} ms {verdict(a50, FRESH_TARGET_P50_MS)}"
            f" {FRESH_TARGET_P50_MS:.0f} ms; p99 {a99:.1f} ms {verdict(a99, FRESH_TARGET_P99_MS)}"
            f" {FRESH_TARGET_P99_MS:.0f} ms"
        )
        print(f"(e) baselines, spawn to exit, n={args.baseline_samples}, ms as p50 / p99:")
        for label, times in baselines.items():
            b = pct(times, 50)
            print(f"  {label:<36} {b:7.1f} /{pct(times, 99):7.1f}   fresh cold start p50 = {a50 / b:.1f}x this")
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
    if args.storm:
        idle, busy, starts, total = await storm(args.storm)
        print(
            f"(f) storm: {args.storm} fresh starts at once on one loop, in {total:.0f} ms;"
            f" per start p50 {pct(starts, 50):.1f} / p99 {pct(starts, 99):.1f} ms"
        )
        print(f"  loop lag, ms late per {PROBE_TICK * 1000:.0f} ms tick, as p50 / p99 / max:")
        for label, values in (
            ("idle loop (baseline)", idle.lags),
            ("storm, by the clock", busy.lags),
            ("storm, less waits for a CPU", busy.blocked),
        ):
            print(f"    {label:<30} {pct(values, 50):6.1f} /{pct(values, 99):6.1f} /{max(values, default=0):6.1f}")
        worst = max(busy.blocked, default=float("nan"))
        print(
            f"  loop blocked at most {worst:.1f} ms during the storm: {verdict(worst, LOOP_LAG_TARGET_MS)}"
            f" {LOOP_LAG_TARGET_MS:.0f} ms"
        )
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=40, help="cold starts per series (a) and (b)")
    p.add_argument("--pool-size", type=int, default=2, help="generic pool size of router (b)")
    p.add_argument("--warm-requests", type=int, default=300)
    p.add_argument("--burst", type=int, default=10, help="back-to-back cold starts in (d)")
    p.add_argument("--baseline-samples", type=int, default=20, help="spawns per baseline interpreter in (e)")
    p.add_argument("--storm", type=int, default=200, help="fresh starts at once in (f); 0 skips it")
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
