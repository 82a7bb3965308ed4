"""The Kafka source: one consumer-group member per mapping that feeds each partition's
records, in order, through ``Engine.invoke`` (``PollerContext.invoke_function``), and
commits a partition's offset only once the records before it are done.

What it does is decided by ``pollers.kafka_rules`` (batches, retries, bisect, partial
batch responses, record age, throttle backoff); this module only reads, invokes and
commits. Its guarantees:

- **Order.** Each partition has one *lane* with one batch in flight, so its records
  reach the function in offset order. With ``parallelizationFactor: N`` a partition has
  N lanes, records go to a lane by their key (crc32 of the key; keyless records share
  lane 0), so the order holds per key, as Lambda does for Kinesis. A partition's commit
  point is the lowest offset any of its lanes still holds.
- **At least once.** The offset committed is the first record not done; anything
  after it is read again by the next owner of the partition. Commits leave the
  invocation path: one task commits, coalesced, every partition whose point moved, and
  a partition being given up commits what its lanes finished (bounded) first. When a
  poller stops (the router restarts, the mapping changes, a rebalance takes the
  partition) in the middle of a batch, that batch, and whatever its final commit could
  not record, are delivered again: those are the only redeliveries (a record is never
  skipped).
- **Concurrency.** No more invocations at once than ``ctx.max_concurrency()`` (the
  mapping's ``scalingConfig.maximumConcurrency`` and the function's own caps), and
  never more than the lanes. A throttled batch waits a backoff and is sent again
  without spending a retry; a mapping with no records makes no invocations.
- **Back-pressure, and a loop that never stalls on decoding.** Records are taken from
  the consumer at most ``_FETCH_CHUNK`` at a time, one partition at a time (those
  whose lanes hold the fewest first), and the loop is yielded between takes. A partition
  whose lanes hold ``_BUFFER_BATCHES`` batches (at least ``_BUFFER_MIN`` records) is
  paused at the consumer, once all aiokafka fetched of it is taken, until its lanes are
  half done. Why, from the Kafka bench: aiokafka fetches ~1 MB a partition and turns
  records into objects as they are taken; one ``getmany()`` took ~40,000 records, a
  50-60 ms stall in which no lane could invoke. And aiokafka sends no new fetch to a
  broker while any partition's fetched records there lie untaken (for its prefetch
  backoff, 100 ms), so a partition is not left half taken.

Metrics: batches (by the Engine's result), records delivered, failed records, the lag
(records in the log after the commit point) in all and per partition (``partition_lag``,
also given to ``ctx.metrics.partition_lag(topic, partition, n)`` when it has one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from lambdakube.models import KAFKA_SOURCE
from lambdakube_router import invocations
from lambdakube_router.pollers import kafka_event, kafka_rules, source
from lambdakube_router.pollers.batching import batch_wait
from lambdakube_router.pollers.filters import compile_criteria, matches_any
from lambdakube_router.pollers.kafka_rules import Expired, PartitionState, Settings
from lambdakube_router.pollers.source import PollerContext, SourceFailed

log = logging.getLogger(__name__)

#: Lambda's default batching window for Kafka when the mapping sets none.
DEFAULT_WINDOW_SECONDS = 0.5
#: A partition is paused at the consumer when its lanes hold this many batches ...
_BUFFER_BATCHES = 4
#: ... and at least this many records (enough for the lanes while aiokafka's next fetch
#: of the partition is on its way).
_BUFFER_MIN = 2000
#: The most records taken (decoded) from the consumer between two turns of the loop
#: (the bench at batch size 100: 100 ran ~10% faster than 500, 500 faster than 2000).
_FETCH_CHUNK = 100
#: How many of the partitions holding the fewest records are asked first, one by one
#: (each ask looks at every partition aiokafka holds: all of them would be quadratic).
_PROBED = 4
#: The longest a fetch waits for records (also how often lag is reported when idle).
_FETCH_WAIT_MS = 500
#: The longest the broker holds a fetch open for records (aiokafka's default: 500 ms).
#: aiokafka has one fetch in flight per broker, so a fetch of caught-up partitions held
#: open holds back the next fetch of the partitions that have records (the Kafka bench:
#: a 0.5 s stall whenever one partition caught up); held shorter, an idle mapping costs
#: a few more empty fetches a second.
_BROKER_WAIT_MS = 50
#: The longest a stopping poller waits to commit what its lanes finished.
_FINAL_COMMIT_SECONDS = 5.0
#: A failed commit is tried again after this long (also when nothing else moves).
_COMMIT_RETRY_SECONDS = 1.0
#: How often a waiting lane looks at a changed ``max_concurrency()``.
_SLOT_RECHECK_SECONDS = 1.0

_STARTING = {"LATEST": "latest", "TRIM_HORIZON": "earliest", "AT_TIMESTAMP": "earliest"}


class Slots:
    """At most ``limit()`` holders at once; ``limit`` may change while lanes wait."""

    def __init__(self, limit) -> None:
        self.limit = limit
        self.busy = 0
        self.peak = 0
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._cond:
            while self.busy >= self.limit():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), _SLOT_RECHECK_SECONDS)
            self.busy += 1
            self.peak = max(self.peak, self.busy)

    async def release(self) -> None:
        async with self._cond:
            self.busy -= 1
            self._cond.notify_all()


@dataclass
class Lane:
    """One ordered stream of a partition: its uncommitted records and its rule state."""

    pending: deque = field(default_factory=deque)
    state: PartitionState = field(default_factory=PartitionState)
    #: Monotonic time the oldest pending record arrived (the batching window's start).
    oldest_since: float | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


@dataclass
class Partition:
    tp: TopicPartition
    lanes: list[Lane]
    #: The offset after the last record read (every record before it is in a lane or done).
    fetched_end: int | None = None
    committed: int | None = None
    paused: bool = False

    def commit_point(self) -> int | None:
        heads = [lane.pending[0].offset for lane in self.lanes if lane.pending]
        return min(heads) if heads else self.fetched_end

    def buffered(self) -> int:
        return sum(len(lane.pending) for lane in self.lanes)


def settings_of(spec) -> Settings:
    age = spec.maximum_record_age_in_seconds
    retries = spec.maximum_retry_attempts
    return Settings(
        batch_size=spec.effective_batch_size,
        max_retry_attempts=-1 if retries is None else retries,
        max_record_age=None if age is None or age == -1 else float(age),
        bisect=spec.bisect_batch_on_function_error,
        report_item_failures=spec.report_batch_item_failures,
    )


def filter_view(r: Any) -> dict:
    """What ``filterCriteria`` sees of a record: Lambda's record with ``value`` decoded
    when it is JSON (else only the metadata and the base64 value can match)."""
    view = kafka_event.record_json(r)
    if r.value is not None:
        with contextlib.suppress(ValueError):
            view["value"] = json.loads(r.value)
    return view


class KafkaPoller:
    KIND = KAFKA_SOURCE

    def __init__(self, ctx: PollerContext) -> None:
        """Never raises (the manager builds pollers in its loop): a spec this poller
        cannot read is ``SourceFailed`` from ``run``, so the mapping goes ``Failed``."""
        spec = ctx.spec
        self.ctx = ctx
        self.invalid: str | None = None
        endpoints = spec.self_managed_event_source.endpoints if spec.self_managed_event_source else None
        if endpoints is None or not spec.topics:
            self.invalid = "a Kafka mapping needs selfManagedEventSource and topics"
        self.topic = spec.topics[0] if spec.topics else ""
        self.bootstrap = ",".join(endpoints.KAFKA_BOOTSTRAP_SERVERS) if endpoints is not None else ""
        cfg = spec.self_managed_kafka_event_source_config
        # Lambda's default group id is the mapping's UUID; a mapping's name is as unique here.
        self.group_id = cfg.consumer_group_id if cfg is not None else f"lambdakube-{ctx.namespace}-{ctx.name}"
        self.settings = settings_of(spec)
        window = spec.maximum_batching_window_in_seconds
        self.window = DEFAULT_WINDOW_SECONDS if window is None else float(window)
        self.lanes_per_partition = spec.parallelization_factor or 1
        criteria = spec.filter_criteria
        self.filters: list[dict] = []
        try:
            self.filters = compile_criteria([f.pattern for f in criteria.filters]) if criteria else []
        except ValueError as exc:
            self.invalid = f"filterCriteria: {exc}"
        self.slots = Slots(ctx.max_concurrency)
        self.partitions: dict[TopicPartition, Partition] = {}
        self.partition_lag: dict[int, int] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._commit_wake = asyncio.Event()

    # -- the consumer ------------------------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=_STARTING[self.ctx.spec.starting_position or "LATEST"],
            isolation_level="read_committed",
            fetch_max_wait_ms=_BROKER_WAIT_MS,
        )

    async def run(self) -> None:
        if self.invalid is not None:
            raise SourceFailed(self.invalid)
        consumer = self.consumer = self._consumer()
        committer: asyncio.Task | None = None
        try:
            await consumer.start()
            topics = await consumer.topics()
            if self.topic not in topics:
                raise RuntimeError(f"Kafka topic {self.topic!r} does not exist on {self.bootstrap}")
            consumer.subscribe([self.topic], listener=_Listener(self))
            self.ctx.status.started()
            self.ctx.metrics.poller_started()
            committer = asyncio.create_task(self._committer(), name=f"kafka commits {self.ctx.name}")
            while True:
                fetched = await self._take(consumer)
                for tp, records in fetched.items():
                    self._accept(tp, records)
                self._report_lag(consumer)
                self._raise_lane_failure(committer)
                await asyncio.sleep(0)  # the lanes run between takes
        finally:
            if committer is not None:
                committer.cancel()
            for tp in list(self.partitions):
                await self._drop(tp)
            self.ctx.metrics.poller_stopped()
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _accept(self, tp: TopicPartition, records: list) -> None:
        part = self.partitions.get(tp)
        if part is None:  # revoked between the fetch and now
            return
        if not records:
            return
        now = self.ctx.clock()
        part.fetched_end = records[-1].offset + 1
        if not self.filters and len(part.lanes) == 1:  # the common case, in one step
            lane = part.lanes[0]
            if not lane.pending:
                lane.oldest_since = now
            lane.pending.extend(records)
            lane.wake.set()
            return
        dropped = 0
        for r in records:
            if self.filters and not matches_any(self.filters, filter_view(r)):
                dropped += 1
                continue
            lane = part.lanes[self._lane_of(r)]
            if not lane.pending:
                lane.oldest_since = now
            lane.pending.append(r)
            lane.wake.set()
        if dropped:
            self.ctx.metrics.filtered(dropped)
            self._commit_soon()

    def _raise_lane_failure(self, committer: asyncio.Task) -> None:
        """A lane (or the committer) that died of a bug stops the poller (the manager
        restarts it, and the records after the last commit are read again), instead of
        a silent stall."""
        tasks = [(f"the lane of {part.tp}", lane.task) for part in self.partitions.values() for lane in part.lanes]
        for what, task in [*tasks, ("the committer", committer)]:
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{what} failed") from task.exception()

    def _lane_of(self, r: Any) -> int:
        if self.lanes_per_partition == 1 or r.key is None:
            return 0
        return zlib.crc32(r.key) % self.lanes_per_partition

    def _high_water(self) -> int:
        return max(_BUFFER_MIN, self.settings.batch_size * _BUFFER_BATCHES * self.lanes_per_partition)

    async def _take(self, consumer: AIOKafkaConsumer) -> dict:
        """The next records from the consumer (see Back-pressure above): at most
        ``_FETCH_CHUNK``, from one partition, without waiting: a full one first (it is
        paused once aiokafka holds nothing more of it), then of the few holding the
        fewest; else from any, whatever comes first within ``_FETCH_WAIT_MS``."""
        high = self._high_water()
        full: list[Partition] = []
        room: list[Partition] = []
        for held, _, part in sorted((p.buffered(), i, p) for i, p in enumerate(self.partitions.values())):
            if not part.paused:
                (full if held >= high else room).append(part)
        for part in full:
            fetched = await consumer.getmany(part.tp, timeout_ms=0, max_records=_FETCH_CHUNK)
            if fetched:
                return fetched
            consumer.pause(part.tp)
            part.paused = True
        for part in room[:_PROBED]:
            fetched = await consumer.getmany(part.tp, timeout_ms=0, max_records=_FETCH_CHUNK)
            if fetched:
                return fetched
        # Any partition, at once if one has records, else the first to get some (a
        # paused one gives nothing; one resumed meanwhile is in, which a list of
        # partitions made now would miss).
        return await consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=_FETCH_CHUNK)

    def _maybe_resume(self, part: Partition) -> None:
        """Resumed as soon as its lanes have room (the consumer's fetcher wakes at once):
        waiting for the fetch loop's next turn would stall a drained partition."""
        if part.paused and self.consumer is not None and part.buffered() < self._high_water() // 2:
            self.consumer.resume(part.tp)
            part.paused = False

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        total = 0
        per_partition = getattr(self.ctx.metrics, "partition_lag", None)
        for tp, part in self.partitions.items():
            high = consumer.highwater(tp)
            point = part.commit_point()
            if point is None:
                point = part.committed
            if high is None or point is None:
                continue
            lag = max(0, high - point)
            self.partition_lag[tp.partition] = lag
            total += lag
            if per_partition is not None:
                per_partition(tp.topic, tp.partition, lag)
        self.ctx.status.lag(total)
        self.ctx.metrics.lag(total)

    # -- assignment --------------------------------------------------------------------------

    async def _assigned(self, tps) -> None:
        consumer = self.consumer
        assert consumer is not None
        for tp in tps:
            if tp in self.partitions:
                continue
            part = Partition(tp, [Lane() for _ in range(self.lanes_per_partition)])
            part.committed = await consumer.committed(tp)
            if part.committed is None and self.ctx.spec.starting_position == "AT_TIMESTAMP":
                await self._seek_to_timestamp(consumer, tp)
            self.partitions[tp] = part
            for i, lane in enumerate(part.lanes):
                lane.task = asyncio.create_task(self._work(part, lane), name=f"kafka {tp.topic}-{tp.partition}/{i}")

    async def _seek_to_timestamp(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        text = self.ctx.spec.starting_position_timestamp or ""
        ts_ms = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        found = await consumer.offsets_for_times({tp: ts_ms})
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)

    async def _drop(self, tp: TopicPartition) -> None:
        """The partition is no longer ours: its lanes stop (an in-flight batch is
        abandoned uncommitted, so the next owner delivers it again) and what they
        finished is committed (best effort, bounded: else it is delivered again too)."""
        part = self.partitions.get(tp)
        if part is None:
            return
        tasks = [lane.task for lane in part.lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commit_now([part]), _FINAL_COMMIT_SECONDS)
        self.partitions.pop(tp, None)
        self.partition_lag.pop(tp.partition, None)

    # -- a lane ------------------------------------------------------------------------------

    async def _work(self, part: Partition, lane: Lane) -> None:
        ctx = self.ctx
        while True:
            if not lane.pending:
                lane.wake.clear()
                lane.oldest_since = None
                await lane.wake.wait()
                continue
            now = ctx.clock()
            if lane.state.not_before > now:
                await asyncio.sleep(lane.state.not_before - now)
                continue
            wait_until = batch_wait(
                available=len(lane.pending),
                batch_size=self.settings.batch_size,
                oldest_since=lane.oldest_since,
                window=self.window,
                now=now,
            )
            if wait_until is not None:
                lane.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), max(0.0, wait_until - now))
                continue
            batch = kafka_rules.next_batch(lane.pending, lane.state, self.settings, ctx.wall_clock())
            if batch is None:
                continue
            if isinstance(batch, Expired):
                step = kafka_rules.after_expired(lane.state, batch)
                await self._apply(part, lane, step, invocations=0)
            else:
                await self._invoke(part, lane, batch.records)

    async def _invoke(self, part: Partition, lane: Lane, records: list) -> None:
        ctx = self.ctx
        payload = kafka_event.event_bytes(records, self.bootstrap)
        await self.slots.acquire()
        try:
            result = await ctx.invoke_function(payload)
        finally:
            await self.slots.release()
        ctx.metrics.batch(result.result)
        outcome = kafka_rules.classify(result.result, result.status)
        first_failed = None
        if outcome == kafka_rules.SUCCESS and self.settings.report_item_failures:
            first_failed = kafka_rules.first_failed_offset(result.body, [r.offset for r in records])
        if outcome in (kafka_rules.SUCCESS, kafka_rules.FUNCTION_ERROR):
            ctx.metrics.records(len(records))
        retry_after = result.throttle.retry_after_seconds if result.throttle is not None else None
        step = kafka_rules.after_invoke(
            lane.state,
            records,
            outcome,
            self.settings,
            ctx.clock(),
            first_failed=first_failed,
            retry_after=retry_after,
        )
        if outcome == kafka_rules.SUCCESS and first_failed is None:
            ctx.status.processed(source.OK)
        elif outcome == kafka_rules.THROTTLED:
            ctx.status.processed(source.THROTTLED)
        elif result.result == invocations.NOT_FOUND:
            ctx.status.processed(source.FUNCTION_NOT_FOUND)
        elif outcome == kafka_rules.SUCCESS and first_failed != kafka_rules.WHOLE_BATCH:
            assert first_failed is not None
            ctx.metrics.failures(sum(1 for r in records if r.offset >= first_failed))
            ctx.status.processed(source.ITEM_FAILURES)
        else:
            if outcome != kafka_rules.SYSTEM_ERROR:
                ctx.metrics.failures(len(records))
            ctx.status.processed(source.FUNCTION_FAILED)
        await self._apply(part, lane, step, invocations=lane.state.attempts + 1, result=result)

    async def _apply(self, part: Partition, lane: Lane, step: kafka_rules.Step, *, invocations: int, result=None):
        """Hand failed records to onFailure (before committing past them: a failed send
        leaves them uncommitted, to be sent again), then move the lane on."""
        if step.on_failure:
            record = kafka_event.failure_record(
                step.on_failure,
                step.condition or kafka_rules.RETRIES_EXHAUSTED,
                namespace=self.ctx.namespace,
                function=self.ctx.function,
                qualifier=self.ctx.qualifier,
                bootstrap_servers=self.bootstrap,
                request_id=str(uuid.uuid4()),
                invocations=invocations,
                now=self.ctx.wall_clock(),
                status=result.status if result is not None else None,
                function_error=result.headers.get("X-Amz-Function-Error") if result is not None else None,
                executed_version=result.headers.get("X-Amz-Executed-Version") if result is not None else None,
            )
            if not await self.ctx.send_on_failure(record):
                log.warning(
                    "%s/%s: %d Kafka records of %s-%d (offsets %d..%d) failed (%s) with no onFailure destination;"
                    " dropped",
                    self.ctx.namespace,
                    self.ctx.name,
                    len(step.on_failure),
                    part.tp.topic,
                    part.tp.partition,
                    step.on_failure[0].offset,
                    step.on_failure[-1].offset,
                    step.condition,
                )
            if step.condition == kafka_rules.RECORD_AGE_EXCEEDED:
                self.ctx.metrics.failures(len(step.on_failure))
        lane.state = step.state
        if step.commit is not None:
            while lane.pending and lane.pending[0].offset < step.commit:
                lane.pending.popleft()
            lane.oldest_since = self.ctx.clock() if lane.pending else None
            self._maybe_resume(part)
            self._commit_soon()

    def _commit_soon(self) -> None:
        self._commit_wake.set()

    async def _committer(self) -> None:
        """Commits what the lanes finished, coalesced: one request for every partition
        whose commit point moved since the last one. A lane never waits for a commit
        (the broker's round trip stays off the invocation path); a stop before the
        commit leaves those records to be delivered again (at least once)."""
        while True:
            await self._commit_wake.wait()
            self._commit_wake.clear()
            await self._commit_now()

    async def _commit_now(self, parts: list[Partition] | None = None) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        moved = {}
        for part in self.partitions.values() if parts is None else parts:
            tp = part.tp
            point = part.commit_point()
            if point is not None and point != part.committed:
                moved[tp] = (part, point)
        if not moved:
            return
        try:
            await consumer.commit({tp: point for tp, (_, point) in moved.items()})
        except KafkaError as exc:
            # A rebalance is taking partitions away: their next owner reads from the last
            # commit, so these records are delivered again (at least once).
            log.warning("%s/%s: commit failed: %s", self.ctx.namespace, self.ctx.name, exc)
            asyncio.get_running_loop().call_later(_COMMIT_RETRY_SECONDS, self._commit_wake.set)
            return
        for part, point in moved.values():
            part.committed = max(point, part.committed or 0)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, poller: KafkaPoller) -> None:
        self.poller = poller

    async def on_partitions_revoked(self, revoked) -> None:
        for tp in revoked:
            await self.poller._drop(tp)

    async def on_partitions_assigned(self, assigned) -> None:
        await self.poller._assigned(assigned)
