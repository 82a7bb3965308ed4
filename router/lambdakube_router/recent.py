"""What happened to a function in the last minutes: run durations and throttles, in memory.

Why apart from the Prometheus histograms: the web view and ``lambdakube describe`` show
p50/p99 "over the last five minutes" and the most recent throttles with their Reason,
and a cumulative histogram gives neither (its buckets are coarse, and it never forgets).
So each function keeps two bounded rings of time-stamped samples, filled on the hot path
with one ``deque.append`` each, and read (``window``, pure) only when someone looks.

Bounded in memory: ``DURATIONS`` and ``THROTTLES`` entries per function, whatever the
rate; at high rates the window is the last ``DURATIONS`` invocations rather than the
last five minutes, and ``summary`` says how many samples it used.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Samples kept per function (a few tens of KiB).
DURATIONS = 4096
THROTTLES = 256
#: The window ``summary`` looks at, in seconds.
WINDOW_SECONDS = 300.0


class Recent:
    """Two rings of ``(monotonic time, value)``; the clock is the driver's (``clock``)."""

    __slots__ = ("durations", "throttles", "clock")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.durations: collections.deque[tuple[float, float]] = collections.deque(maxlen=DURATIONS)
        self.throttles: collections.deque[tuple[float, str]] = collections.deque(maxlen=THROTTLES)
        self.clock = clock

    def ran(self, seconds: float) -> None:
        self.durations.append((self.clock(), seconds))

    def throttled(self, reason: str) -> None:
        self.throttles.append((self.clock(), reason))


class Observed:
    """A histogram child that also records each value in a ``Recent`` ring: it stands
    in for ``FunctionMetrics.run_duration``, so the engine's one ``observe`` feeds both."""

    __slots__ = ("child", "recent")

    def __init__(self, child: Any, recent: Recent) -> None:
        self.child = child
        self.recent = recent

    def observe(self, value: float) -> None:
        self.child.observe(value)
        self.recent.ran(value)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of already sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def since(samples: Iterable[tuple[float, Any]], now: float, window: float) -> list[tuple[float, Any]]:
    """The samples of the last ``window`` seconds before ``now``, oldest first."""
    start = now - window
    return [s for s in samples if start <= s[0] <= now]


def summary(recent: Recent, now: float, window: float = WINDOW_SECONDS, last_throttles: int = 10) -> dict:
    """The view's numbers: run-duration p50/p99 (ms) and throttles per Reason over the
    window, and the newest throttles with their age in seconds (newest first)."""
    runs = sorted(v for _, v in since(recent.durations, now, window))
    throttles = since(recent.throttles, now, window)
    by_reason: dict[str, int] = {}
    for _, reason in throttles:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    p50, p99 = percentile(runs, 0.5), percentile(runs, 0.99)
    return {
        "windowSeconds": window,
        "invocations": len(runs),
        "p50Ms": None if p50 is None else round(p50 * 1000, 3),
        "p99Ms": None if p99 is None else round(p99 * 1000, 3),
        "throttles": dict(sorted(by_reason.items())),
        "lastThrottles": [
            {"ageSeconds": round(now - at, 3), "reason": reason} for at, reason in reversed(throttles[-last_throttles:])
        ],
    }
