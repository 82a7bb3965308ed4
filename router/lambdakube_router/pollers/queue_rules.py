"""What happens to each message of a queue batch: SQS's rules as Lambda applies them. Pure.

A received message is invisible until its visibility timeout ends or it is deleted
(``asyncq.store.receive``). After the function's answer:

============================  ===============================================================
outcome                       the batch's messages
============================  ===============================================================
success                       deleted (with ``ReportBatchItemFailures``: all but the listed)
function error, or an error   kept invisible: they reappear when their visibility timeout
of the router/environment     ends, and their next receive counts one more (redelivery)
throttled, function missing   visible again at ``retry_at`` and this receive *not* counted:
                              the function never saw them (the one place this differs from
                              SQS, where every receive counts, and a throttled Lambda poller
                              can push a message to its DLQ without ever running it)
============================  ===============================================================

A message that failed on its receive number ``maximumRetryAttempts + 1`` (SQS's
``maxReceiveCount`` redrive: that many receives), or that is older than
``maximumRecordAgeInSeconds``, goes to ``destinationConfig.onFailure`` (and is deleted,
in the same transaction) instead of being kept; without a destination it is deleted
and counted as a failure. ``-1`` or unset: no such limit (SQS without a redrive policy).
Filtered-out messages (``filterCriteria``) are deleted without invoking, as Lambda does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from lambdakube_router.asyncq.store import ReceivedMessage
from lambdakube_router.invocations import FUNCTION_ERROR, NOT_FOUND, SUCCESS, THROTTLED
from lambdakube_router.pollers import source
from lambdakube_router.pollers.batching import ItemFailures


@dataclass(frozen=True)
class Settlement:
    """What to do with a batch: seqs to delete, to send to ``onFailure``, to keep
    invisible (redelivered at their timeout), to release (``retry_at``, uncounted)."""

    delete: tuple[ReceivedMessage, ...] = ()
    to_failure: tuple[ReceivedMessage, ...] = ()
    keep: tuple[ReceivedMessage, ...] = ()
    release: tuple[ReceivedMessage, ...] = ()
    retry_at: float | None = None
    #: Lambda's ``LastProcessingResult``.
    result: str = source.OK
    #: Why the batch failed (``FunctionError``, ``PartialBatchFailure``, ...).
    condition: str | None = None
    #: Why each ``to_failure`` message is done with (the onFailure record's
    #: ``condition``, Lambda's words): ``RetryAttemptsExhausted`` or ``RecordAgeExceeded``.
    reasons: dict[str, str] = field(default_factory=dict)
    failed_ids: frozenset[str] = field(default_factory=frozenset)


def exhausted(m: ReceivedMessage, *, max_retries: int | None, max_age: int | None, now: float) -> str | None:
    """Why a message that just failed is done with (its retries or its age), else None."""
    if max_age is not None and max_age >= 0 and now - m.created_at > max_age:
        return "RecordAgeExceeded"
    if max_retries is not None and max_retries >= 0 and m.receive_count > max_retries:
        return "RetryAttemptsExhausted"
    return None


def expired_on_receive(
    batch: Sequence[ReceivedMessage], *, max_age: int | None, now: float
) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
    """(to invoke, too old to invoke): Lambda does not send a record past its age."""
    if max_age is None or max_age < 0:
        return list(batch), []
    fresh = [m for m in batch if now - m.created_at <= max_age]
    return fresh, [m for m in batch if now - m.created_at > max_age]


def settle(
    batch: Sequence[ReceivedMessage],
    *,
    result: str,
    failures: ItemFailures | None,
    max_retries: int | None,
    max_age: int | None,
    now: float,
    retry_at: float,
) -> Settlement:
    """The fate of each message of an invoked batch (``result``: the Engine's;
    ``failures``: the partial batch response, with ``ReportBatchItemFailures``)."""
    if result in (THROTTLED, NOT_FOUND):
        words = source.THROTTLED if result == THROTTLED else source.FUNCTION_NOT_FOUND
        return Settlement(release=tuple(batch), retry_at=retry_at, result=words)
    if result == SUCCESS and (failures is None or not failures.all_failed):
        failed_ids = failures.failed if failures is not None else frozenset()
        ok = tuple(m for m in batch if m.message_id not in failed_ids)
        failed = [m for m in batch if m.message_id in failed_ids]
        words = source.OK if not failed else "PROBLEM: Function reported batch item failures"
        return _failed(failed, ok, words, "PartialBatchFailure", failed_ids, max_retries, max_age, now)
    if result == SUCCESS:  # an unreadable partial response fails the whole batch
        assert failures is not None
        words = f"PROBLEM: Invalid batch item failures response: {failures.problem}"
        return _failed(list(batch), (), words, "InvalidResponse", frozenset(), max_retries, max_age, now)
    condition = "FunctionError" if result == FUNCTION_ERROR else "ServiceError"
    return _failed(list(batch), (), source.FUNCTION_FAILED, condition, frozenset(), max_retries, max_age, now)


def _failed(
    failed: list[ReceivedMessage],
    ok: tuple[ReceivedMessage, ...],
    words: str,
    condition: str,
    failed_ids: frozenset[str],
    max_retries: int | None,
    max_age: int | None,
    now: float,
) -> Settlement:
    reasons = {}
    for m in failed:
        why = exhausted(m, max_retries=max_retries, max_age=max_age, now=now)
        if why is not None:
            reasons[m.message_id] = why
    done = tuple(m for m in failed if m.message_id in reasons)
    keep = tuple(m for m in failed if m.message_id not in reasons)
    return Settlement(
        delete=ok,
        to_failure=done,
        keep=keep,
        result=words,
        condition=condition,
        failed_ids=failed_ids,
        reasons=reasons,
    )


def pollers_wanted(*, visible: int, batch_size: int, cap: int) -> int:
    """Concurrent batches for a backlog: one per batch waiting, at most ``cap``
    (``maximumConcurrency`` and the function's own limit), none when nothing waits."""
    if visible <= 0 or cap <= 0:
        return 0
    return min(cap, math.ceil(visible / max(1, batch_size)))
