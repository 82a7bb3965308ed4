"""metav1.Condition bookkeeping (pure): ``lastTransitionTime`` moves only on a flip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lambdakube.formats import parse_rfc3339 as parse_time
from lambdakube.formats import rfc3339

__all__ = ["Cond", "find", "is_true", "merge", "parse_time", "rfc3339"]


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


def find(conditions: list[dict] | None, type_: str) -> dict | None:
    for c in conditions or ():
        if c.get("type") == type_:
            return c
    return None


def is_true(conditions: list[dict] | None, type_: str) -> bool:
    c = find(conditions, type_)
    return c is not None and c.get("status") == "True"


def merge(old: list[dict] | None, new: list[Cond], *, now: datetime, generation: int | None) -> list[dict]:
    """``new`` conditions in order, keeping each one's ``lastTransitionTime`` unless its
    status flipped; conditions of other types (someone else's) are kept after ours."""
    out: list[dict] = []
    for cond in new:
        before = find(old, cond.type)
        if before is not None and before.get("status") == cond.status and before.get("lastTransitionTime"):
            since = before["lastTransitionTime"]
        else:
            since = rfc3339(now)
        item = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since,
        }
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    ours = {c.type for c in new}
    out.extend(c for c in old or () if c.get("type") not in ours)
    return out
