"""Delivers stored async events through the same path as synchronous invocations.

Why a lease column instead of an in-memory "in flight" set alone: the query for due
events and the "next wake-up" time then never see events being delivered, so the loop
cannot spin on them, and a router that crashes mid-delivery leaves leases that the next
router (same state dir) voids on open: the event is delivered again (at-least-once),
never dropped. A lease also ends by time (``policy.lease_seconds`` of the function's
timeout): a delivery whose outcome could not be written (a full disk) keeps retrying the
write with backoff while its lease lasts, then gives the event up to a later pass.

While the store cannot write, each pass first ``probe``s it with a write as large as the
largest event; the first that succeeds makes the router ready again and the events
proceed, with no restart.

The loop sleeps until the earliest ``next_attempt_at`` or until ``notify()`` (new event,
a delivery finished); the wake event is cleared *before* querying, so a notification that
races with the query is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from lambdakube.formats import function_arn, rfc3339_millis
from lambdakube.models import AsyncConfig, Destination
from lambdakube_router.asyncq import policy
from lambdakube_router.invocation_records import invocation_record
from lambdakube_router.asyncq.store import AsyncStore, NewEvent, QueueMessage, StoredEvent, StoreUnavailable
from lambdakube_router.invocations import FUNCTION_ERROR, SUCCESS, Engine, InvokeResult

log = logging.getLogger(__name__)

#: The size of the unwritable store's probe write: the largest async payload.
PROBE_BYTES = 256 * 1024


_iso = rfc3339_millis


def _json_or_text(body: bytes | None):
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def destination_record(
    ev: StoredEvent,
    condition: str,
    *,
    invocations: int,
    now: float,
    status: int | None,
    function_error: str | None,
    response: bytes | None,
    executed_version: str | None = None,
) -> dict:
    """Lambda's invocation record for onSuccess/onFailure destinations: the ARN the
    caller invoked (its qualifier included) and the version that ran last."""
    executed = executed_version or (ev.qualifier if ev.qualifier and ev.qualifier.isdigit() else "$LATEST")
    record = invocation_record(
        namespace=ev.namespace,
        function=ev.function,
        qualifier=ev.qualifier,
        condition=condition,
        request_id=ev.id,
        invocations=invocations,
        now=now,
        status=status if status is not None else 200,
        executed_version=executed,
        function_error=function_error,
    )
    record["requestPayload"] = _json_or_text(ev.payload)
    if response is not None:
        record["responsePayload"] = _json_or_text(response)
    return record


class Dispatcher:
    def __init__(
        self,
        store: AsyncStore,
        engine: Engine,
        *,
        retry: policy.RetryPolicy | None = None,
        concurrency: int = 64,
        poll_interval: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        init_timeout: float = 30.0,
        invoke_grace: float = 2.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.retry = retry or policy.RetryPolicy()
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.wall_clock = wall_clock
        self.init_timeout = init_timeout
        self.invoke_grace = invoke_grace
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._delivering: set[str] = set()  # ids of the events in flight
        self._task: asyncio.Task | None = None
        self.delivered = 0

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for t in list(self._inflight):
            t.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def enqueue(self, ev: NewEvent) -> None:
        await self.store.enqueue(ev)
        self.notify()

    # -- loop --------------------------------------------------------------------------

    def _leases(self) -> dict[tuple[str, str], float]:
        """Lease seconds of every function the engine serves (others: the store's default)."""
        return {
            key: policy.lease_seconds(
                state.spec.timeout_seconds,
                init_timeout=self.init_timeout,
                invoke_grace=self.invoke_grace,
                lease_grace=self.retry.lease_grace,
            )
            for key, state in list(self.engine.functions.items())
        }

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if not self.store.health.available:
                    raise StoreUnavailable(self.store.health.reason or "unavailable")
                if self.store.health.write_error is not None:
                    await self.store.probe(PROBE_BYTES)
                free = self.concurrency - len(self._inflight)
                leased = await self.store.lease_due(
                    self.wall_clock(), free, leases=self._leases(), exclude=set(self._delivering)
                )
                for ev in leased:
                    self._delivering.add(ev.id)
                    task = asyncio.get_running_loop().create_task(self._deliver(ev))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if free - len(leased) <= 0:
                    timeout = self.poll_interval  # woken when a slot frees up
                else:
                    nxt = await self.store.next_due_at()
                    timeout = (
                        self.poll_interval
                        if nxt is None
                        else min(self.poll_interval, max(0.001, nxt - self.wall_clock()))
                    )
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # the store logged it once; readiness reports it
                timeout = self.poll_interval
            except Exception:
                log.exception("async dispatcher loop failed; retrying")
                timeout = self.poll_interval
            # asyncio.timeout, not wait_for: on 3.11 wait_for may lose a cancel that comes
            # as the wake does (see ``Informer.wait_for``), and close() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        self.notify()

    # -- one event ---------------------------------------------------------------------

    def _async_config(self, ev: StoredEvent) -> AsyncConfig | None:
        state = self.engine.get(ev.namespace, ev.function)
        return state.spec.async_ if state is not None else None

    async def _deliver(self, ev: StoredEvent) -> None:
        try:
            await self._attempt(ev)
        except asyncio.CancelledError:
            raise  # the lease is voided when the store is reopened: redelivered
        except Exception as exc:
            log.exception("async event %s: delivery failed", ev.id)
            error = f"router: {type(exc).__name__}: {exc}"
            await self._write(
                ev,
                "reschedule",
                lambda: self.store.reschedule(
                    ev,
                    next_attempt_at=self.wall_clock() + self.retry.backoff_base,
                    function_errors=ev.function_errors,
                    system_retries=ev.system_retries + 1,
                    invocations=ev.invocations,
                    last_status=ev.last_status,
                    last_function_error=ev.last_function_error,
                    last_response=ev.last_response,
                    last_error=error,
                ),
            )
        finally:
            self._delivering.discard(ev.id)

    async def _write(self, ev: StoredEvent, what: str, op: Callable[[], Awaitable[None]]) -> bool:
        """Write an event's outcome, retried with backoff while its lease lasts. False:
        given up (the lease ended; a later pass leases the event again)."""
        delay = 0.0
        while True:
            try:
                await op()
                return True
            except StoreUnavailable as exc:
                delay_or_none = policy.write_retry_delay(
                    self.wall_clock(), ev.leased_until, delay, self.retry.write_backoff
                )
                if delay_or_none is None:
                    log.error(
                        "async event %s: could not %s (%s); its lease ends, a later pass delivers it again",
                        ev.id,
                        what,
                        exc,
                    )
                    return False
                delay = delay_or_none
                log.warning("async event %s: could not %s (%s); retrying in %.1fs", ev.id, what, exc, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, ev: StoredEvent) -> None:
        cfg = self._async_config(ev) or AsyncConfig()
        max_age = self.retry.max_event_age or cfg.maximum_event_age_seconds
        attempts = policy.Attempts(ev.created_at, ev.function_errors, ev.system_retries, ev.invocations)
        if policy.expired(attempts, self.wall_clock(), max_age):
            await self._finish(
                ev, policy.EVENT_AGE_EXCEEDED, attempts, ev.last_status, ev.last_function_error, ev.last_response
            )
            return
        invoked_arn = function_arn(ev.namespace, ev.function) + (f":{ev.qualifier}" if ev.qualifier else "")
        result = await self.engine.invoke(
            ev.namespace,
            ev.function,
            ev.payload,
            request_id=ev.id,
            client_context=ev.client_context,
            invoked_arn=invoked_arn,
            qualifier=ev.qualifier,
        )
        executed = result.headers.get("X-Amz-Executed-Version")
        outcome = _classify(result)
        now = self.wall_clock()
        cfg = self._async_config(ev) or cfg
        decision = policy.after_attempt(
            attempts, outcome, now, max_retry_attempts=cfg.max_retry_attempts, max_age=max_age, policy=self.retry
        )
        fn_error = result.headers.get("X-Amz-Function-Error")
        reached = outcome != "retryable"
        status = result.status if reached else (ev.last_status or result.status)
        response = result.body if reached else ev.last_response
        fn_error = fn_error if reached else ev.last_function_error
        a = decision.attempts
        assert a is not None, "after_attempt always says how many attempts were made"
        if decision.finished:
            assert decision.condition is not None
            await self._finish(ev, decision.condition, a, status, fn_error, response, executed)
            return
        assert decision.next_attempt_at is not None
        next_attempt_at = decision.next_attempt_at
        await self._write(
            ev,
            "reschedule",
            lambda: self.store.reschedule(
                ev,
                next_attempt_at=next_attempt_at,
                function_errors=a.function_errors,
                system_retries=a.system_retries,
                invocations=a.invocations,
                last_status=status,
                last_function_error=fn_error,
                last_response=response,
                last_error=None if reached else f"{result.status} {result.error_type}",
            ),
        )

    async def _finish(
        self,
        ev: StoredEvent,
        condition: str,
        attempts: policy.Attempts,
        status: int | None,
        fn_error: str | None,
        response: bytes | None,
        executed_version: str | None = None,
    ) -> None:
        cfg = self._async_config(ev)
        messages: list[QueueMessage] = []
        events: list[NewEvent] = []
        now = self.wall_clock()
        if cfg is None:
            log.warning(
                "async event %s for %s/%s finished (%s) but the function no longer"
                " exists: no destination to deliver to",
                ev.id,
                ev.namespace,
                ev.function,
                condition,
            )
        else:
            record = None
            targets: list[tuple[Destination, bool]] = []  # (destination, send the record?)
            if condition == policy.SUCCESS:
                if cfg.on_success:
                    targets.append((cfg.on_success, True))
            else:
                if cfg.on_failure:
                    targets.append((cfg.on_failure, True))
                if cfg.dead_letter:
                    targets.append((cfg.dead_letter, False))
                if not targets:
                    log.warning(
                        "async event %s for %s/%s failed (%s) with no onFailure or deadLetter destination configured",
                        ev.id,
                        ev.namespace,
                        ev.function,
                        condition,
                    )
            for dest, with_record in targets:
                if with_record:
                    if record is None:
                        record = json.dumps(
                            destination_record(
                                ev,
                                condition,
                                invocations=attempts.invocations,
                                now=now,
                                status=status,
                                function_error=fn_error,
                                response=response,
                                executed_version=executed_version,
                            ),
                            separators=(",", ":"),
                        ).encode()
                    body = record
                else:
                    body = ev.payload  # Lambda's DLQ gets the original event only
                if dest.queue:
                    messages.append(QueueMessage(ev.namespace, dest.queue, ev.id, body, now))
                else:
                    assert dest.function is not None  # the CRD: exactly one of function and queue
                    events.append(NewEvent(str(uuid.uuid4()), ev.namespace, dest.function, body, None, now))
        if not await self._write(ev, "finish", lambda: self.store.finish(ev, messages=messages, events=events)):
            return
        self.delivered += 1
        if events:
            self.notify()


def _classify(result: InvokeResult) -> str:
    if result.result == SUCCESS:
        return "success"
    if result.result == FUNCTION_ERROR:
        return "function_error"
    if result.status in (400, 413):  # the event itself is refused: retrying cannot help
        return "function_error"
    return "retryable"
