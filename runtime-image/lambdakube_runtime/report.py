"""The per-invocation log lines and metrics, in Lambda's exact format.

Tools that already parse Lambda logs (and the lambdakube router's log tail handling)
rely on these lines byte for byte::

    START RequestId: <id> Version: <v>
    END RequestId: <id>
    REPORT RequestId: <id>\\tDuration: 15.74 ms\\tBilled Duration: 16 ms\\tMemory Size: 128 MB\\tMax Memory Used: 56 MB

with ``\\tInit Duration: 130.49 ms`` appended only on the cold-start invocation.
"""

from __future__ import annotations

import math
import sys
import time

try:
    import resource
except ImportError:  # not on Windows; the runtime targets Linux containers
    resource = None  # type: ignore[assignment]


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_used_mb} MB"
    )
    if init_duration_ms is not None:
        line += f"\tInit Duration: {init_duration_ms:.2f} ms"
    return line + "\n"


def timeout_line(request_id: str, budget_seconds: float) -> str:
    return f"{iso_now()} {request_id} Task timed out after {budget_seconds:.2f} seconds"


def billed_ms(duration_ms: float) -> int:
    """Lambda bills per started millisecond, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


def max_memory_used_mb() -> int:
    """Peak resident set size of this process (the whole environment), in MB, rounded up."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = peak / 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux
    return math.ceil(peak_kb / 1024)


def iso_time(epoch: float) -> str:
    """``2024-05-01T12:00:00.123Z``, the timestamp format of Lambda's log lines."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def iso_now() -> str:
    return iso_time(time.time())
