"""Prometheus metrics of the operator (default registry; served by ``__main__``)."""

from __future__ import annotations

from collections import Counter as _Tally

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("lambdakube_operator_reconcile_total", "Function reconcile passes", ["trigger"])
RECONCILE_ERRORS = Counter(
    "lambdakube_operator_reconcile_errors_total", "Function reconcile passes that failed", ["trigger"]
)
RECONCILE_SECONDS = Histogram(
    "lambdakube_operator_reconcile_duration_seconds",
    "Duration of one Function reconcile pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PODS_CREATED = Counter("lambdakube_operator_pods_created_total", "Environment pods created by the operator", ["role"])
PODS_DELETED = Counter("lambdakube_operator_pods_deleted_total", "Environment pods deleted by the operator", ["reason"])
PODS_DRAINED = Counter("lambdakube_operator_pods_drained_total", "Environment pods marked draining (older spec)")
QUOTA_REJECTIONS = Gauge(
    "lambdakube_operator_rejected_reservations", "Functions whose reservation does not fit", ["namespace"]
)
FUNCTIONS = Gauge("lambdakube_operator_functions", "Functions by condition and status", ["condition", "status"])

_conditions: dict[tuple[str, str], dict[str, str]] = {}
_published: set[tuple[str, str]] = set()


def observe_conditions(namespace: str, name: str, conditions: list[dict] | None) -> None:
    _conditions[(namespace, name)] = {c["type"]: c["status"] for c in conditions or ()}
    _publish()


def forget(namespace: str, name: str) -> None:
    _conditions.pop((namespace, name), None)
    _publish()


def _publish() -> None:
    tally = _Tally((t, s) for conds in _conditions.values() for t, s in conds.items())
    for key in _published - set(tally):  # series that dropped to zero
        FUNCTIONS.labels(*key).set(0)
    for key, n in tally.items():
        FUNCTIONS.labels(*key).set(n)
    _published.update(tally)
