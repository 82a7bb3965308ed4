"""Prometheus series of the event source mappings (``metrics`` style).

Counters are updated where batches happen, with label children cached per mapping;
the gauges (lag, pollers) are read from the manager's table at scrape time. ``forget``
removes a deleted mapping's series, as ``Metrics.forget`` does a function's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LABELS = ["namespace", "mapping", "source"]


class _Gauges(Collector):
    def __init__(self, rows: Callable[[], Iterable[tuple[str, str, str, int, int]]]) -> None:
        self.rows = rows

    def collect(self):
        lag = GaugeMetricFamily(
            "lambdakube_event_source_lag",
            "Records waiting in a mapping's source (a queue's visible messages)",
            labels=LABELS,
        )
        pollers = GaugeMetricFamily(
            "lambdakube_event_source_pollers", "Pollers (concurrent batches) a mapping runs now", labels=LABELS
        )
        for namespace, mapping, kind, n_lag, n_pollers in self.rows():
            lag.add_metric([namespace, mapping, kind], n_lag)
            pollers.add_metric([namespace, mapping, kind], n_pollers)
        yield from (lag, pollers)


class EventSourceMetrics:
    def __init__(
        self, registry: CollectorRegistry, rows: Callable[[], Iterable[tuple[str, str, str, int, int]]]
    ) -> None:
        self.batches = Counter(
            "lambdakube_event_source_batches",
            "Batches a mapping invoked its function with, by the invocation's result",
            LABELS + ["result"],
            registry=registry,
        )
        self.records = Counter(
            "lambdakube_event_source_records", "Records delivered to the function", LABELS, registry=registry
        )
        self.failures = Counter(
            "lambdakube_event_source_failures",
            "Records that failed (a function error, a reported item failure, expired, or sent to onFailure)",
            LABELS,
            registry=registry,
        )
        self.filtered = Counter(
            "lambdakube_event_source_filtered", "Records dropped by filterCriteria", LABELS, registry=registry
        )
        registry.register(_Gauges(rows))
        self._results: dict[tuple[str, str, str], set[str]] = {}
        #: A Kafka mapping's lag by partition (``MappingMetrics.partition_lag``).
        self.partition_lag = Gauge(
            "lambdakube_event_source_partition_lag",
            "Records in a Kafka partition after the mapping's commit point",
            LABELS + ["topic", "partition"],
            registry=registry,
        )
        self._partitions: dict[tuple[str, str, str], set[tuple[str, str]]] = {}

    def for_mapping(self, namespace: str, name: str, kind: str, pollers: Callable[[int], None]) -> MappingMetrics:
        return MappingMetrics(self, (namespace, name, kind), pollers)

    def forget(self, namespace: str, name: str, kind: str) -> None:
        labels = (namespace, name, kind)
        for metric in (self.records, self.failures, self.filtered):
            try:
                metric.remove(*labels)
            except KeyError:
                pass
        for result in self._results.pop(labels, set()):
            try:
                self.batches.remove(*labels, result)
            except KeyError:
                pass
        for topic, partition in self._partitions.pop(labels, set()):
            try:
                self.partition_lag.remove(*labels, topic, partition)
            except KeyError:
                pass


class MappingMetrics:
    """One mapping's ``source.PollerMetrics``."""

    def __init__(self, m: EventSourceMetrics, labels: tuple[str, str, str], pollers: Callable[[int], None]) -> None:
        self._m = m
        self._labels = labels
        self._pollers = pollers
        self._records = m.records.labels(*labels)
        self._failures = m.failures.labels(*labels)
        self._filtered = m.filtered.labels(*labels)
        self._batches: dict[str, Any] = {}
        #: The last lag reported (the status's and the gauge's).
        self.last_lag = 0

    def batch(self, result: str) -> None:
        c = self._batches.get(result)
        if c is None:
            c = self._batches[result] = self._m.batches.labels(*self._labels, result)
            self._m._results.setdefault(self._labels, set()).add(result)
        c.inc()

    def records(self, n: int) -> None:
        self._records.inc(n)

    def failures(self, n: int) -> None:
        self._failures.inc(n)

    def filtered(self, n: int) -> None:
        self._filtered.inc(n)

    def lag(self, n: int) -> None:
        self.last_lag = n

    def partition_lag(self, topic: str, partition: int, n: int) -> None:
        """A Kafka poller's lag of one partition (the poller calls it when present)."""
        key = (topic, str(partition))
        self._m._partitions.setdefault(self._labels, set()).add(key)
        self._m.partition_lag.labels(*self._labels, *key).set(n)

    def poller_started(self) -> None:
        self._pollers(+1)

    def poller_stopped(self) -> None:
        self._pollers(-1)
