"""A queue event source mapping on the local backend: throughput, wake latency, idle cost.

    python bench/queue_mapping.py [--messages 2000] [--batch-size 10] [--concurrency 5] [--latency-samples 30]

All on 127.0.0.1, in one process (the router app on an aiohttp test server, real
runtime processes, the real SQLite store in a temporary directory), bounded loops:

(a) **throughput**: ``--messages`` messages sent with SendMessageBatch (10 a request,
    the send rate is reported too), consumed by a handler that returns at once, with
    ``batchSize`` and ``scalingConfig.maximumConcurrency`` as given; the time from the
    first send until the queue is empty;
(b) **wake latency**: ``--latency-samples`` single messages, one at a time on an idle
    mapping (its pollers at zero), from SendMessage's answer to the handler's start
    (the handler's wall clock, the same machine): what "no busy polling, woken on
    enqueue" costs;
(c) **idle cost**: this process's CPU seconds over 3 s with the mapping idle (no poll
    loop: it should be about zero).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer

from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.snapshot import parse_documents

HANDLER = """
import json, os, time

def handler(event, context):
    now = time.time()
    with open(os.environ["OUT"], "a") as f:
        for r in event["Records"]:
            f.write(json.dumps({"body": r["body"], "start": now}) + "\\n")
    return {}
"""


def manifests(out: Path, batch_size: int, concurrency: int) -> list[dict]:
    fn = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "sink"},
        "spec": {"handler": "index.handler", "code": {"inline": {"source": HANDLER}}, "env": {"OUT": str(out)}},
    }
    esm = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "bench"},
        "spec": {
            "functionName": "sink",
            "queue": {"name": "bench"},
            "batchSize": batch_size,
            **({"maximumBatchingWindowInSeconds": 1} if batch_size > 10 else {}),
            "scalingConfig": {"maximumConcurrency": concurrency},
        },
    }
    return [fn, esm]


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lk-bench-esm-"))
    out = tmp / "seen.jsonl"
    snap, errors = parse_documents(
        yaml.safe_load_all(yaml.safe_dump_all(manifests(out, args.batch_size, args.concurrency))), "bench", "default"
    )
    assert not errors, errors
    config = RouterConfig(snapshot=snap, backend="local", state_dir=tmp / "state", sqlite_synchronous="FULL")
    client = TestClient(TestServer(await init_app(config), host="127.0.0.1"))
    await client.start_server()
    url = "/lambdakube/v1/namespaces/default/queues/bench/messages"
    print(f"load average: {os.getloadavg()}")

    def seen() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    async def wait(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(seen()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(seen())} of {n} delivered within {timeout}s")
            await asyncio.sleep(0.01)

    try:
        # warm one environment so (a) measures the poller, not a cold start
        async with client.post(url, json={"MessageBody": "warm"}) as r:
            assert r.status == 200
        await wait(1, 60)
        # (a)
        start = time.monotonic()
        for i in range(0, args.messages, 10):
            entries = [{"Id": str(j), "MessageBody": f"m{i + j}"} for j in range(min(10, args.messages - i))]
            async with client.post(url, json={"Entries": entries}) as r:
                assert r.status == 200, await r.text()
        sent = time.monotonic() - start
        await wait(1 + args.messages, 300)
        total = time.monotonic() - start
        bodies = [s["body"] for s in seen()[1:]]
        assert len(bodies) == len(set(bodies)) == args.messages, "a message was delivered twice or lost"
        print(
            f"(a) throughput: {args.messages} messages, batchSize {args.batch_size}, maximumConcurrency"
            f" {args.concurrency}: sent in {sent:.2f}s ({args.messages / sent:.0f}/s, SendMessageBatch of 10),"
            f" all delivered in {total:.2f}s ({args.messages / total:.0f} messages/s end to end)"
        )
        # (b)
        await asyncio.sleep(0.5)  # idle: the pollers are at zero
        lat = []
        for k in range(args.latency_samples):
            before = len(seen())
            async with client.post(url, json={"MessageBody": f"lat{k}"}) as r:
                assert r.status == 200
                answered = time.time()
            await wait(before + 1, 30)
            lat.append((seen()[-1]["start"] - answered) * 1000)
            await asyncio.sleep(0.05)
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"(b) wake latency, SendMessage answer -> handler start, idle mapping: p50 {statistics.median(lat):.1f} ms,"
            f" p99 {p99:.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} samples)"
        )
        # (c)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(3)
        cpu = time.process_time() - cpu0
        print(f"(c) idle: {cpu * 1000:.1f} ms of CPU in {time.monotonic() - wall0:.1f} s with the mapping idle")
    finally:
        await client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=5)
    p.add_argument("--latency-samples", type=int, default=30)
    asyncio.run(main(p.parse_args()))
