"""Router overhead: warm invokes straight to a runtime vs through the router (local backend).

    python bench/router_overhead.py [--requests 2000] [--clients 8] [--throughput-requests 10000]

What it does, in one run, all on 127.0.0.1:
1. starts one runtime process directly (``python -m lambdakube_runtime --port 0``) and a
   router process (``python -m lambdakube_router --backend local --port 0``) serving the
   same trivial function;
2. warms both up, then measures sequential warm-invoke latency (p50/p99) direct and via
   the router, with the same client, and prints the difference (the router's overhead);
   Lambda's own emulator (aws-lambda-rie with awslambdaric, ``make rie``) serving the
   same handler is measured in the same interleaved series: issue 15's goal 2 is the
   router's p50 at or below it; so is a second router with ``--no-fast-invoke`` (every
   request through aiohttp), the baseline of the router's own front (``fast_invoke``);
3. measures throughput through the router with ``--clients`` concurrent clients (the
   router gives each its own warm environment), bounded by ``--throughput-requests``
   and ``--max-seconds``.

The client runs in this process (uvloop if installed), so on a small machine it shares
the CPU with the router and the runtimes; the numbers are end-to-end, not the router's
CPU cost alone. ``--client raw`` swaps aiohttp's client for a minimal one (a fraction of
the CPU per request), to see what the router + runtimes sustain when the load generator
takes less of the machine.

CPU per invoke is read from ``/proc/<pid>/stat`` (utime + stime) of the router, its
environment processes and the direct runtime, and is robust to other load on the
machine, unlike req/s; environments started during a run are reported apart (their
imports are cold-start cost, not warm-invoke cost).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from local_router import process_env, start_router, stop
from raw_http import RawConnection

HANDLER = (
    "import time\n"
    "def handler(event, context):\n"
    '    if event.get("hold"):\n'
    '        time.sleep(event["hold"])  # the warm-up: hold every environment at once\n'
    '    return {"ok": True, "echo": event.get("i")}\n'
)
MANIFEST = f"""
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata: {{name: bench}}
spec:
  handler: index.handler
  timeoutSeconds: 10
  idleTimeoutSeconds: 3600
  code:
    inline:
      source: |
{textwrap.indent(HANDLER, " " * 8)}
"""
PAYLOAD = json.dumps({"i": 1, "data": "x" * 64}).encode()
HOLD = json.dumps({"i": 0, "hold": 1.5}).encode()


def rie_paths() -> tuple[Path, Path]:
    """(aws-lambda-rie binary, awslambdaric's install dir), as ``make rie`` built them;
    missing: the bench stops, naming the target (a baseline is never silently left out)."""
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        ["bash", str(repo / "hack" / "build-tools.sh"), "--check", "rie"], capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"bench: Lambda's emulator is not built: {out.stderr.strip()}")
    binary = Path(os.path.realpath(Path(out.stdout.strip()) / "rie"))
    return binary, binary.parent.parent / "python"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_rie(task: Path) -> tuple[subprocess.Popen, int]:
    """aws-lambda-rie running ``python -m awslambdaric index.handler`` (the same handler)
    on 127.0.0.1; its runtime starts on the first invoke, which the warm-up makes."""
    binary, ric = rie_paths()
    (task / "index.py").write_text(HANDLER)
    port, api = free_port(), free_port()
    env = process_env()
    env.update(PYTHONPATH=f"{ric}:{task}", LAMBDA_TASK_ROOT=str(task), LOG_LEVEL="error")
    proc = subprocess.Popen(
        [
            str(binary),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{port}",
            "--runtime-api-address",
            f"127.0.0.1:{api}",
            sys.executable,
            "-m",
            "awslambdaric",
            "index.handler",
        ],
        cwd=task,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    deadline = time.monotonic() + 15
    while True:  # the emulator prints nothing machine-readable when it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aws-lambda-rie did not listen on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def start_runtime() -> tuple[subprocess.Popen, int]:
    env = process_env()
    env.update(
        LAMBDAKUBE_HANDLER="index.handler",
        LAMBDAKUBE_INLINE_CODE=HANDLER,
        LAMBDAKUBE_FUNCTION_NAME="bench",
        LAMBDAKUBE_TIMEOUT_SECONDS="10",
        LAMBDAKUBE_ENV_ID="direct",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = proc.stdout.readline().decode()
    assert line.startswith("LAMBDAKUBE_LISTENING port="), line
    # keep draining the runtime's per-invocation log lines
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(line.split("=")[1])


BASELINE_SERVER = """
import sys
from aiohttp import web
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
async def h(request):
    await request.read()
    return web.Response(body=b'{"ok":true}', content_type="application/json")
app = web.Application(); app.router.add_post("/x", h)
def ready(*a, **k):
    print("LISTENING", flush=True)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=ready)
"""


def start_baseline() -> tuple[subprocess.Popen, int]:
    """A bare aiohttp hello-world server: the floor any aiohttp-based router pays."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", BASELINE_SERVER, str(port)], env=process_env(), stdout=subprocess.PIPE
    )
    proc.stdout.readline()
    return proc, port


class RawSession:
    """A minimal load generator: far less CPU per request than aiohttp's client, so on a
    small machine more of the cores go to the router and the runtimes (``--client raw``).
    Same surface as the part of ``aiohttp.ClientSession`` used here: ``post_status``."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[RawConnection]] = {}

    async def post_status(self, url: str, data: bytes) -> int:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, port = hostport.rsplit(":", 1)
        key = (host, int(port))
        idle = self._idle.setdefault(key, [])
        conn = idle.pop() if idle else None
        if conn is None or conn.transport.is_closing():
            _, conn = await asyncio.get_running_loop().create_connection(RawConnection, *key)
        answer = await conn.post(
            b"POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), hostport.encode(), len(data), data)
        )
        idle.append(conn)
        return answer.status

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.transport.close()


class AiohttpSession:
    """The default client: what an ordinary Python caller of the Invoke API would use."""

    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def post_status(self, url: str, data: bytes) -> int:
        async with self._session.post(url, data=data) as resp:
            await resp.read()
            return resp.status

    async def close(self) -> None:
        await self._session.close()


async def sequential(session, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status = await session.post_status(url, PAYLOAD)
        assert status == 200, status
        out.append(time.perf_counter() - t0)
    return out


async def throughput(session, url: str, clients: int, total: int, max_seconds: float) -> tuple[int, float, dict]:
    remaining = total
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + max_seconds

    async def client():
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            status = await session.post_status(url, PAYLOAD)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    return sum(statuses.values()), elapsed, statuses


async def warm_all(session, url: str, clients: int) -> None:
    """Rounds of ``clients`` invokes in flight at once, each holding its environment, until
    the router has one idle environment per client (it starts a bounded number at once,
    so one short round leaves requests to reuse the first ones). At most 5 rounds."""
    pool_url = url.split("/2015-03-31/")[0] + "/lambdakube/v1/namespaces/default/functions/bench"
    async with aiohttp.ClientSession() as plain:
        for _ in range(5):
            statuses = await asyncio.gather(*(session.post_status(url, HOLD) for _ in range(clients)))
            assert set(statuses) == {200}, statuses
            async with plain.get(pool_url) as resp:
                counts = (await resp.json())["pool"]["counts"]
            if counts["idle"] >= clients:
                return
    print(f"  (warm-up: {counts['idle']} idle environments for {clients} clients after 5 rounds)")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def user_system(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def cpu_snapshot(router_pid: int) -> tuple[float, float, float]:
    """(router, its environments, this client) CPU seconds so far."""
    envs = sum(cpu_seconds(c) for c in children(router_pid))
    return cpu_seconds(router_pid), envs, time.process_time()


def env_cpu(router_pid: int) -> dict[int, float]:
    """CPU seconds of each environment process (child of the router) so far."""
    return {pid: cpu_seconds(pid) for pid in children(router_pid)}


def env_split(before: dict[int, float], after: dict[int, float], n: int) -> str:
    """Environment CPU per invoke, separating warm environments that served the run from
    processes started during it (a cold start's imports are not warm-invoke cost)."""
    warm = [after[p] - before[p] for p in after if p in before]
    new = [after[p] for p in after if p not in before]
    busy = sum(1 for d in warm if d > 0.05)
    text = f"{sum(warm) / n * 1e6:.0f} us in {busy} warm environments"
    if new:
        text += f" (+{sum(new) / n * 1e6:.0f} us/invoke in {len(new)} started during the run)"
    return text


class CpuMeter:
    """Accumulates CPU seconds of processes over the measured stretches of a run."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.total = dict.fromkeys(pids, 0.0)
        self._start: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc) -> None:
        for name, pid in self.pids.items():
            self.total[name] += cpu_seconds(pid) - self._start[name]

    def per_invoke_us(self, name: str, n: int) -> float:
        return self.total[name] / n * 1e6


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lambdakube-bench-"))
    (tmp / "fns").mkdir()
    (tmp / "fns" / "bench.yaml").write_text(MANIFEST)
    runtime, rport = start_runtime()
    baseline, bport = start_baseline()
    (tmp / "task").mkdir()
    rie, rie_port = start_rie(tmp / "task")
    loop_flags = ["--no-uvloop"] if args.no_uvloop else []
    router, port = start_router(tmp / "fns", tmp / "state", *loop_flags)
    # the same router without its front (every request through aiohttp): the front's baseline
    plain, plain_port = start_router(tmp / "fns", tmp / "state-plain", "--no-fast-invoke", *loop_flags)
    direct_url = f"http://127.0.0.1:{rport}/invoke"
    rie_url = f"http://127.0.0.1:{rie_port}/2015-03-31/functions/function/invocations"
    router_url = f"http://127.0.0.1:{port}/2015-03-31/functions/bench/invocations"
    plain_url = f"http://127.0.0.1:{plain_port}/2015-03-31/functions/bench/invocations"
    try:
        s = RawSession() if args.client == "raw" else AiohttpSession()
        try:
            await sequential(s, direct_url, args.warmup)
            await sequential(s, router_url, args.warmup)
            await sequential(s, rie_url, args.warmup)
            await sequential(s, plain_url, args.warmup)
            # interleave the series in chunks so background noise hits them alike
            direct, routed, emulated, unfronted = [], [], [], []
            plain_meter = CpuMeter(router=plain.pid)
            chunk = max(1, args.requests // 10)
            direct_meter = CpuMeter(runtime=runtime.pid)
            rie_children = children(rie.pid)
            rie_meter = CpuMeter(rie=rie.pid, **{f"ric{i}": pid for i, pid in enumerate(rie_children)})
            # the environment serving sequential requests: the router's busiest child
            env_before = env_cpu(router.pid)
            router_meter = CpuMeter(router=router.pid)
            for _ in range(10):
                with direct_meter:
                    direct += await sequential(s, direct_url, chunk)
                with router_meter:
                    routed += await sequential(s, router_url, chunk)
                with rie_meter:
                    emulated += await sequential(s, rie_url, chunk)
                with plain_meter:
                    unfronted += await sequential(s, plain_url, chunk)
            env_after = env_cpu(router.pid)
            seq_env_us = max((env_after[p] - env_before.get(p, 0.0) for p in env_after), default=0.0)
            seq_env_us = seq_env_us / len(routed) * 1e6
            # warm one environment per client (all held at once, so the measured part
            # starts none: issue 15's c=64 figure once counted 31 cold starts), then measure
            await warm_all(s, router_url, args.clients)
            await throughput(s, router_url, args.clients, args.clients * 20, 30)
            cpu0 = cpu_snapshot(router.pid)
            us0 = user_system(router.pid)
            envs0 = env_cpu(router.pid)
            n, elapsed, statuses = await throughput(
                s, router_url, args.clients, args.throughput_requests, args.max_seconds
            )
            envs1 = env_cpu(router.pid)
            cpu1 = cpu_snapshot(router.pid)
            us1 = user_system(router.pid)
            with CpuMeter(runtime=runtime.pid) as direct_tp_meter:
                n1, elapsed1, _ = await throughput(s, direct_url, 1, args.throughput_requests // 4, args.max_seconds)
            base_url = f"http://127.0.0.1:{bport}/x"
            await throughput(s, base_url, args.clients, 200, 30)
            b0 = cpu_seconds(baseline.pid)
            nb, elapsed_b, _ = await throughput(s, base_url, args.clients, args.throughput_requests, args.max_seconds)
            base_cpu = (cpu_seconds(baseline.pid) - b0) / nb * 1e6
        finally:
            await s.close()
        d50, d99 = pct(direct, 50), pct(direct, 99)
        r50, r99 = pct(routed, 50), pct(routed, 99)
        e50, e99 = pct(emulated, 50), pct(emulated, 99)
        print(
            f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"router loop: {'asyncio' if args.no_uvloop else 'uvloop (if installed)'}, "
            f"client: {args.client}"
        )
        print(f"sequential warm invokes ({len(direct)} each):")
        d_mean, r_mean = statistics.mean(direct) * 1000, statistics.mean(routed) * 1000
        print(f"  direct to runtime : p50 {d50:7.3f} ms   p99 {d99:7.3f} ms   mean {d_mean:7.3f} ms")
        print(f"  through router    : p50 {r50:7.3f} ms   p99 {r99:7.3f} ms   mean {r_mean:7.3f} ms")
        e_mean = statistics.mean(emulated) * 1000
        print(f"  RIE + awslambdaric: p50 {e50:7.3f} ms   p99 {e99:7.3f} ms   mean {e_mean:7.3f} ms")
        u50, u99 = pct(unfronted, 50), pct(unfronted, 99)
        u_mean = statistics.mean(unfronted) * 1000
        print(f"  router, no front  : p50 {u50:7.3f} ms   p99 {u99:7.3f} ms   mean {u_mean:7.3f} ms")
        front_cpu = router_meter.per_invoke_us("router", len(routed))
        plain_cpu = plain_meter.per_invoke_us("router", len(unfronted))
        print(
            f"  the front (fast_invoke) against aiohttp only: p50 {r50 / u50:.2f}x,"
            f" router CPU {front_cpu:.0f} against {plain_cpu:.0f} us per invoke ({front_cpu / plain_cpu:.2f}x)"
        )
        rie_cpu = sum(rie_meter.total.values()) / len(emulated) * 1e6
        print(
            f"  goal 2, router p50 / RIE p50: {r50 / e50:.2f}x (goal <= 1.00);"
            f" RIE's CPU per invoke (emulator + runtime) {rie_cpu:.0f} us"
        )
        print(
            f"  router overhead   : p50 {r50 - d50:+7.3f} ms   p99 {r99 - d99:+7.3f} ms"
            f"   (ratio p50 {r50 / d50:.2f}x, p99 {r99 / d99:.2f}x)"
        )
        print(
            f"  CPU per invoke    : direct runtime {direct_meter.per_invoke_us('runtime', len(direct)):.0f} us;"
            f" through router: router {router_meter.per_invoke_us('router', len(routed)):.0f} us"
            f" + environment {seq_env_us:.0f} us"
            f" (benchmark client not included)"
        )
        print(
            f"throughput through router, {args.clients} concurrent clients: "
            f"{n / elapsed:8.0f} invokes/s ({n} in {elapsed:.2f} s, statuses {statuses})"
        )
        r_cpu, e_cpu, c_cpu = ((b - a) / n * 1e6 for a, b in zip(cpu0, cpu1))
        print(
            f"  CPU per invoke: router {r_cpu:6.0f} us, environments {e_cpu:6.0f} us, "
            f"benchmark client {c_cpu:6.0f} us  -> the router alone could serve "
            f"~{1e6 / r_cpu:,.0f} invokes/s per core"
            if r_cpu
            else "  CPU: n/a"
        )
        print(f"  environments' CPU per invoke: {env_split(envs0, envs1, n)}")
        print(
            f"  baseline: a bare aiohttp hello-world server costs {base_cpu:.0f} us CPU per"
            f" request on this machine right now ({nb / elapsed_b:.0f} req/s, {args.clients} clients)"
        )
        print(
            f"  router CPU split: user {(us1[0] - us0[0]) / n * 1e6:.0f} us,"
            f" system {(us1[1] - us0[1]) / n * 1e6:.0f} us per invoke"
        )
        print(
            f"throughput direct, 1 client (a runtime serves one at a time): "
            f"{n1 / elapsed1:8.0f} invokes/s  (router/direct ratio {(n / elapsed) / (n1 / elapsed1):.2f}x)"
            f"; runtime CPU {direct_tp_meter.per_invoke_us('runtime', n1):.0f} us per invoke"
        )
    finally:
        rie_runtimes = children(rie.pid)  # awslambdaric: ended by its PID if the emulator leaves it
        for proc in (router, plain, runtime, baseline, rie):
            stop(proc, timeout=15)
        for pid in rie_runtimes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="sequential requests per target")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--throughput-requests", type=int, default=10000)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--no-uvloop", action="store_true", help="router and client on plain asyncio")
    p.add_argument(
        "--client",
        choices=("aiohttp", "raw"),
        default="aiohttp",
        help="load generator: aiohttp's client (default), or a minimal keep-alive client"
        " that leaves more CPU to the router and runtimes on a small machine",
    )
    args = p.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
