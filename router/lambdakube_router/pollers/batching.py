"""When a batch is ready, and what a function's partial batch response says. Pure.

Why here and not in a source: Lambda's rules for both are the same for every poller
kind (its batching window, its ``ReportBatchItemFailures`` response), so a queue and a
Kafka poller judge them alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

#: Lambda's invocation payload limit: a batch is sent once it would grow past this.
MAX_BATCH_BYTES = 6 * 1024 * 1024


def batch_wait(
    *, available: int, batch_size: int, oldest_since: float | None, window: float, now: float, batch_bytes: int = 0
) -> float | None:
    """None: take a batch now. Else the time to look again (the window's end).

    Lambda invokes when the batch is full (``batch_size`` records or 6 MB), or when
    ``maximumBatchingWindowInSeconds`` has passed since the oldest record became
    available (``oldest_since``); with no window, whatever is there goes at once.
    Nothing available: None too (the caller sees an empty receive and sleeps)."""
    if available <= 0 or window <= 0 or available >= batch_size or batch_bytes >= MAX_BATCH_BYTES:
        return None
    if oldest_since is None:
        return None
    ends = oldest_since + window
    return None if now >= ends else ends


@dataclass(frozen=True)
class ItemFailures:
    """A function's answer to a batch, as Lambda reads ``ReportBatchItemFailures``:
    ``all_failed`` (the whole batch failed), else ``failed`` item ids (maybe none)."""

    failed: frozenset[str] = frozenset()
    all_failed: bool = False
    #: Why the whole batch counts as failed, for ``lastProcessingResult``.
    problem: str | None = None


def batch_item_failures(body: bytes, ids: Sequence[str]) -> ItemFailures:
    """Lambda's rules: a batch is a complete success when the response is empty, null,
    has no ``batchItemFailures`` or an empty/null one; a complete failure when the
    response is not JSON, or an entry's ``itemIdentifier`` is missing, empty, not a
    string or not one of the batch's ``ids``. Otherwise the listed items failed."""
    text = body.strip()
    if not text or text == b"null":
        return ItemFailures()
    try:
        response = json.loads(text)
    except ValueError:
        return ItemFailures(all_failed=True, problem="the response is not JSON")
    if not isinstance(response, dict):
        return ItemFailures()  # Lambda: a response that is not an EventResponse is ignored
    entries = response.get("batchItemFailures")
    if entries is None:
        return ItemFailures()
    if not isinstance(entries, list):
        return ItemFailures(all_failed=True, problem="batchItemFailures is not a list")
    known, failed = set(ids), set()
    for entry in entries:
        ident = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(ident, str) or not ident:
            return ItemFailures(all_failed=True, problem="an itemIdentifier is missing or empty")
        if ident not in known:
            return ItemFailures(all_failed=True, problem=f"itemIdentifier {ident!r} is not in the batch")
        failed.add(ident)
    return ItemFailures(frozenset(failed))
