"""Cold starts and warm overhead on real pods, in one run (``make bench-node``).

    python bench/real_node.py [--samples 20] [--warm 300]

Brings up this machine's real node (tests/e2e/node.py) and installs the chart, unless
``LAMBDAKUBE_E2E_KUBECONFIG`` names a cluster that already has the images. Then, with
bounded loops, all against the router's ClusterIP (or a port-forward):

(a) **fresh pod**: ``--samples`` never-invoked Functions of 256 MB (no generic pod fits
    them): each first invoke creates a pod and waits for it. Twice: back to back, and
    at random arrival times (a seeded uniform 0-1 s pause before each). Why both: a
    fresh pod's IP reaches the API with the kubelet's first PLEG relist (every 1 s)
    after its container started, and a back-to-back sample starts just after the relist
    that ended the previous one, so every sample waits for a whole period (p50 ~1.00 s
    whatever the pod's start costs). Real cold starts arrive at any phase: the random
    series is the one the goals are read against;
(b) **generic claim**: ``--samples`` never-invoked 128 MB Functions; before each sample
    the benchmark waits (bounded) for a Ready generic pod, as it would be when cold
    starts are rarer than refills, so each sample claims one and sends it the code;
(c) **warm**: ``--warm`` sequential invokes of one warm Function through the router's
    Service, interleaved with the same number of direct ``POST /invoke`` calls to that
    environment's pod IP: the baseline, measured in the same run on the same pod.

Every answer must say what served it (``X-Environment-Source``), and the benchmark
checks it. It prints p50/p99 per series, the goals, and ratios against (c)'s direct
baseline. Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lambdakube.resources import env_token, labels  # noqa: E402
from tests.e2e.cluster import Cluster, function_manifest, wait_for  # noqa: E402
from stats import pct  # noqa: E402

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
GOALS = {"fresh p50": 1000.0, "fresh p99": 1500.0, "generic p50": 50.0, "warm overhead p50": 1.0}


def row(name: str, ms: list[float]) -> str:
    return f"{name:<26} n={len(ms):<4} p50 {pct(ms, 50):9.2f} ms   p99 {pct(ms, 99):9.2f} ms"


class Timer:
    """One keep-alive connection per target, so a sample measures a request, not a TCP
    handshake (the router keeps its own connections to environments alive too)."""

    def __init__(self, host: str, port: int):
        self.conn = http.client.HTTPConnection(host, port, timeout=60)

    def post(self, path: str, body: bytes, headers: dict) -> tuple[float, int, dict]:
        start = time.perf_counter()
        self.conn.request("POST", path, body=body, headers=headers)
        resp = self.conn.getresponse()
        resp.read()
        return (time.perf_counter() - start) * 1000, resp.status, {k.lower(): v for k, v in resp.getheaders()}


def cold_series(
    c: Cluster, ns: str, timer: Timer, prefix: str, memory: int, n: int, want_source: str, before_each=None
) -> list[float]:
    """``n`` first invokes of as many new Functions (bounded: n requests, 60 s each)."""
    names = [f"{prefix}-{i}" for i in range(n)]
    c.apply(
        [function_manifest(name, HANDLER, resources={"memorySize": memory}, idleTimeoutSeconds=3600) for name in names],
        ns,
    )
    for name in names:
        wait_for(lambda name=name: c.router_function(name, ns), 60, f"router to see {name}")
    out = []
    for name in names:
        if before_each:
            before_each()
        ms, status, h = timer.post(
            f"/2015-03-31/functions/{name}/invocations",
            b"{}",
            {"X-Lambdakube-Namespace": ns, "Authorization": f"Bearer {c.token}"},
        )
        assert status == 200, (name, status)
        assert h.get("x-cold-start") == "true", (name, h)
        assert h.get("x-environment-source") == want_source, (name, h.get("x-environment-source"))
        out.append(ms)
    return out


def generic_ready(c: Cluster, ns: str) -> bool:
    pods = c.get("pods", namespace=ns, selector=f"{labels.ROLE}={labels.ROLE_GENERIC}")["items"]
    return any(
        not p["metadata"].get("deletionTimestamp")
        and any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))
        for p in pods
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1, help="of the random arrival pauses")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"load average at start: {os.getloadavg()}", flush=True)

    with cluster() as c:
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        c.kubectl("create", "namespace", ns)
        try:
            host, port = c.router_url.removeprefix("http://").split(":")
            timer = Timer(host, int(port))
            locked = cold_series(c, ns, timer, "locked", 256, args.samples, "fresh")
            fresh = cold_series(
                c, ns, timer, "fresh", 256, args.samples, "fresh", before_each=lambda: time.sleep(rng.uniform(0, 1))
            )
            generic = cold_series(
                c,
                ns,
                timer,
                "gen",
                128,
                args.samples,
                "generic",
                before_each=lambda: wait_for(lambda: generic_ready(c, ns), 60, "a Ready generic pod", interval=0.05),
            )
            via_router, direct = warm_series(c, ns, timer, args.warm)
        finally:
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)

    print()
    print(row("(a) fresh pod, back to back", locked))
    print(row("(a) fresh pod cold start", fresh))
    print(row("(b) generic pod claim", generic))
    print(row("(c) warm via router Service", via_router))
    print(row("(c) warm direct to pod", direct))
    over = [r - d for r, d in zip(via_router, direct)]
    results = {
        "fresh p50": pct(fresh, 50),
        "fresh p99": pct(fresh, 99),
        "generic p50": pct(generic, 50),
        "warm overhead p50": pct(via_router, 50) - pct(direct, 50),
    }
    print(
        f"\nwarm overhead (router - direct): p50 {results['warm overhead p50']:+.2f} ms,"
        f" pairwise median {statistics.median(over):+.2f} ms"
    )
    print(
        f"ratios vs the direct warm baseline (p50 {pct(direct, 50):.2f} ms): fresh"
        f" {pct(fresh, 50) / pct(direct, 50):.0f}x, generic {pct(generic, 50) / pct(direct, 50):.1f}x,"
        f" router {pct(via_router, 50) / pct(direct, 50):.2f}x; fresh/generic"
        f" {pct(fresh, 50) / pct(generic, 50):.1f}x"
    )
    print("fresh samples, back to back (ms):", " ".join(f"{x:.0f}" for x in sorted(locked)))
    print("fresh samples, random arrival (ms):", " ".join(f"{x:.0f}" for x in sorted(fresh)))
    for k, goal in GOALS.items():
        print(f"goal {k:<18} <= {goal:7.1f} ms: {results[k]:9.2f} ms  {'met' if results[k] <= goal else 'NOT met'}")
    return 0


def warm_series(c: Cluster, ns: str, timer: Timer, n: int) -> tuple[list[float], list[float]]:
    c.apply(function_manifest("warm", HANDLER, resources={"memorySize": 256}, idleTimeoutSeconds=3600), ns)
    wait_for(lambda: c.router_function("warm", ns), 60, "router to see warm")
    path = "/2015-03-31/functions/warm/invocations"
    hdr = {"X-Lambdakube-Namespace": ns, "Authorization": f"Bearer {c.token}"}
    _, status, h = timer.post(path, b"{}", hdr)
    assert status == 200
    # The cold start may finish before the kubelet writes the pod's IP (it announced itself).
    ip = wait_for(
        lambda: c.get("pod", h["x-environment-id"], ns)["status"].get("podIP"), 30, "the warm pod's IP in its status"
    )
    own = {env_token.HEADER: env_token.token_of(c.get("pod", h["x-environment-id"], ns))}  # as the router sends it
    direct = Timer(ip, 8080)
    via, base = [], []
    for _ in range(n):
        ms, status, h = timer.post(path, b"{}", hdr)
        assert status == 200 and h["x-environment-source"] == "warm"
        via.append(ms)
        ms, status, _ = direct.post("/invoke", b"{}", own)
        assert status == 200
        base.append(ms)
    return via, base


@contextlib.contextmanager
def cluster():
    from tests.e2e.cluster import install_release, open_cluster  # noqa: PLC0415

    with open_cluster() as c:
        install_release(c)
        try:
            yield c
        finally:
            c.close()


if __name__ == "__main__":
    sys.exit(main())
