"""Prometheus metrics, one ``CollectorRegistry`` per app (tests run several apps at once).

Why gauges come from a collector: environment counts and in-flight executions already
live in the pools and limits; reading them at scrape time is exact and costs nothing on
the hot path, where updating gauges per request would cost a lock each. Counters and
histograms are updated where the events happen, with label children cached per function.

Why ``forget``: a label child lives in its metric until removed, so without it every
function the router ever served would be exported (and kept in memory) for the router's
whole life. The engine calls ``forget`` where it removes a deleted function's pool; the
gauges need nothing, they are read from the live pools at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lambdakube_router.recent import Observed, Recent

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)


class _StateCollector(Collector):
    def __init__(
        self,
        source: Callable[[], Iterable[tuple]],
        ns_source: Callable[[], Iterable[tuple]],
        queue_source: Callable[[], dict[str, int]],
    ) -> None:
        self.source = source
        self.ns_source = ns_source
        self.queue_source = queue_source

    def collect(self):
        envs = GaugeMetricFamily(
            "lambdakube_environments",
            "Execution environments by state",
            labels=["namespace", "function", "state"],
        )
        conc = GaugeMetricFamily(
            "lambdakube_concurrent_executions",
            "In-flight executions of a function",
            labels=["namespace", "function"],
        )
        for namespace, function, counts, in_flight in self.source():
            for state, n in counts.items():
                envs.add_metric([namespace, function, state], n)
            conc.add_metric([namespace, function], in_flight)
        ns_conc = GaugeMetricFamily(
            "lambdakube_namespace_concurrent_executions",
            "In-flight executions in a namespace",
            labels=["namespace"],
        )
        for namespace, in_flight in self.ns_source():
            ns_conc.add_metric([namespace], in_flight)
        depth = GaugeMetricFamily(
            "lambdakube_async_queue_depth",
            "Async events stored and not yet finished",
            labels=["namespace"],
        )
        for namespace, n in self.queue_source().items():
            depth.add_metric([namespace], n)
        yield from (envs, conc, ns_conc, depth)


class _GenericPoolCollector(Collector):
    """The local backend's pre-warmed generic environments (``GenericPool.snapshot``)."""

    def __init__(self, source: Callable[[], dict]) -> None:
        self.source = source

    def collect(self):
        snap = self.source()
        available = GaugeMetricFamily(
            "lambdakube_generic_pool_available", "Pre-warmed generic environments ready to be specialised"
        )
        available.add_metric([], snap["available"])
        size = GaugeMetricFamily("lambdakube_generic_pool_size", "Target (and cap) of pre-warmed generic environments")
        size.add_metric([], snap["size"])
        spec = CounterMetricFamily(
            "lambdakube_generic_specialisations",
            "Generic environments taken for a cold start, by outcome"
            " (specialised, init_error, failed: fell back to a fresh environment)",
            labels=["result"],
        )
        for result, n in snap["specialisations"].items():
            spec.add_metric([result], n)
        yield from (available, size, spec)


class _AnnounceCollector(Collector):
    """Fresh pods' announces (``KubernetesBackend.announces``)."""

    def __init__(self, source: Callable[[], dict]) -> None:
        self.source = source

    def collect(self):
        family = CounterMetricFamily(
            "lambdakube_environment_announces",
            "Fresh pods' 'I am listening' announces, by result (accepted, refused)",
            labels=["result"],
        )
        for result, n in sorted(self.source().items()):
            family.add_metric([result], n)
        yield family


class _AsyncStoreCollector(Collector):
    """The async store's health (``AsyncStore.health``): available, and quarantines."""

    def __init__(self, source: Callable[[], Any]) -> None:
        self.source = source

    def collect(self):
        health = self.source()
        available = GaugeMetricFamily(
            "lambdakube_async_store_available",
            "1 while the async store can take events (open, trusted and writing), else 0",
        )
        available.add_metric([], 1 if health.ready else 0)
        quarantined = CounterMetricFamily(
            "lambdakube_async_store_quarantined",
            "Corrupt async store files moved aside (--quarantine-corrupt-store) since the router started",
        )
        quarantined.add_metric([], health.quarantined)
        yield from (available, quarantined)


class _ConnectionsCollector(Collector):
    def __init__(self, source: Callable[[], int], limit: int) -> None:
        self.source = source
        self.limit = limit

    def collect(self):
        yield GaugeMetricFamily("lambdakube_http_connections", "Open client connections", value=self.source())
        yield GaugeMetricFamily(
            "lambdakube_http_connections_limit", "Client connections above which new ones get 503", value=self.limit
        )


class _LoopLagMaxCollector(Collector):
    def __init__(self, source: Callable[[], float]) -> None:
        self.source = source

    def collect(self):
        yield GaugeMetricFamily(
            "lambdakube_event_loop_lag_max_seconds", "The worst event-loop lag since start", value=self.source()
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        fl = ["namespace", "function"]
        self.invocations = Counter(
            "lambdakube_invocations",
            "Invocations by result (success, function_error, throttled, error)",
            fl + ["result"],
            registry=r,
        )
        self.cold_starts = Counter("lambdakube_cold_starts", "Invocations served by a cold start", fl, registry=r)
        self.init_duration = Histogram(
            "lambdakube_init_duration_seconds",
            "Init duration of cold-started environments",
            fl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_duration = Histogram(
            "lambdakube_run_duration_seconds",
            "Handler run duration reported by the runtime",
            fl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "lambdakube_queue_wait_seconds",
            "Time from arrival until an environment was leased",
            fl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.throttles = Counter(
            "lambdakube_throttles",
            "Throttled invocations by reason",
            fl + ["reason"],
            registry=r,
        )
        self.spillover = Counter(
            "lambdakube_provisioned_spillover_invocations",
            "Invocations served by an on-demand env while the function has provisioned concurrency",
            fl,
            registry=r,
        )
        self.cold_start = Histogram(
            "lambdakube_cold_start_seconds",
            "Cold starts end to end, from asking for an environment to having it ready,"
            " by where it came from (generic: pre-warmed and specialised; fresh: started)",
            fl + ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redeliveries = Counter(
            "lambdakube_invoke_redeliveries",
            "Requests sent to another environment because the first one could not be"
            " connected to (nothing of the request was delivered: it ran at most once)",
            fl,
            registry=r,
        )
        self.recycled = Counter(
            "lambdakube_recycled_invocations",
            "Invocations stopped because another invocation of their environment timed out"
            " (perEnvironmentConcurrency > 1: the runtime process they shared was recycled)",
            fl,
            registry=r,
        )
        self.http_aborted = Counter(
            "lambdakube_http_aborted_requests",
            "Requests whose client hung up before its answer, by stage (body: while its"
            " body was read; response: while it was served)",
            ["stage"],
            registry=r,
        )
        self.http_closed = Counter(
            "lambdakube_http_closed_connections",
            "Connections the router answered and closed, by reason (body_timeout: 408;"
            " connection_cap: 503 without reading the request)",
            ["reason"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "lambdakube_event_loop_lag_seconds",
            "How much later than asked the router's event loop woke a timer (blocking work delays every request)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self._children: dict[tuple[str, str], FunctionMetrics] = {}

    def attach_state(self, source, ns_source, queue_source) -> None:
        self.registry.register(_StateCollector(source, ns_source, queue_source))

    def attach_generic_pool(self, source: Callable[[], dict]) -> None:
        self.registry.register(_GenericPoolCollector(source))

    def attach_announces(self, source: Callable[[], dict]) -> None:
        self.registry.register(_AnnounceCollector(source))

    def attach_async_store(self, source: Callable[[], Any]) -> None:
        self.registry.register(_AsyncStoreCollector(source))

    def attach_connections(self, source: Callable[[], int], limit: int) -> None:
        self.registry.register(_ConnectionsCollector(source, limit))

    def attach_loop_lag_max(self, source: Callable[[], float]) -> None:
        self.registry.register(_LoopLagMaxCollector(source))

    def for_function(self, namespace: str, function: str) -> FunctionMetrics:
        key = (namespace, function)
        fm = self._children.get(key)
        if fm is None:
            fm = self._children[key] = FunctionMetrics(self, namespace, function)
        return fm

    def forget(self, namespace: str, function: str) -> None:
        """Remove every series of a deleted function (counters and histograms).

        Its ``FunctionMetrics`` knows every label set it created (it is the only code
        that creates per-function children), so exactly those are removed. It is
        detached too: an invocation still finishing on the closing pool updates the
        children it already holds (no longer exported) and creates no new series. A
        function registered again under the same name starts from fresh series.
        """
        fm = self._children.pop((namespace, function), None)
        if fm is None:
            return
        fm._forgotten = True
        labels = (namespace, function)
        for metric in (
            self.cold_starts,
            self.init_duration,
            self.run_duration,
            self.queue_wait,
            self.spillover,
            self.redeliveries,
            self.recycled,
        ):
            metric.remove(*labels)
        for metric, extra in (
            (self.invocations, fm._results),
            (self.throttles, fm._throttles),
            (self.cold_start, fm._cold_start),
        ):
            for value in extra:
                metric.remove(*labels, value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FunctionMetrics:
    """Label children resolved once per function: the hot path does no label lookups."""

    __slots__ = (
        "_m",
        "_labels",
        "_results",
        "_throttles",
        "_cold_start",
        "_forgotten",
        "cold_starts",
        "init_duration",
        "run_duration",
        "queue_wait",
        "spillover",
        "redeliveries",
        "recycled",
        "recent",
    )

    def __init__(self, m: Metrics, namespace: str, function: str) -> None:
        self._m = m
        self._labels = (namespace, function)
        self._results: dict[str, Any] = {}
        self._throttles: dict[str, Any] = {}
        self._cold_start: dict[str, Any] = {}
        self._forgotten = False
        self.cold_starts = m.cold_starts.labels(namespace, function)
        self.init_duration = m.init_duration.labels(namespace, function)
        #: The last minutes' run durations and throttles (``recent``: the web view's p50/p99).
        self.recent = Recent()
        self.run_duration = Observed(m.run_duration.labels(namespace, function), self.recent)
        self.queue_wait = m.queue_wait.labels(namespace, function)
        self.spillover = m.spillover.labels(namespace, function)
        self.redeliveries = m.redeliveries.labels(namespace, function)
        self.recycled = m.recycled.labels(namespace, function)

    def result(self, result: str) -> None:
        c = self._results.get(result)
        if c is None:
            if self._forgotten:
                return
            c = self._results[result] = self._m.invocations.labels(*self._labels, result)
        c.inc()

    def cold_start(self, source: str, seconds: float) -> None:
        h = self._cold_start.get(source)
        if h is None:
            if self._forgotten:
                return
            h = self._cold_start[source] = self._m.cold_start.labels(*self._labels, source)
        h.observe(seconds)

    def throttle(self, reason: str) -> None:
        self.recent.throttled(reason)
        c = self._throttles.get(reason)
        if c is None:
            if self._forgotten:
                return
            c = self._throttles[reason] = self._m.throttles.labels(*self._labels, reason)
        c.inc()
