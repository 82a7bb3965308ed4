"""A small PromQL reader for the dashboard test: which metrics and labels an expression uses.

Not a full parser: a tokenizer and one pass with a stack of brackets, enough for the
expressions a dashboard holds (selectors with matchers, aggregations with ``by``/
``without``, functions, binary operators, ``on``/``ignoring`` groupings). Grafana's
variables are replaced first. An identifier is a metric when it is not a function, a
keyword, a label inside ``{...}`` or a label of a grouping; so the test never lists
names by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[{}(),=<>+\-*/^%])
    """,
    re.VERBOSE,
)
MATCH_OPS = {"=", "!=", "=~", "!~"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"bool", "offset", "and", "or", "unless"}
#: The functions and aggregations a dashboard may call (a typo fails the test).
FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "quantile", "stddev",
    "rate", "irate", "increase", "delta", "histogram_quantile", "clamp_min", "clamp_max",
    "abs", "vector", "scalar", "time", "max_over_time", "min_over_time", "avg_over_time",
    "label_replace", "absent",
}  # fmt: skip
#: Grafana's variables, as Prometheus would see them after Grafana's substitution.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


class PromQLError(ValueError):
    pass


@dataclass
class Uses:
    metrics: set[str] = field(default_factory=set)
    #: (metric, label) of every matcher in a selector.
    matchers: set[tuple[str, str]] = field(default_factory=set)
    #: Labels of by/without/on/ignoring/group_*: they must exist on the expression's metrics.
    grouping: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # a template variable: any value


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if m is None:
            raise PromQLError(f"cannot read {expr[pos : pos + 20]!r} at {pos} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
    return out


def uses(expr: str) -> Uses:
    toks = tokens(substitute(expr))
    found = Uses()
    stack: list[tuple[str, str | None]] = []  # (kind, the metric of a matcher block)
    for i, (kind, text) in enumerate(toks):
        before = toks[i - 1] if i else ("", "")
        after = toks[i + 1] if i + 1 < len(toks) else ("", "")
        top = stack[-1] if stack else ("", None)
        if text in ("(", "{"):
            if text == "{":
                metric = before[1] if before[0] == "ident" and before[1] in found.metrics else None
                stack.append(("matchers", metric))
            elif before[1] in GROUPING:
                stack.append(("grouping", None))
            else:
                stack.append(("paren", None))
            continue
        if text in (")", "}"):
            if not stack:
                raise PromQLError(f"unbalanced {text!r} in {expr!r}")
            opened = stack.pop()[0]
            if (text == "}") != (opened == "matchers"):
                raise PromQLError(f"mismatched {text!r} in {expr!r}")
            continue
        if kind != "ident":
            continue
        if top[0] == "grouping":
            found.grouping.add(text)
        elif top[0] == "matchers":
            if after[1] not in MATCH_OPS:
                raise PromQLError(f"label {text!r} without a matcher in {expr!r}")
            if top[1] is None:
                raise PromQLError(f"a selector without a metric name in {expr!r}")
            found.matchers.add((top[1], text))
        elif text in KEYWORDS:
            continue
        elif after[1] == "(" or after[1] in ("by", "without"):  # a call, or `sum by (..) (..)`
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text!r} in {expr!r}")
            found.functions.add(text)
        else:
            found.metrics.add(text)
    if stack:
        raise PromQLError(f"unclosed brackets in {expr!r}")
    return found


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>\w+)\)$")


def variable_query(query: str) -> tuple[str | None, str]:
    """Grafana's ``label_values(expr, label)`` query: the expression and the label."""
    m = LABEL_VALUES.match(query.strip())
    if m is None:
        raise PromQLError(f"not a label_values() query: {query!r}")
    return m.group("expr"), m.group("label")
