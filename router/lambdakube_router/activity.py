"""What happened to a function, for its Kubernetes status and Events (no I/O here).

Why a recorder apart from the Prometheus metrics: the status publisher needs plain
numbers it can diff between ticks (cold starts, throttles per reason) and the init
durations of *recent* cold starts for a median, none of which a histogram gives back.
The hot path only bumps integers and appends to a bounded deque.

``ActivityRow`` is the seam between the engine and ``status_publisher``: the publisher
takes a callable returning rows, so tests feed it rows directly.

The pure halves of the Event logic live here too: ``EventLimiter`` (at most one Event per
function and reason per window, with the count of what happened in between) and the
message builders.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lambdakube_router.backends.base import FunctionRef

#: Init durations kept per function for the ColdStart Event's median.
RECENT_INITS = 256

COLD_START = "ColdStart"
THROTTLED = "Throttled"


class Activity:
    """Per-function counters the engine bumps on the hot path (cumulative, never reset)."""

    __slots__ = ("cold_starts", "throttles", "inits")

    def __init__(self) -> None:
        self.cold_starts = 0
        self.throttles: dict[str, int] = {}
        #: Init durations (seconds; None when unknown) of the most recent cold starts.
        self.inits: collections.deque[float | None] = collections.deque(maxlen=RECENT_INITS)

    def cold_start(self, init_seconds: float | None) -> None:
        self.cold_starts += 1
        self.inits.append(init_seconds)

    def throttled(self, reason: str) -> None:
        self.throttles[reason] = self.throttles.get(reason, 0) + 1


@dataclass(frozen=True)
class ActivityRow:
    """One function as the status publisher sees it at one instant."""

    ref: FunctionRef
    busy: int
    idle: int
    #: Cumulative since the router started (this router's count).
    cold_starts: int
    #: Cumulative throttles per reason.
    throttles: Mapping[str, int] = field(default_factory=dict)
    #: Init durations of the most recent cold starts, oldest first (None: unknown).
    recent_inits: tuple[float | None, ...] = ()

    @property
    def status(self) -> dict[str, int]:
        """The router-owned Function status fields."""
        return {"busy": self.busy, "idle": self.idle, "coldStarts": self.cold_starts}


@dataclass(frozen=True)
class PlannedEvent:
    type: str  # Normal | Warning
    reason: str
    message: str
    #: What the message counts, so a failed post can be put back (``EventLimiter.failed``).
    count: int = 0
    by_reason: Mapping[str, int] = field(default_factory=dict)
    inits: tuple[float | None, ...] = ()


def cold_start_message(count: int, inits: Iterable[float | None], window: float) -> str:
    known = [s for s in inits if s is not None]
    noun = "cold start" if count == 1 else "cold starts"
    msg = f"{count} {noun} in the last {window:g}s"
    if known:
        msg += f", init p50 {statistics.median(known) * 1000:.0f} ms"
    return msg


def throttled_message(by_reason: Mapping[str, int], window: float) -> str:
    total = sum(by_reason.values())
    noun = "invocation" if total == 1 else "invocations"
    reasons = sorted(r for r, n in by_reason.items() if n)
    if len(reasons) == 1:
        detail = reasons[0]
    else:
        detail = ", ".join(f"{r} ({by_reason[r]})" for r in reasons)
    return f"{total} {noun} throttled in the last {window:g}s: {detail}"


@dataclass
class _Pending:
    last_emitted: float | None = None
    count: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    inits: list[float | None] = field(default_factory=list)


class EventLimiter:
    """Turns cumulative per-function counters into rate-limited Events (pure, fake clock).

    ``observe(row, now)`` diffs a row against the previous one of the same function and
    returns the Events due now: at most one per (function, reason) per ``window``
    seconds. What happens in between accumulates and goes into the next Event's count,
    so nothing is lost, only batched; since a pending count is flushed as soon as the
    window has passed, it never covers more than the last ``window`` seconds (plus one
    tick). The first occurrence after a quiet window is reported at once.

    A counter that went *down* means the function's pool was recreated (deleted and
    re-added): its new value is all new. ``failed`` puts an Event back (the API call
    failed) so it is retried on the next ``observe``.
    """

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._seen: dict[tuple[str, str], ActivityRow] = {}
        self._pending: dict[tuple[str, str, str], _Pending] = {}

    def forget(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)
        for k in [k for k in self._pending if k[:2] == key]:
            del self._pending[k]

    def keys(self) -> set[tuple[str, str]]:
        return set(self._seen)

    def observe(self, row: ActivityRow, now: float) -> list[PlannedEvent]:
        key = (row.ref.namespace, row.ref.name)
        before = self._seen.get(key)
        self._seen[key] = row
        cold = row.cold_starts - (before.cold_starts if before else 0)
        if cold < 0:
            cold = row.cold_starts
        if cold:
            p = self._pending.setdefault((*key, COLD_START), _Pending())
            p.count += cold
            p.inits.extend(row.recent_inits[-cold:] if cold <= len(row.recent_inits) else row.recent_inits)
            del p.inits[:-RECENT_INITS]
        throttled: dict[str, int] = {}
        for reason, n in row.throttles.items():
            prev = before.throttles.get(reason, 0) if before else 0
            delta = n - prev if n >= prev else n
            if delta:
                throttled[reason] = delta
        if throttled:
            p = self._pending.setdefault((*key, THROTTLED), _Pending())
            p.count += sum(throttled.values())
            for reason, n in throttled.items():
                p.by_reason[reason] = p.by_reason.get(reason, 0) + n

        out = []
        for reason in (COLD_START, THROTTLED):
            pending = self._pending.get((*key, reason))
            if pending is None or not pending.count:
                continue
            if pending.last_emitted is not None and now - pending.last_emitted < self.window:
                continue
            if reason == COLD_START:
                out.append(
                    PlannedEvent(
                        "Normal",
                        COLD_START,
                        cold_start_message(pending.count, pending.inits, self.window),
                        pending.count,
                        inits=tuple(pending.inits),
                    )
                )
            else:
                out.append(
                    PlannedEvent(
                        "Warning",
                        THROTTLED,
                        throttled_message(pending.by_reason, self.window),
                        pending.count,
                        dict(pending.by_reason),
                    )
                )
            self._pending[(*key, reason)] = _Pending(last_emitted=now)
        return out

    def failed(self, key: tuple[str, str], event: PlannedEvent) -> None:
        """An Event could not be posted: put its counts back, to be retried on the next
        ``observe`` (the last *successful* one was at least a window ago, or there was none)."""
        p = self._pending.setdefault((*key, event.reason), _Pending())
        p.last_emitted = None
        p.count += event.count
        for reason, n in event.by_reason.items():
            p.by_reason[reason] = p.by_reason.get(reason, 0) + n
        p.inits[:0] = event.inits
        del p.inits[:-RECENT_INITS]
