"""Records per second through a Kafka event source mapping vs a plain aiokafka consumer.

    python bench/kafka_mapping.py [--partitions 4] [--records-1 2000] [--records-10 20000]
                                  [--records-100 200000] [--baseline-records 200000] [--max-seconds 120]

What it does, in one run, all on 127.0.0.1 (``make bench-kafka``; the broker is
``make kafka``'s, started here in a tmp dir and stopped by its PID):

1. a plain aiokafka consumer (the baseline): a fresh group reads a preloaded topic from
   the start, ``getmany`` + ``commit`` after each, until it has every record;
2. for batch sizes 1, 10 and 100: the router's Kafka poller (``pollers.kafka``, the code
   a mapping runs, with its ``PollerContext`` built here as the mapping manager builds
   it) reads its own preloaded topic with a fresh group and invokes a trivial Python
   handler through the router's Engine (local backend: real runtime processes, warmed
   before the clock starts), at most one batch per partition in flight, until every
   partition's commit point is at its end.

Both clocks run from "start consuming" to "everything committed": the group join, the
fetches and the commits are in both. (From the first record in hand instead, the plain
consumer would time draining what aiokafka prefetched during its join.) Rates are printed as records/s and as a ratio of
the baseline's; the goal (issue 18) is at least 0.5 at batch size 100. Every phase is
bounded by its record count and ``--max-seconds``; one that runs out prints what it did.

On a shared machine wall time says more about the neighbours than about the code, so
each row also has records per CPU-second: this process (the poller, the router or the
plain consumer) plus the runtime processes it started, from ``/proc`` (the broker's JVM
is left out of both sides), and that ratio too. The counts are large enough that the
group join (a few hundred ms on both sides) does not decide the ratio.

Where the mapping's time goes (/proc, cProfile and a trace of every fetch and invocation
on the 2-core dev machine, batch size 100, 4 partitions, uvloop): the plain consumer
costs ~1.3 us of CPU a record; the mapping ~3.3 us in the router process (aiokafka's
decode ~1.3 us, as the baseline's; Lambda's event as JSON with base64 key and value
~0.5 us, ``kafka_event.event_bytes``; the Engine's invoke path ~1 us, i.e. ~0.1 ms a
batch), ~3 us in the runtime processes (about half of it ``json.loads`` of the 25 KB
event) and 1.5-2 us in the broker, whose fetches are smaller than the baseline's. With
4 partitions (4 batches in flight) the router is the serial step, at ~70% busy.
Before the poller took records in chunks, one ``getmany()`` decoded ~40,000 records in a
50-60 ms stall, and a caught-up partition's fetch, held open 500 ms by the broker, held
back every other partition's next fetch (see ``pollers.kafka``): runs took 1.0-1.7 s
where they now take 0.8-1.0 s.

Both sides run on uvloop, as the router does (``--no-uvloop``: asyncio's own loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.kafka.broker: the one place that starts the broker

import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from lambdakube.models import EventSourceMappingSpec  # noqa: E402
from lambdakube_router import keys  # noqa: E402
from lambdakube_router.app import RouterConfig, init_app  # noqa: E402
from lambdakube_router.pollers.kafka import KafkaPoller  # noqa: E402
from lambdakube_router.pollers.source import PollerContext  # noqa: E402
from lambdakube_router.snapshot import parse_documents  # noqa: E402
from router_overhead import children, cpu_seconds  # noqa: E402
from tests.kafka.broker import running  # noqa: E402

HANDLER = "def handler(event, context):\n    return None\n"
VALUE = b'{"order": 12345, "item": "widget", "quantity": 3, "note": "a small JSON record"}'


def cpu_now(exclude: int) -> float:
    """CPU seconds of this process and its children (the runtimes), but ``exclude``."""
    me = os.getpid()
    return time.process_time() + sum(cpu_seconds(c) for c in children(me) if c != exclude)


class _Quiet:
    """Status and metrics the bench does not read."""

    def __getattr__(self, name):
        return lambda *a, **k: None


async def make_topic(bootstrap: str, partitions: int, records: int) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144, acks=1)
    await producer.start()
    try:
        futures = [await producer.send(name, VALUE, key=b"k%d" % i, partition=i % partitions) for i in range(records)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return name


async def plain_consumer(
    bootstrap: str, topic: str, records: int, max_seconds: float, broker_pid: int
) -> tuple[int, float, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"plain-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    start, cpu = time.perf_counter(), cpu_now(broker_pid)
    await consumer.start()
    got = 0
    try:
        while got < records and time.perf_counter() - start < max_seconds:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                got += len(recs)
                for r in recs:  # a consumer looks at what it reads
                    _ = r.value
            if batch:
                await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
    finally:
        elapsed, cpu = time.perf_counter() - start, cpu_now(broker_pid) - cpu
        await consumer.stop()
    return got, elapsed, cpu


async def through_mapping(
    app,
    bootstrap: str,
    topic: str,
    partitions: int,
    records: int,
    batch_size: int,
    max_seconds: float,
    broker_pid: int,
) -> tuple[int, float, float, int]:
    engine = app[keys.ENGINE]
    spec = EventSourceMappingSpec.model_validate(
        {
            "functionName": "fn",
            "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [bootstrap]}},
            "topics": [topic],
            "startingPosition": "TRIM_HORIZON",
            "batchSize": batch_size,
            "maximumBatchingWindowInSeconds": 0,
            "selfManagedKafkaEventSourceConfig": {"consumerGroupId": f"mapping-{uuid.uuid4().hex[:8]}"},
        }
    )

    async def no_destination(record: dict) -> bool:
        return False

    ctx = PollerContext(
        namespace="default",
        name="bench",
        spec=spec,
        invoke=engine.invoke,
        clock=time.monotonic,
        wall_clock=time.time,
        status=_Quiet(),
        metrics=_Quiet(),
        max_concurrency=lambda: partitions,
        send_on_failure=no_destination,
    )
    poller = KafkaPoller(ctx)
    per_partition = records // partitions

    def done() -> int:
        return sum(p.committed or 0 for p in poller.partitions.values())

    start, cpu = time.perf_counter(), cpu_now(broker_pid)
    task = asyncio.create_task(poller.run())
    try:
        while done() < per_partition * partitions and time.perf_counter() - start < max_seconds:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - start, cpu_now(broker_pid) - cpu
        return done(), elapsed, cpu, poller.slots.peak
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def start_router(tmp: Path, partitions: int):
    doc = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "fn"},
        "spec": {"handler": "index.handler", "code": {"inline": {"source": textwrap.dedent(HANDLER)}}},
    }
    snap, errors = parse_documents(yaml.safe_load_all(yaml.safe_dump_all([doc])), "bench", "default")
    assert not errors, errors
    app = await init_app(RouterConfig(snapshot=snap, backend="local", state_dir=tmp / "state", port=0))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    engine = app[keys.ENGINE]
    # Warm one environment per partition: cold starts are not what this measures.
    results = await asyncio.gather(*(engine.invoke("default", "fn", b"{}") for _ in range(partitions)))
    assert all(r.result == "success" for r in results), [r.body for r in results]
    return app, runner


async def main(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    with running(tmp / "kafka") as broker:
        bootstrap = broker.bootstrap
        print(f"broker {bootstrap} (Kafka, KRaft, one node); {args.partitions} partitions", flush=True)
        app, runner = await start_router(tmp, args.partitions)
        try:
            topic = await make_topic(bootstrap, args.partitions, args.baseline_records)
            broker_pid = broker.proc.pid if broker.proc else -1
            got, secs, cpu = await plain_consumer(bootstrap, topic, args.baseline_records, args.max_seconds, broker_pid)
            base, base_cpu = got / secs, got / max(cpu, 1e-6)
            print(
                f"{'plain aiokafka consumer':<26} {got:>6} records in {secs:6.2f} s {base:>8.0f} rec/s 1.00"
                f"   {base_cpu:>8.0f} rec/CPU-s 1.00"
            )
            ok = True
            for batch_size, records in ((1, args.records_1), (10, args.records_10), (100, args.records_100)):
                topic = await make_topic(bootstrap, args.partitions, records)
                done, secs, cpu, peak = await through_mapping(
                    app, bootstrap, topic, args.partitions, records, batch_size, args.max_seconds, broker_pid
                )
                rate, rate_cpu = done / secs, done / max(cpu, 1e-6)
                note = "" if done >= records - records % args.partitions else f"  (ran out of time: {done} done)"
                print(
                    f"{f'mapping, batch size {batch_size}':<26} {done:>6} records in {secs:6.2f} s {rate:>8.0f} rec/s"
                    f" {rate / base:.2f}   {rate_cpu:>8.0f} rec/CPU-s {rate_cpu / base_cpu:.2f}"
                    f"   (at most {peak} invocations at once){note}",
                    flush=True,
                )
                if batch_size == 100:
                    ok = rate / base >= 0.5
            print(f"goal: batch size 100 at >= 0.50 of the plain consumer's records/s: {'met' if ok else 'NOT met'}")
        finally:
            await runner.cleanup()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--records-1", type=int, default=2000)
    p.add_argument("--records-10", type=int, default=20000)
    p.add_argument("--records-100", type=int, default=200000)
    p.add_argument("--baseline-records", type=int, default=200000)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop (the router runs on uvloop)")
    args = p.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.install()  # both sides on the loop the router runs with
    sys.exit(asyncio.run(main(args)))
