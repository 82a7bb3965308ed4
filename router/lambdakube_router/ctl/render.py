"""What the commands print (pure): kubectl-style tables, ``describe`` text, JSON and YAML.

Conventions from kubectl: upper-case column headers, columns padded with three spaces,
``<none>``/``-`` for absent values, ``-o wide`` adds columns, ``-o name`` one name a line
(what shell completion reads), ``-o json|yaml`` the data as the router gave it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("table", "wide", "json", "yaml", "name")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def duration(seconds: float | None) -> str:
    """kubectl's AGE: 42s, 5m3s, 2h4m, 3d4h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}ms" if v < 100 else f"{v:.0f}ms"


def data(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=2, sort_keys=False)
    import yaml  # only for -o yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip()


FUNCTION_HEADERS = ("NAME", "READY", "BUSY", "IDLE", "STARTING", "PROVISIONED", "RESERVED", "THROTTLES", "COLD-STARTS")
FUNCTION_WIDE = ("IN-FLIGHT", "CAP", "WAITING", "SPILLOVER", "P50", "P99", "THROTTLE-REASONS")


def function_rows(functions: Sequence[Mapping], *, wide: bool) -> tuple[tuple[str, ...], list[list]]:
    rows = []
    for f in functions:
        c = f["counts"]
        reserved = f["reservedConcurrency"]
        if reserved is not None and f.get("reservationRejected"):
            reserved = f"{reserved} (rejected)"
        row: list = [
            f["name"],
            f["ready"],
            c["busy"],
            c["idle"],
            c["starting"],
            f"{f['provisioned']['live']}/{f['provisioned']['target']}",
            reserved,
            f["throttlesTotal"],
            f["coldStarts"],
        ]
        if wide:
            reasons = ",".join(f"{r}={n}" for r, n in f["throttles"].items()) or None
            row += [
                f["inFlight"],
                f["cap"],
                f["waiting"],
                f["spilloverInvocations"],
                ms(f["recent"]["p50Ms"]),
                ms(f["recent"]["p99Ms"]),
                reasons,
            ]
        rows.append(row)
    return FUNCTION_HEADERS + (FUNCTION_WIDE if wide else ()), rows


QUOTA_HEADERS = ("NAMESPACE", "QUOTA", "USED", "RESERVED", "UNRESERVED", "GRANTED", "REJECTED")
QUOTA_WIDE = ("MIN-UNRESERVED", "RESERVED-IN-FLIGHT", "UNRESERVED-IN-FLIGHT", "PENDING")


def _names(m: Mapping[str, Any], with_values: bool) -> str | None:
    if not m:
        return None
    return ",".join(f"{k}={v}" for k, v in m.items()) if with_values else ",".join(m)


def quota_rows(namespace: str, q: Mapping | None, *, wide: bool) -> tuple[tuple[str, ...], list[list]]:
    if q is None:
        return QUOTA_HEADERS + (QUOTA_WIDE if wide else ()), []
    row: list = [
        namespace,
        q["concurrentExecutions"],
        q["inFlight"],
        q["reserved"],
        q["unreserved"],
        _names(q["granted"], True),
        _names(q["rejected"], False),
    ]
    if wide:
        row += [q["minimumUnreserved"], q["reservedInFlight"], q["unreservedInFlight"], _names(q["pending"], False)]
    return QUOTA_HEADERS + (QUOTA_WIDE if wide else ()), [row]


def describe(f: Mapping) -> str:
    """``lambdakube describe NAME``: kubectl describe's layout."""
    recent = f["recent"]
    reserved = f["reservedConcurrency"]
    lines = [
        f"Name:            {f['name']}",
        f"Namespace:       {f['namespace']}",
        f"ARN:             {f.get('arn') or '-'}",
        f"Concurrency:     {f['inFlight']} in flight, cap {_cell(f['cap'])}, reserved {_cell(reserved)}"
        + (f" (granted {f['reservedGranted']})" if f.get("reservedGranted") is not None else ""),
    ]
    if f.get("reservationRejected"):
        lines.append(f"  Rejected:      {f['reservationRejected']}")
    lines += [
        f"Provisioned:     {f['provisioned']['live']}/{f['provisioned']['target']}"
        f" (spill-over invocations: {f['spilloverInvocations']})",
        f"Starts:          {f['coldStarts']} cold, {f['warmStarts']} warm",
        f"Last {duration(recent['windowSeconds'])}:".ljust(17)
        + f"{recent['invocations']} invocations, p50 {ms(recent['p50Ms'])}, p99 {ms(recent['p99Ms'])}",
    ]
    if f.get("lastStartError"):
        lines.append(f"Last start error: {f['lastStartError']}")
    lines.append("Environments:")
    envs = f["environments"]
    if envs:
        rows = [
            [
                e["id"],
                e["state"],
                "yes" if e["provisioned"] else "no",
                e["version"],
                duration(e["ageSeconds"]),
                e["invocations"],
                ms(e["initDurationMs"]),
            ]
            for e in envs
        ]
        t = table(("ID", "STATE", "PROVISIONED", "VERSION", "AGE", "INVOCATIONS", "INIT"), rows)
        lines += ["  " + line for line in t.splitlines()]
    else:
        lines.append("  <none>")
    lines.append("Throttles:")
    if f["throttles"]:
        rows = [[r, n, recent["throttles"].get(r, 0)] for r, n in f["throttles"].items()]
        t = table(("REASON", "TOTAL", f"LAST-{duration(recent['windowSeconds'])}"), rows)
        lines += ["  " + line for line in t.splitlines()]
    else:
        lines.append("  <none>")
    lines.append("Recent throttles:")
    if recent["lastThrottles"]:
        rows = [[duration(t["ageSeconds"]) + " ago", t["reason"]] for t in recent["lastThrottles"]]
        lines += ["  " + line for line in table(("WHEN", "REASON"), rows).splitlines()]
    else:
        lines.append("  <none>")
    return "\n".join(lines)


def invoke_summary(meta: Mapping[str, Any]) -> list[str]:
    """The lines after an invoke's result (on stderr): how it ran and its REPORT line."""
    if meta.get("throttle"):
        return [f"throttled: {meta['throttle']} (retry after {meta.get('retryAfter') or '?'} s)"]
    out = []
    if meta.get("coldStart") is not None:
        how = "cold start" if meta["coldStart"] else "warm"
        if meta.get("initDurationMs") is not None:
            how += f" (init {meta['initDurationMs']} ms)"
        env = meta.get("environmentId") or "-"
        source = meta.get("environmentSource")
        out.append(f"{how}, environment {env}" + (f" ({source})" if source else ""))
    if meta.get("functionError"):
        out.append(f"function error: {meta['functionError']}")
    if meta.get("report"):
        out.append(meta["report"])
    return out


def bench(name: str, s: Mapping) -> str:
    """``lambdakube bench``'s summary, like hey's."""

    def lat(d: Mapping) -> str:
        return "  ".join(f"{k[:-2]} {ms(d[k])}" for k in ("p50Ms", "p90Ms", "p99Ms", "maxMs"))

    lines = [
        f"{name}: {s['completed']}/{s['asked']} invocations, {s['concurrency']} at a time,"
        f" in {s['elapsedSeconds']:.2f} s ({_cell(s['perSecond'])}/s)",
        f"  succeeded {s['succeeded']}, function errors {s['functionErrors']}, throttled {s['throttled']},"
        f" errors {s['errors']}",
        f"  latency   {lat(s['latency'])}",
        f"  cold {s['cold']['count']:<5}{lat(s['cold'])}",
        f"  warm {s['warm']['count']:<5}{lat(s['warm'])}",
    ]
    return "\n".join(lines)
