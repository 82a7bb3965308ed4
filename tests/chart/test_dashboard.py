"""The Grafana dashboard in the chart: shipped for the sidecar when enabled, and every
PromQL expression in it names metrics and labels a real router's ``/metrics`` exposes
after a short real workload (so the dashboard cannot drift from ``metrics.py``).

The workload is real: a router with runtime processes on loopback (``make_router``),
cold and warm invocations, a function error, throttles of two Reasons, a provisioned
function with one spill-over, and an async event that stays queued (its function is
throttled), so that every series the dashboard reads has samples.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chart import promql
from tests.chart.conftest import CHART
from tests.router.conftest import function, make_router  # noqa: F401 - the fixture

DASHBOARD = CHART / "dashboards" / "lambdakube.json"

WORK = """
import time
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    time.sleep(event.get("sleep", 0))
    return "ok"
"""


def dashboard() -> dict:
    return json.loads(Path(DASHBOARD).read_text())


def expressions(d: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]


def test_the_chart_ships_it_for_the_sidecar_when_enabled(render):
    assert not [c for c in render().of("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    r = render(values={"grafana": {"dashboard": {"enabled": True, "namespace": "monitoring", "folder": "Serverless"}}})
    cm = r.one("ConfigMap", "lk-lambdakube-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Serverless"}
    assert json.loads(cm["data"]["lambdakube.json"]) == dashboard()


def test_it_has_what_the_issue_asks_for():
    titles = " | ".join(p["title"] for p in dashboard()["panels"]).lower()
    for want in ("invocations", "errors", "throttles by reason", "concurrency vs", "cold starts",
                 "init duration", "run duration", "async queue depth", "age", "spill-over",
                 "event source mappings: lag and pollers"):  # fmt: skip
        assert want in titles, want
    kinds = {p["title"]: p["type"] for p in dashboard()["panels"]}
    assert kinds["Init duration"] == kinds["Run duration"] == "heatmap"


READER_CASES = {
    "a selector": ('rate(m{a="x", b=~"$v"}[$__rate_interval])', {"m"}, {("m", "a"), ("m", "b")}, set()),
    "an aggregation": ("sum by (le, fn) (rate(h_bucket[5m]))", {"h_bucket"}, set(), {"le", "fn"}),
    "without, after": ("sum(x) without (a)", {"x"}, set(), {"a"}),
    "a binary with on": ("a / on (ns) group_left b", {"a", "b"}, set(), {"ns"}),
    "a quantile": ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))", {"h_bucket"}, set(), {"le"}),
}  # fmt: skip


@pytest.mark.parametrize("expr,metrics,matchers,grouping", READER_CASES.values(), ids=READER_CASES)
def test_the_promql_reader(expr, metrics, matchers, grouping):
    u = promql.uses(expr)
    assert (u.metrics, u.matchers, u.grouping) == (metrics, matchers, grouping)


@pytest.mark.parametrize("expr", ["sum_by (a) (x)", "rate(x{a}[5m])", "sum(x", "x{a=1)"])
def test_the_promql_reader_refuses(expr):
    with pytest.raises(promql.PromQLError):
        promql.uses(expr)


def scraped(text: str) -> dict[str, set[str]]:
    """Every sample name in a scrape and the label names its samples carry."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


async def test_every_expression_matches_what_the_router_exposes(make_router):  # noqa: F811 - the fixture
    router = await make_router(
        function("work", WORK),
        function("closed", WORK, reservedConcurrency=0, **{"async": {"maximumEventAgeSeconds": 3600}}),
        function("capped", WORK, maxConcurrency=1),
        function("prov", WORK, reservedConcurrency=5, provisionedConcurrency=1),
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": "in"},
            "spec": {"functionName": "work", "queue": {"name": "in"}},
        },
        queue_age_interval_seconds=0.05,
    )
    for payload in ({}, {}, {"fail": True}):
        assert (await router.invoke("work", payload))[0] == 200
    assert (await router.invoke("closed", {}))[0] == 429  # ReservedFunction...
    results = await asyncio.gather(*(router.invoke("capped", {"sleep": 0.5}) for _ in range(2)))
    assert sorted(r[0] for r in results) == [200, 429]  # ConcurrentInvocationLimitExceeded
    await router.eventually(lambda: router.pool("prov").provisioned_ready()[0] >= 1)
    results = await asyncio.gather(*(router.invoke("prov", {"sleep": 0.5}) for _ in range(2)))
    assert [r[0] for r in results] == [200, 200]  # one of them spilled over
    status, _, _ = await router.invoke("closed", {}, headers={"X-Amz-Invocation-Type": "Event"})
    assert status == 202  # stays queued: its function throttles every attempt
    # a queue event source mapping's batch (its lag, pollers, records, batches)
    async with router.client.session.post(
        router.url("/lambdakube/v1/namespaces/default/queues/in/messages"), json={"MessageBody": "{}"}
    ) as resp:
        assert resp.status == 200

    async def batch_counted():
        async with router.client.session.get(router.url("/metrics")) as resp:
            return "lambdakube_event_source_batches_total{" in await resp.text()

    await router.eventually(batch_counted)

    async def scrape_with_queue_age():
        async with router.client.session.get(router.url("/metrics")) as resp:
            text = await resp.text()
        return text if "lambdakube_async_queue_oldest_age_seconds{" in text else None

    exposed = scraped(await router.eventually(scrape_with_queue_age))
    d = dashboard()
    checked = 0
    for title, expr in expressions(d):
        u = promql.uses(expr)
        assert u.metrics, (title, expr)
        for metric in u.metrics:
            assert metric in exposed, f"{title}: {metric} is not in /metrics ({expr})"
        for metric, label in u.matchers:
            assert label in exposed[metric], f"{title}: {metric} has no label {label} ({expr})"
        for label in u.grouping:
            assert any(label in exposed[m] for m in u.metrics), f"{title}: no metric has label {label} ({expr})"
        checked += 1
    for var in d["templating"]["list"]:
        if var["type"] != "query":
            continue
        expr, label = promql.variable_query(var["query"])
        u = promql.uses(expr or "")
        assert all(label in exposed[m] for m in u.metrics) and all(lab in exposed[m] for m, lab in u.matchers)
    assert checked >= 20
    # and the workload reached what the panels show
    for name in ("lambdakube_provisioned_spillover_invocations_total", "lambdakube_throttles_total"):
        assert name in exposed
