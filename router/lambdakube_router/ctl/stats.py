"""``lambdakube bench``'s numbers (pure): percentiles and the cold/warm split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Sample:
    seconds: float  # wall time of the call, client side
    status: int | None  # HTTP status; None: no answer (connection failed, timed out)
    code: int  # ``exits.of_answer``
    cold: bool | None = None  # X-Cold-Start; None when the router did not say


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank over sorted ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _latencies(values: Sequence[float]) -> dict:
    out = {f"p{p}Ms": _ms(percentile(values, p)) for p in PERCENTILES}
    out["maxMs"] = _ms(max(values)) if values else None
    return out


def summarize(samples: Sequence[Sample], elapsed: float, *, concurrency: int, asked: int) -> dict:
    ok = [s for s in samples if s.code == 0]
    cold = [s.seconds for s in ok if s.cold]
    warm = [s.seconds for s in ok if s.cold is False]
    return {
        "asked": asked,
        "concurrency": concurrency,
        "completed": len(samples),
        "succeeded": len(ok),
        "functionErrors": sum(1 for s in samples if s.code == 1 and s.status == 200),
        "errors": sum(1 for s in samples if s.code == 1 and s.status != 200),
        "throttled": sum(1 for s in samples if s.code == 3),
        "elapsedSeconds": round(elapsed, 3),
        "perSecond": round(len(samples) / elapsed, 1) if elapsed > 0 else None,
        "latency": _latencies([s.seconds for s in ok]),
        "cold": {"count": len(cold), **_latencies(cold)},
        "warm": {"count": len(warm), **_latencies(warm)},
    }


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
