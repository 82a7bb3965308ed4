"""What a Kafka partition's poller does next, as pure functions of (its records, its state,
the mapping's settings, now): which records form the next batch, and after an
invocation what is committed, what goes to ``onFailure`` and when the next try may run.
The driver (``pollers.kafka``) only reads records, invokes and commits what these say.

Lambda's stream rules, as it applies them to Kinesis/DynamoDB and Kafka:

- **Order.** A partition has one batch in flight; its records are invoked in offset
  order and the commit point (the first offset not yet done) only moves forward, after
  success (or after the records were handed to ``onFailure``).
- **Function error.** The whole batch failed. With ``bisectBatchOnFunctionError`` a
  batch of more than one record is split: the first half is tried, then the rest. A
  split does not spend a retry (as Lambda: otherwise ``maximumRetryAttempts: 0`` would
  send the whole batch away before the split could isolate the bad record); a batch
  that cannot be split spends one. After ``maximumRetryAttempts`` retries (-1: no limit)
  the batch goes to ``onFailure`` and the partition moves on. Retries wait a short
  backoff (``retry_backoff``), so a poison record never spins the function.
- **Partial batch response** (``functionResponseTypes: [ReportBatchItemFailures]``):
  ``{"batchItemFailures": [{"itemIdentifier": "<offset>"}]}`` commits up to the lowest
  reported offset; that offset and the rest of the batch are retried (one retry spent).
  What counts as a full success or a whole-batch failure is ``pollers.batching``'s
  (Lambda's rules, the same for every source).
- **Age.** Before each invocation, records older than ``maximumRecordAgeInSeconds``
  (by their Kafka timestamp) at the head of the partition go to ``onFailure``.
- **Throttles and router failures** (no environment, function momentarily unknown)
  return the batch untouched: no retry is spent, the next try waits a backoff (a
  throttle's ``Retry-After`` when it has one).
- A retried batch holds the same records as the one that failed (``until``): new
  records that arrived meanwhile never join it, so its retries count the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from lambdakube.backoff import Backoff
from lambdakube_router import invocations
from lambdakube_router.pollers.batching import batch_item_failures

#: Outcomes of one invocation, as ``classify`` names them.
SUCCESS = "success"
FUNCTION_ERROR = "function_error"
THROTTLED = "throttled"
SYSTEM_ERROR = "system_error"

#: Lambda's ``condition`` words in an onFailure record of a stream.
RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


class Offsetted(Protocol):
    """What the rules read of a record: aiokafka's ``ConsumerRecord`` has both."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...  # milliseconds since the epoch


@dataclass(frozen=True)
class Settings:
    """The mapping's fields these rules read (from ``EventSourceMappingSpec``)."""

    batch_size: int = 100
    #: -1: retry until the record expires (Lambda's default for streams).
    max_retry_attempts: int = -1
    #: Seconds; None (Lambda's -1): no age limit.
    max_record_age: float | None = None
    bisect: bool = False
    report_item_failures: bool = False
    #: Waits after throttles and router failures (no retry is spent on them).
    backoff: Backoff = Backoff(initial=0.5, maximum=30.0)
    #: Waits before retrying a batch that failed in the function (a bisect split does
    #: not wait): a poison record with unlimited retries must not spin the function.
    retry_backoff: Backoff = Backoff(initial=0.1, maximum=5.0)


@dataclass(frozen=True)
class PartitionState:
    #: The failed invocations of the current head batch (retries spent = attempts).
    attempts: int = 0
    #: Bisecting: at most this many records per batch ...
    limit: int | None = None
    #: ... and, while retrying, only records up to this offset (the failed batch's last).
    until: int | None = None
    #: Throttles / router failures in a row, and the last wait (for the backoff).
    system_retries: int = 0
    last_wait: float = 0.0
    #: The last wait before a function-error retry (for ``retry_backoff``).
    retry_wait: float = 0.0
    #: Monotonic time before which the partition invokes nothing.
    not_before: float = 0.0


@dataclass(frozen=True)
class Expired:
    """Records at the head that are too old: to ``onFailure``, then commit past them."""

    records: list
    condition: str = RECORD_AGE_EXCEEDED


@dataclass(frozen=True)
class Invoke:
    records: list


def next_batch(
    records: Sequence[Offsetted], state: PartitionState, settings: Settings, wall_now: float
) -> Expired | Invoke | None:
    """``records``: the partition's uncommitted records, from the commit point on, in
    offset order. None: nothing to do (no records)."""
    if not records:
        return None
    if settings.max_record_age is not None:
        cutoff_ms = (wall_now - settings.max_record_age) * 1000
        old = 0
        while old < len(records) and records[old].timestamp < cutoff_ms:
            old += 1
        if old:
            return Expired([records[i] for i in range(old)])
    size = settings.batch_size if state.limit is None else min(settings.batch_size, state.limit)
    batch: list = []
    for r in records:
        if len(batch) >= size or (state.until is not None and r.offset > state.until):
            break
        batch.append(r)
    if not batch:  # the retried batch is gone (committed by someone else): start afresh
        batch = [records[i] for i in range(min(size, len(records)))]
    return Invoke(batch)


@dataclass(frozen=True)
class Step:
    """What follows an invocation (or an expiry)."""

    state: PartitionState
    #: The new commit point (the first offset not done), or None: commit nothing.
    commit: int | None = None
    #: Records for ``onFailure``, and the condition their record names.
    on_failure: list | None = None
    condition: str | None = None


def after_expired(state: PartitionState, batch: Expired) -> Step:
    last = batch.records[-1].offset
    return Step(_moved_past(state, last), commit=last + 1, on_failure=list(batch.records), condition=batch.condition)


def after_invoke(
    state: PartitionState,
    batch: Sequence[Offsetted],
    outcome: str,
    settings: Settings,
    now: float,
    *,
    first_failed: int | None = None,
    retry_after: float | None = None,
) -> Step:
    """``outcome``: one of SUCCESS / FUNCTION_ERROR / THROTTLED / SYSTEM_ERROR;
    ``first_failed``: with SUCCESS, the lowest offset a partial batch response reported
    (None: all succeeded; ``WHOLE_BATCH``: a malformed response, the whole batch failed)."""
    last = batch[-1].offset
    if outcome == SUCCESS and first_failed == WHOLE_BATCH:
        outcome = FUNCTION_ERROR
    if outcome in (THROTTLED, SYSTEM_ERROR):
        wait = settings.backoff.next(state.last_wait)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, settings.backoff.maximum))
        return Step(replace(state, system_retries=state.system_retries + 1, last_wait=wait, not_before=now + wait))
    reached = replace(state, system_retries=0, last_wait=0.0, not_before=0.0)
    if outcome == SUCCESS and first_failed is None:
        return Step(_moved_past(reached, last), commit=last + 1)
    if outcome == SUCCESS and first_failed is not None:  # a partial batch response
        failed = [r for r in batch if r.offset >= first_failed]  # commit up to the first failure
        return _spend_retry(reached, failed, settings, now, commit=first_failed)
    # A function error.
    if settings.bisect and len(batch) > 1:
        half = (len(batch) + 1) // 2
        until = last if reached.until is None else reached.until
        return Step(replace(reached, attempts=0, limit=half, until=until))
    return _spend_retry(reached, list(batch), settings, now, commit=None)


def _spend_retry(state: PartitionState, failed: list, settings: Settings, now: float, *, commit: int | None) -> Step:
    attempts = state.attempts + 1
    limit = settings.max_retry_attempts
    last = failed[-1].offset
    if limit != -1 and attempts > limit:
        return Step(_moved_past(state, last), commit=last + 1, on_failure=failed, condition=RETRIES_EXHAUSTED)
    until = last if state.until is None else state.until
    wait = settings.retry_backoff.next(state.retry_wait)
    return Step(replace(state, attempts=attempts, until=until, retry_wait=wait, not_before=now + wait), commit=commit)


def _moved_past(state: PartitionState, last: int) -> PartitionState:
    """The records up to ``last`` are done: a bisect window that ends there ends too."""
    if state.until is not None and last < state.until:
        return replace(state, attempts=0, retry_wait=0.0)
    return replace(state, attempts=0, retry_wait=0.0, limit=None, until=None)


# -- reading an invocation's result ----------------------------------------------------------

#: ``first_failed`` of a partial response that names something not in the batch.
WHOLE_BATCH = -1


def first_failed_offset(body: bytes, offsets: Sequence[int]) -> int | None:
    """The lowest offset a partial batch response reports (its ``itemIdentifier`` is the
    offset as a string), None if it reports none, ``WHOLE_BATCH`` when Lambda's rules
    (``pollers.batching``, shared with the queue source) make it a whole-batch failure."""
    answer = batch_item_failures(body, [str(o) for o in offsets])
    if answer.all_failed:
        return WHOLE_BATCH
    return min(int(i) for i in answer.failed) if answer.failed else None


def classify(result: str, status: int) -> str:
    """The Engine's ``InvokeResult.result`` as these rules' outcome. A request the
    function's environment refused (400 invalid payload, 413 too large) is the batch's
    own fault: a function error, so that bisecting and retries can move past it; other
    router failures (5xx, not found) are retried without spending a retry."""
    if result == invocations.SUCCESS:
        return SUCCESS
    if result == invocations.FUNCTION_ERROR:
        return FUNCTION_ERROR
    if result == invocations.THROTTLED:
        return THROTTLED
    if result == invocations.ERROR and status in (400, 413):
        return FUNCTION_ERROR
    return SYSTEM_ERROR
