"""Lambda's event filtering (``filterCriteria``): which records a mapping processes.

Pure: ``compile_criteria`` checks the patterns once (a bad one fails the mapping with a
message, instead of every record), ``matches`` judges one record. The rules are
Lambda's (EventBridge's pattern language as event filtering documents it):

* a pattern is a JSON object; every key in it must match (AND); a key's value is a
  nested pattern (an object) or a list of conditions, any of which may match (OR);
* a condition is a literal (string, number, boolean, null: equal, numbers by value)
  or one object: ``prefix``, ``suffix``, ``equals-ignore-case``, ``wildcard`` (``*``
  any run of characters), ``anything-but`` (a value, a list, or ``{prefix: ..}`` /
  ``{suffix: ..}``), ``numeric`` (``[">", 0, "<=", 5]``), ``exists`` (true/false);
* a record's field that is a list matches when any element matches;
* only ``exists: false`` matches a missing field;
* several filters: a record is processed when any of them matches it (OR).

What a record looks like to the filter is the source's business: a queue message is
Lambda's SQS record with ``body`` parsed when it is JSON (``queue.filter_view``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_MISSING = object()
_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists"})
_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    """A pattern this module cannot judge records by."""


def compile_criteria(patterns: Sequence[str]) -> list[dict]:
    """The patterns (``filterCriteria.filters[].pattern``) parsed and checked."""
    out = []
    for i, text in enumerate(patterns):
        try:
            pattern = json.loads(text)
        except ValueError as exc:
            raise FilterError(f"filters[{i}].pattern is not JSON: {exc}") from None
        if not isinstance(pattern, dict) or not pattern:
            raise FilterError(f"filters[{i}].pattern must be a non-empty JSON object")
        try:
            _check(pattern)
        except FilterError as exc:
            raise FilterError(f"filters[{i}].pattern: {exc}") from None
        out.append(pattern)
    return out


def _check(pattern: dict, path: str = "") -> None:
    for key, sub in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(sub, dict):
            if not sub:
                raise FilterError(f"{where}: an empty object matches nothing")
            _check(sub, where)
        elif isinstance(sub, list):
            if not sub:
                raise FilterError(f"{where}: an empty list matches nothing")
            for cond in sub:
                _check_condition(cond, where)
        else:
            raise FilterError(f"{where}: must be an object or a list of conditions, got {json.dumps(sub)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        if isinstance(cond, list):
            raise FilterError(f"{where}: a condition cannot be a list")
        return
    if len(cond) != 1:
        raise FilterError(f"{where}: a condition object has exactly one operator, got {sorted(cond)}")
    op, arg = next(iter(cond.items()))
    if op not in _OPERATORS:
        raise FilterError(f"{where}: unknown operator {op!r} (known: {', '.join(sorted(_OPERATORS))})")
    if op in ("prefix", "suffix", "equals-ignore-case", "wildcard") and not isinstance(arg, str):
        raise FilterError(f"{where}: {op} takes a string")
    if op == "exists" and not isinstance(arg, bool):
        raise FilterError(f"{where}: exists takes true or false")
    if op == "numeric":
        if not isinstance(arg, list) or not arg or len(arg) % 2 or len(arg) > 4:
            raise FilterError(f"{where}: numeric takes [op, number] or [op, number, op, number]")
        for o, n in zip(arg[::2], arg[1::2], strict=True):
            if o not in _NUMERIC_OPS or not _is_number(n):
                raise FilterError(f"{where}: numeric: {o!r} {n!r} is not <op> <number>")
    if op == "anything-but":
        if isinstance(arg, dict):
            if (
                len(arg) != 1
                or next(iter(arg)) not in ("prefix", "suffix")
                or not isinstance(next(iter(arg.values())), str)
            ):
                raise FilterError(f"{where}: anything-but takes a value, a list, or {{prefix|suffix: string}}")
        elif isinstance(arg, list) and any(isinstance(v, dict | list) for v in arg):
            raise FilterError(f"{where}: anything-but's list holds plain values")


def matches_any(patterns: Sequence[dict], record: Any) -> bool:
    """True when no patterns are given or any of them matches ``record``."""
    return not patterns or any(matches(p, record) for p in patterns)


def matches(pattern: dict, record: Any) -> bool:
    for key, sub in pattern.items():
        value = record.get(key, _MISSING) if isinstance(record, dict) else _MISSING
        if isinstance(sub, dict):
            if isinstance(value, list):
                if not any(matches(sub, v) for v in value):
                    return False
            elif not matches(sub, value if isinstance(value, dict) else {}):
                return False
        elif not _leaf(sub, value):
            return False
    return True


def _leaf(conditions: list, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for cond in conditions:
        if isinstance(cond, dict) and "exists" in cond:
            if (value is not _MISSING) == cond["exists"]:
                return True
            continue
        if value is _MISSING:
            continue
        if any(_condition(cond, v) for v in values):
            return True
    return False


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _condition(cond: Any, v: Any) -> bool:
    if not isinstance(cond, dict):
        return _equal(cond, v)
    op, arg = next(iter(cond.items()))
    if op == "prefix":
        return isinstance(v, str) and v.startswith(arg)
    if op == "suffix":
        return isinstance(v, str) and v.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(v, str) and v.casefold() == arg.casefold()
    if op == "wildcard":
        return isinstance(v, str) and _wildcard(arg).fullmatch(v) is not None
    if op == "numeric":
        return _is_number(v) and all(_NUMERIC_OPS[o](v, n) for o, n in zip(arg[::2], arg[1::2], strict=True))
    if op == "anything-but":
        if isinstance(arg, dict):
            ((kind, text),) = arg.items()
            if not isinstance(v, str):
                return False
            return not (v.startswith(text) if kind == "prefix" else v.endswith(text))
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_equal(x, v) for x in excluded)
    return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
