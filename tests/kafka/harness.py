"""A Kafka mapping's poller on a real broker, invoking through a real router's Engine.

The mapping manager is the ESM branch's; here the poller gets its ``PollerContext``
straight (as the manager builds it): ``invoke`` is the router's ``Engine.invoke``, the
status and metrics are recorded (``Recorder``), and ``send_on_failure`` keeps the
records it is given, as the manager's destination would.

The handler (``HANDLER``) writes one JSON line per invocation to ``$SEEN``: what it saw
(partition keys, offsets, values) and how many invocations were inside it at once
(``peak``: marker files in ``$INFLIGHT``, each held ``$DWELL`` seconds on either side of
the count, so overlapping invocations see each other). Record values steer it:

- ``poison``: raises, every time;
- ``flaky``: fails the first time its offset is seen (a partial batch response naming
  it with ``$PARTIAL``, else an exception), then succeeds;
- ``hold``: waits while the file ``$HOLD`` exists (bounded, 60 s);
  ``hold-retry``: the same, but only when its offset was seen before.

A payload without ``records`` (``{"block": true}``) waits on ``$HOLD`` too: a plain
invocation that holds the function's one reserved slot.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lambdakube.models import EventSourceMappingSpec
from lambdakube_router import keys
from lambdakube_router.pollers.kafka import KafkaPoller
from lambdakube_router.pollers.source import PollerContext
from tests.router.conftest import eventually as router_eventually

HANDLER = """
import base64, json, os, time

SEEN = os.environ["SEEN"]
STATE = os.environ["STATE"]
INFLIGHT = os.environ.get("INFLIGHT")
HOLD = os.environ.get("HOLD", "")
DWELL = float(os.environ.get("DWELL", "0"))


def log(entry):
    with open(SEEN, "a") as f:
        f.write(json.dumps(entry) + "\\n")


def hold():
    deadline = time.monotonic() + 60
    while HOLD and os.path.exists(HOLD) and time.monotonic() < deadline:
        time.sleep(0.01)


def handler(event, context):
    if "records" not in event:
        log({"block": True})
        hold()
        return {"blocked": True}
    recs = [r for rs in event["records"].values() for r in rs]
    values = [base64.b64decode(r["value"]).decode() for r in recs]
    seen_before = []
    for r in recs:
        mark = os.path.join(STATE, "seen-%s-%s-%s" % (r["topic"], r["partition"], r["offset"]))
        seen_before.append(os.path.exists(mark))
        open(mark, "w").close()
    peak, mine = 0, None
    if INFLIGHT:
        mine = os.path.join(INFLIGHT, context.aws_request_id)
        open(mine, "w").close()
        time.sleep(DWELL)
        peak = len(os.listdir(INFLIGHT))
    try:
        log({"keys": list(event["records"]), "offsets": [r["offset"] for r in recs], "values": values,
             "peak": peak, "eventSource": event["eventSource"], "bootstrapServers": event["bootstrapServers"],
             "first": recs[0]})
        for v, before in zip(values, seen_before):
            if v == "hold" or (v == "hold-retry" and before):
                hold()
        if "poison" in values:
            raise ValueError("poison record")
        flaky = [r for r, v, before in zip(recs, values, seen_before) if v == "flaky" and not before]
        if flaky and os.environ.get("PARTIAL"):
            return {"batchItemFailures": [{"itemIdentifier": str(r["offset"])} for r in flaky]}
        if flaky:
            raise ValueError("flaky record")
        return {"batchItemFailures": []} if os.environ.get("PARTIAL") else {"ok": len(recs)}
    finally:
        if mine:
            time.sleep(DWELL)
            os.remove(mine)
"""


def handler_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The handler's variables, with its files under ``tmp`` (made here)."""
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    (tmp / "inflight").mkdir(exist_ok=True)
    env = {"SEEN": str(tmp / "seen.jsonl"), "STATE": str(tmp / "state"), "INFLIGHT": str(tmp / "inflight")}
    env.update(extra)
    return env


def seen(tmp: Path) -> list[dict]:
    path = tmp / "seen.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def batches(tmp: Path) -> list[dict]:
    return [e for e in seen(tmp) if "offsets" in e]


@dataclass
class Recorder:
    """The poller's StatusSink and PollerMetrics, kept for the test to read."""

    started_count: int = 0
    lags: list[int] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    batch_results: Counter = field(default_factory=Counter)
    record_count: int = 0
    failure_count: int = 0
    filtered_count: int = 0
    partition_lags: dict[tuple[str, int], int] = field(default_factory=dict)
    running: int = 0

    # StatusSink
    def started(self) -> None:
        self.started_count += 1

    def lag(self, records: int) -> None:
        self.lags.append(records)

    def processed(self, result: str) -> None:
        self.results.append(result)

    # PollerMetrics
    def batch(self, result: str) -> None:
        self.batch_results[result] += 1

    def records(self, n: int) -> None:
        self.record_count += n

    def failures(self, n: int) -> None:
        self.failure_count += n

    def filtered(self, n: int) -> None:
        self.filtered_count += n

    def partition_lag(self, topic: str, partition: int, n: int) -> None:
        self.partition_lags[(topic, partition)] = n

    def poller_started(self) -> None:
        self.running += 1

    def poller_stopped(self) -> None:
        self.running -= 1


class _Metrics:
    """The PollerMetrics half of a Recorder (``lag`` means the gauge here)."""

    def __init__(self, rec: Recorder) -> None:
        self._rec = rec

    def __getattr__(self, name):
        if name == "lag":
            return lambda n: None
        return getattr(self._rec, name)


def mapping_spec(bootstrap: str, topic: str, **fields) -> EventSourceMappingSpec:
    doc = {
        "functionName": "fn",
        "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [bootstrap]}},
        "topics": [topic],
        "startingPosition": "TRIM_HORIZON",
        "maximumBatchingWindowInSeconds": 0,
    }
    doc.update(fields)
    return EventSourceMappingSpec.model_validate(doc)


@dataclass
class Mapping:
    poller: KafkaPoller
    task: asyncio.Task
    recorder: Recorder
    failed: list[dict]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def crashed(self) -> BaseException | None:
        return self.task.exception() if self.task.done() and not self.task.cancelled() else None


def start_mapping(
    router,
    spec: EventSourceMappingSpec,
    *,
    max_concurrency: Callable[[], int] = lambda: 100,
    wall_clock: Callable[[], float] = time.time,
    name: str = "m1",
    recorder: Recorder | None = None,
) -> Mapping:
    engine = router.app[keys.ENGINE]
    rec = recorder or Recorder()
    failed: list[dict] = []

    async def send_on_failure(record: dict) -> bool:
        failed.append(record)
        return True

    ctx = PollerContext(
        namespace="default",
        name=name,
        spec=spec,
        invoke=engine.invoke,
        clock=time.monotonic,
        wall_clock=wall_clock,
        status=rec,
        metrics=_Metrics(rec),  # type: ignore[arg-type]
        max_concurrency=max_concurrency,
        send_on_failure=send_on_failure,
    )
    poller = KafkaPoller(ctx)
    task = asyncio.create_task(poller.run())
    return Mapping(poller, task, rec, failed)


async def produce(bootstrap: str, topic: str, items: list) -> None:
    """``items``: (partition, key, value) or (partition, key, value, timestamp_ms); sent
    in order and acknowledged."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        for partition, key, value, *stamp in items:
            await producer.send_and_wait(
                topic,
                value.encode(),
                key=key.encode() if key is not None else None,
                partition=partition,
                timestamp_ms=stamp[0] if stamp else None,
                headers=[("source", b"test")],
            )
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    """The group's committed offset as the broker holds it (not the poller's view)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from aiokafka.errors import GroupCoordinatorNotAvailableError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # a fresh broker makes its offsets topic first
        return None
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic, partition))
    return None if meta is None or meta.offset < 0 else meta.offset


async def wait_committed(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    """Until the broker holds ``offset`` as the group's commit point of the partition."""

    async def reached() -> bool:
        return await committed(bootstrap, group, topic, partition) == offset

    await eventually(reached, what=f"{topic}-{partition} committed at {offset}")


async def eventually(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """The router tests' bounded poll, with the broker's longer default."""
    return await router_eventually(predicate, timeout, interval, what)
