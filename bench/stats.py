"""The benchmarks' one percentile: nearest rank over the sorted samples, NaN dropped
(NaN when there are none), so every bench's p50/p99 mean the same thing."""

from __future__ import annotations


def pct(values: list[float], p: float) -> float:
    values = sorted(v for v in values if v == v)  # drop NaN
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
