"""The queue source: this router's durable queues, polled with SQS semantics.

The rules are pure (``queue_rules``: each message's fate; ``batching``: the window and
partial batch responses; ``filters``); this is their driver. One supervisor per
mapping looks at the queue (``AsyncStore.queue_stats``) and runs as many workers as
the backlog needs (``queue_rules.pollers_wanted``), never more than
``ctx.max_concurrency()`` (``maximumConcurrency`` and the function's own cap). A worker
receives a batch, invokes, settles, and goes on while full batches wait; it ends at an
empty or short receive, so an idle mapping has no worker (the pollers gauge is 0).

No busy polling: the supervisor sleeps until a message is written to the queue
(``AsyncStore.subscribe``: SendMessage, an async destination, a release), a worker
ends, or a timer: the next invisible message's return, a batching window's end, a
throttle's pause.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import uuid

from lambdakube.backoff import Backoff
from lambdakube.formats import queue_arn
from lambdakube.models import QUEUE_SOURCE
from lambdakube_router.asyncq.store import NewEvent, QueueMessage, ReceivedMessage
from lambdakube_router.invocations import SUCCESS
from lambdakube_router.pollers import queue_rules, source
from lambdakube_router.pollers.batching import batch_item_failures, batch_wait
from lambdakube_router.pollers.destinations import failure_record, writes_for
from lambdakube_router.pollers.filters import FilterError, compile_criteria, matches_any

log = logging.getLogger(__name__)

#: The pause after a throttled batch, growing while throttles repeat.
THROTTLE_BACKOFF = Backoff(0.05, 2.0)
#: Who SQS says sent a message (``SenderId``): this router.
SENDER_ID = "lambdakube"


def sqs_record(m: ReceivedMessage, *, namespace: str, queue: str, region: str) -> dict:
    """Lambda's SQS event record of a received message."""
    body = m.body.decode("utf-8", errors="replace")
    return {
        "messageId": m.message_id,
        "receiptHandle": base64.b64encode(f"{namespace}/{queue}/{m.receipt_handle}".encode()).decode(),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(m.receive_count),
            "SentTimestamp": str(int(m.created_at * 1000)),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": str(int(m.first_receive_at * 1000)),
        },
        "messageAttributes": json.loads(m.attributes) if m.attributes else {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(namespace, queue),
        "awsRegion": region,
    }


def filter_view(record: dict) -> dict:
    """The record as filter patterns see it: ``body`` parsed when it is JSON (Lambda's
    rule; a plain-text body is matched as a string)."""
    try:
        body = json.loads(record["body"])
    except ValueError:
        return record
    return {**record, "body": body}


class QueuePoller:
    KIND = QUEUE_SOURCE

    def __init__(self, ctx: source.PollerContext) -> None:
        self.ctx = ctx
        spec = ctx.spec
        assert spec.queue is not None, "a queue poller reads a queue mapping"
        self.queue = spec.queue.name
        self.visibility = float(spec.queue.visibility_timeout_seconds)
        self.batch_size = spec.effective_batch_size
        self.window = spec.batching_window_seconds
        self.workers: set[asyncio.Task] = set()
        #: Wall second before which no batch is received (after a throttle).
        self.hold_until = 0.0
        #: The last throttle pause (0: the last batch was not throttled).
        self._pause = 0.0
        self._patterns: list[dict] = []
        self._filter_error: str | None = None
        if spec.filter_criteria is not None:
            try:
                self._patterns = compile_criteria([f.pattern for f in spec.filter_criteria.filters])
            except FilterError as exc:
                self._filter_error = str(exc)

    async def run(self) -> None:
        ctx = self.ctx
        if self._filter_error is not None:
            raise source.SourceFailed(f"filterCriteria: {self._filter_error}")
        store = ctx.store
        if store is None:
            raise source.SourceFailed("this router has no durable store: queue sources need one")
        signal = store.subscribe(ctx.namespace, self.queue)
        ctx.status.started()
        try:
            while True:
                signal.clear()
                wake_at = await self._plan()
                waits: list[asyncio.Future] = [asyncio.ensure_future(signal.wait()), *self.workers]
                timeout = None if wake_at is None else max(0.0, wake_at - ctx.wall_clock())
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waits[0].cancel()
                for task in done:
                    if task in self.workers:
                        self.workers.discard(task)
                        if not task.cancelled() and task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
        finally:
            for task in self.workers:
                task.cancel()
            for task in list(self.workers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.workers.clear()
            store.unsubscribe(ctx.namespace, self.queue, signal)

    async def _plan(self) -> float | None:
        """Start the workers the backlog needs; the wall time to look again (None: only
        a write or a worker's end)."""
        ctx = self.ctx
        now = ctx.wall_clock()
        stats = await ctx.store.queue_stats(ctx.namespace, self.queue, now)
        ctx.status.lag(stats.visible)
        ctx.metrics.lag(stats.visible)
        wake_at = stats.next_visible_at
        if stats.visible and now < self.hold_until:
            return _earliest(wake_at, self.hold_until)
        wait = batch_wait(
            available=stats.visible,
            batch_size=self.batch_size,
            oldest_since=stats.oldest_visible_since,
            window=self.window,
            now=now,
        )
        if wait is not None:
            return _earliest(wake_at, wait)
        wanted = queue_rules.pollers_wanted(
            visible=stats.visible, batch_size=self.batch_size, cap=ctx.max_concurrency()
        )
        for _ in range(wanted - len(self.workers)):
            task = asyncio.get_running_loop().create_task(self._worker())
            self.workers.add(task)
        return wake_at

    async def _worker(self) -> None:
        ctx = self.ctx
        ctx.metrics.poller_started()
        try:
            while len(self.workers) <= ctx.max_concurrency() and ctx.wall_clock() >= self.hold_until:
                now = ctx.wall_clock()
                batch = await ctx.store.receive(
                    ctx.namespace, self.queue, now=now, limit=self.batch_size, visibility=self.visibility
                )
                if not batch:
                    return
                await self._deliver(batch)
                if len(batch) < self.batch_size or self.window > 0:
                    return  # the queue is draining, or the window decides: the supervisor looks again
        finally:
            ctx.metrics.poller_stopped()

    async def _deliver(self, batch: list[ReceivedMessage]) -> None:
        ctx, spec = self.ctx, self.ctx.spec
        now = ctx.wall_clock()
        fresh, old = queue_rules.expired_on_receive(batch, max_age=spec.maximum_record_age_in_seconds, now=now)
        for m in old:
            await self._to_failure(m, "RecordAgeExceeded", None)
        records = {
            m.message_id: sqs_record(m, namespace=ctx.namespace, queue=self.queue, region=ctx.region) for m in fresh
        }
        if self._patterns:
            dropped = [m for m in fresh if not matches_any(self._patterns, filter_view(records[m.message_id]))]
            if dropped:
                await ctx.store.delete_received([m.handle for m in dropped])
                ctx.metrics.filtered(len(dropped))
                fresh = [m for m in fresh if m not in dropped]
        if not fresh:
            return
        payload = json.dumps({"Records": [records[m.message_id] for m in fresh]}, separators=(",", ":")).encode()
        result = await ctx.invoke_function(payload)
        ctx.metrics.batch(result.result)
        failures = None
        if spec.report_batch_item_failures and result.result == SUCCESS:
            failures = batch_item_failures(result.body, [m.message_id for m in fresh])
        now = ctx.wall_clock()
        delay = THROTTLE_BACKOFF.next(self._pause)
        if result.throttle is not None:
            delay = min(delay, float(result.throttle.retry_after_seconds))
        decided = queue_rules.settle(
            fresh,
            result=result.result,
            failures=failures,
            max_retries=spec.maximum_retry_attempts,
            max_age=spec.maximum_record_age_in_seconds,
            now=now,
            retry_at=now + delay,
        )
        if decided.release:
            self._pause = delay
            self.hold_until = decided.retry_at or now
            await ctx.store.release(
                ctx.namespace, self.queue, [m.handle for m in decided.release], visible_at=self.hold_until, uncount=True
            )
            ctx.status.processed(decided.result)
            return
        self._pause = 0.0
        ctx.metrics.records(len(fresh))
        if decided.delete:
            await ctx.store.delete_received([m.handle for m in decided.delete])
        failed = len(decided.keep) + len(decided.to_failure)
        if failed:
            ctx.metrics.failures(failed)
        for m in decided.to_failure:
            await self._to_failure(m, decided.reasons[m.message_id], result, records.get(m.message_id))
        ctx.status.processed(decided.result)

    async def _to_failure(self, m: ReceivedMessage, condition: str, result, record: dict | None = None) -> None:
        """Send a spent message to ``onFailure`` and delete it, in one transaction."""
        ctx = self.ctx
        spec = ctx.spec
        destination = spec.on_failure
        if record is None:
            record = sqs_record(m, namespace=ctx.namespace, queue=self.queue, region=ctx.region)
        messages: list[QueueMessage] = []
        events: list[NewEvent] = []
        if destination is not None:
            body = failure_record(
                namespace=ctx.namespace,
                function=spec.function,
                qualifier=spec.qualifier,
                condition=condition,
                invocations=m.receive_count,
                payload={"Records": [record]},
                now=ctx.wall_clock(),
                request_id=str(uuid.uuid4()),
                status=result.status if result is not None else None,
                function_error=result.headers.get("X-Amz-Function-Error") if result is not None else None,
                executed_version=result.headers.get("X-Amz-Executed-Version") if result is not None else None,
            )
            messages, events = writes_for(
                destination, namespace=ctx.namespace, record=body, message_id=m.message_id, now=ctx.wall_clock()
            )
        else:
            log.warning(
                "%s/%s: message %s of queue %s is dropped (%s) with no destinationConfig.onFailure",
                ctx.namespace,
                ctx.name,
                m.message_id,
                self.queue,
                condition,
            )
        if await ctx.store.move_received(m.handle, messages=messages, events=events) and events:
            ctx.wake_async()
        if result is None:
            ctx.metrics.failures(1)


def _earliest(a: float | None, b: float | None) -> float | None:
    candidates = [t for t in (a, b) if t is not None]
    return min(candidates) if candidates else None
