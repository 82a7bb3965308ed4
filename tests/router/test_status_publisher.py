"""The router's Function status fields and activity Events, against a real kube-apiserver.

The publisher reads per-function counts from a callable; here that callable returns rows
the test sets (a seam, not a mock of the API: every write goes to the API server and is
read back with kubectl). One test at the end runs the whole router with the kubernetes
backend to check the engine feeds the publisher.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from lambdakube_router.backends.base import FunctionRef
from lambdakube_router.activity import ActivityRow
from lambdakube_router.limits import RESERVED_EXCEEDED
from lambdakube_router.informer import ApiSession
from lambdakube_router.kube_api import KubeApi
from lambdakube_router.status_publisher import StatusPublisher
from tests.router.conftest import function, kubectl


HELLO = """
def handler(event, context):
    return {"ok": True}
"""

OPERATOR_STATUS = {
    "observedGeneration": 1,
    "ready": 2,
    "starting": 1,
    "provisioned": 2,
    "specHash": "abc123",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ],
}


def kube_for(configuration) -> tuple[KubeApi, ApiSession]:
    http = ApiSession(configuration)
    return KubeApi(http, configuration), http


@pytest.fixture
async def kube(control_plane):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    api, http = kube_for(client.configuration)
    client.close()
    yield api
    await http.close()


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def create_function(cp, namespace: str, name: str = "hello") -> dict:
    await kubectl(
        cp, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(function(name, HELLO, namespace=namespace))
    )
    await kubectl(
        cp,
        "patch",
        "function",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": OPERATOR_STATUS}),
    )
    return await get_fn(cp, namespace, name)


async def get_fn(cp, namespace: str, name: str = "hello") -> dict:
    out = await kubectl(cp, "get", "function", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)


async def events(cp, namespace: str, name: str = "hello") -> list[dict]:
    out = await kubectl(
        cp, "get", "events", "-n", namespace, "-o", "json", "--field-selector", f"involvedObject.name={name}"
    )
    return json.loads(out.stdout)["items"]


def publisher_for(kube, rows: list, clock=None, **kw) -> StatusPublisher:
    return StatusPublisher(kube, lambda: list(rows), clock=clock or Clock(), instance="router-test", **kw)


@pytest.mark.cluster
async def test_status_fields_land_and_operator_fields_stay(control_plane, namespace, crds, kube):
    fn = await create_function(control_plane, namespace)
    ref = FunctionRef(namespace, "hello", fn["metadata"]["uid"])
    rows = [ActivityRow(ref, busy=2, idle=3, cold_starts=5)]
    publisher = publisher_for(kube, rows)
    try:
        await publisher.tick()
        status = (await get_fn(control_plane, namespace))["status"]
        assert (status["busy"], status["idle"], status["coldStarts"]) == (2, 3, 5)
        for key, value in OPERATOR_STATUS.items():
            assert status[key] == value, key  # operator-owned fields untouched

        # The operator writing its fields afterwards does not disturb ours either.
        await kubectl(
            control_plane,
            "patch",
            "function",
            "hello",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"ready": 4}}),
        )
        status = (await get_fn(control_plane, namespace))["status"]
        assert (status["ready"], status["busy"], status["idle"], status["coldStarts"]) == (4, 2, 3, 5)
    finally:
        await publisher.close()


@pytest.mark.cluster
async def test_no_write_when_nothing_changed(control_plane, namespace, crds, kube):
    fn = await create_function(control_plane, namespace)
    ref = FunctionRef(namespace, "hello", fn["metadata"]["uid"])
    rows = [ActivityRow(ref, busy=1, idle=0, cold_starts=0)]
    publisher = publisher_for(kube, rows)
    try:
        await publisher.tick()
        rv = (await get_fn(control_plane, namespace))["metadata"]["resourceVersion"]
        for _ in range(3):
            await publisher.tick()
        assert (await get_fn(control_plane, namespace))["metadata"]["resourceVersion"] == rv
        assert publisher.status_writes == 1

        rows[0] = ActivityRow(ref, busy=0, idle=1, cold_starts=0)
        await publisher.tick()
        after = await get_fn(control_plane, namespace)
        assert after["metadata"]["resourceVersion"] != rv
        assert (after["status"]["busy"], after["status"]["idle"]) == (0, 1)
        assert publisher.status_writes == 2
    finally:
        await publisher.close()


@pytest.mark.cluster
async def test_events_have_reason_type_owner_and_are_rate_limited(control_plane, namespace, crds, kube):
    fn = await create_function(control_plane, namespace)
    uid = fn["metadata"]["uid"]
    ref = FunctionRef(namespace, "hello", None)  # no UID known: the publisher finds it
    clock = Clock()
    rows = [ActivityRow(ref, 1, 0, 3, {RESERVED_EXCEEDED: 17}, (0.010, 0.012, 0.020))]
    publisher = publisher_for(kube, rows, clock)
    try:
        await publisher.tick()
        evs = await events(control_plane, namespace)
        by_reason = {e["reason"]: e for e in evs}
        assert sorted(by_reason) == ["ColdStart", "Throttled"]
        cold, throttled = by_reason["ColdStart"], by_reason["Throttled"]
        assert cold["type"] == "Normal"
        assert cold["message"] == "3 cold starts in the last 60s, init p50 12 ms"
        assert throttled["type"] == "Warning"
        assert throttled["message"] == f"17 invocations throttled in the last 60s: {RESERVED_EXCEEDED}"
        for e in evs:
            inv = e["involvedObject"]
            assert (inv["kind"], inv["name"], inv["namespace"], inv["uid"]) == ("Function", "hello", namespace, uid)
            assert inv["apiVersion"] == "lambdakube.dev/v1alpha1"
            assert e["source"]["component"] == "lambdakube-router"
            assert e["reportingComponent"] == "lambdakube-router"
            assert e["reportingInstance"] == "router-test"

        # More of both within the minute: batched, nothing posted.
        for step in range(1, 5):
            clock.now += 10
            rows[0] = ActivityRow(ref, 1, 0, 3 + step, {RESERVED_EXCEEDED: 17 + step}, ())
            await publisher.tick()
        assert len(await events(control_plane, namespace)) == 2

        clock.now += 20  # a minute after the first ones
        await publisher.tick()
        evs = await events(control_plane, namespace)
        assert len(evs) == 4
        assert sorted(e["message"] for e in evs) == sorted(
            [
                "3 cold starts in the last 60s, init p50 12 ms",
                f"17 invocations throttled in the last 60s: {RESERVED_EXCEEDED}",
                "4 cold starts in the last 60s",
                f"4 invocations throttled in the last 60s: {RESERVED_EXCEEDED}",
            ]
        )
        assert publisher.events_posted == 4
    finally:
        await publisher.close()


@pytest.mark.cluster
async def test_deleted_function_is_dropped(control_plane, namespace, crds, kube, caplog):
    fn = await create_function(control_plane, namespace)
    ref = FunctionRef(namespace, "hello", fn["metadata"]["uid"])
    rows = [ActivityRow(ref, 1, 0, 0)]
    publisher = publisher_for(kube, rows)
    try:
        await publisher.tick()
        await kubectl(control_plane, "delete", "function", "hello", "-n", namespace)
        rows[0] = ActivityRow(ref, 0, 1, 1)
        with caplog.at_level("INFO", logger="lambdakube_router.status_publisher"):
            await publisher.tick()  # 404: dropped, no exception
            await publisher.tick()  # and not retried
        gone = [r for r in caplog.records if "404" in r.getMessage()]
        assert len(gone) == 1 and publisher.status_writes == 1

        # A new Function of the same name (new UID) is published again.
        fn = await create_function(control_plane, namespace)
        rows[0] = ActivityRow(FunctionRef(namespace, "hello", fn["metadata"]["uid"]), 0, 1, 1)
        await publisher.tick()
        assert (await get_fn(control_plane, namespace))["status"]["coldStarts"] == 1
    finally:
        await publisher.close()


@pytest.mark.cluster
async def test_api_failures_are_retried_next_tick(control_plane, namespace, crds, kube, caplog):
    from kubernetes import client as k8s

    fn = await create_function(control_plane, namespace)
    ref = FunctionRef(namespace, "hello", fn["metadata"]["uid"])
    rows = [ActivityRow(ref, 1, 1, 1, {RESERVED_EXCEEDED: 1})]
    # Same API server, a token it does not know: every call is refused (401).
    cfg = k8s.Configuration()
    cfg.host = kube.cfg.host
    cfg.ssl_ca_cert = kube.cfg.ssl_ca_cert
    cfg.api_key = {"authorization": "Bearer not-a-valid-token"}
    bad, bad_http = kube_for(cfg)
    publisher = publisher_for(bad, rows)
    try:
        with caplog.at_level("WARNING", logger="lambdakube_router.status_publisher"):
            await publisher.tick()
            await publisher.tick()
        assert publisher.status_writes == 0 and publisher.events_posted == 0
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 3  # status, ColdStart, Throttled: once each, not once per tick
        # Same publisher state, working credentials: the pending write and Event go out.
        publisher.kube = kube
        await publisher.tick()
        status = (await get_fn(control_plane, namespace))["status"]
        assert (status["busy"], status["idle"], status["coldStarts"]) == (1, 1, 1)
        assert sorted(e["reason"] for e in await events(control_plane, namespace)) == ["ColdStart", "Throttled"]
    finally:
        await publisher.close()
        await bad_http.close()


@pytest.mark.cluster
async def test_publisher_loop_with_a_tiny_interval(control_plane, namespace, crds, kube):
    fn = await create_function(control_plane, namespace)
    ref = FunctionRef(namespace, "hello", fn["metadata"]["uid"])
    rows = [ActivityRow(ref, 0, 0, 0)]
    publisher = StatusPublisher(kube, lambda: list(rows), interval=0.05, instance="router-test")
    publisher.start()
    try:
        rows[0] = ActivityRow(ref, 0, 2, 2)
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            status = (await get_fn(control_plane, namespace))["status"]
            if (status.get("idle"), status.get("coldStarts")) == (2, 2):
                break
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.1)
    finally:
        await publisher.close()


@pytest.mark.cluster
async def test_router_with_kubernetes_backend_publishes_its_activity(
    control_plane, namespace, crds, aiohttp_client, tmp_path
):
    """End to end through the app wiring: the router with the kubernetes backend starts the
    publisher, and the engine's throttles reach the Function as status and an Event.
    (reservedConcurrency 0 throttles every call, so no pod has to run.)"""
    from lambdakube_router.app import init_app
    from lambdakube_router.backends.kubernetes import KubernetesBackend
    from tests.router.conftest import Router, router_config

    doc = function("hello", HELLO, namespace=namespace, reservedConcurrency=0)
    await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    backend = KubernetesBackend(kubeconfig=str(control_plane.kubeconfig))
    config = router_config(tmp_path, doc, backend=backend, namespace=namespace, status_interval_seconds=0.1)
    router = Router(await aiohttp_client(await init_app(config)), None, config)
    try:
        for _ in range(3):
            status, _, body = await router.invoke_json("hello", {})
            assert status == 429 and body["Reason"] == RESERVED_EXCEEDED
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            st = (await get_fn(control_plane, namespace)).get("status", {})
            evs = await events(control_plane, namespace)
            if (st.get("busy"), st.get("idle"), st.get("coldStarts")) == (0, 0, 0) and evs:
                break
            assert asyncio.get_running_loop().time() < deadline, (st, evs)
            await asyncio.sleep(0.1)
        [ev] = evs
        assert (ev["type"], ev["reason"]) == ("Warning", "Throttled")
        assert ev["message"] == f"3 invocations throttled in the last 60s: {RESERVED_EXCEEDED}"
    finally:
        await router.client.close()


async def test_engine_rows_report_cold_starts_and_idle(make_router):
    """The production row source: a real cold start (local backend) is counted, with its
    init duration, and the environment is idle afterwards."""
    from lambdakube_router import keys
    from lambdakube_router.status_publisher import engine_rows

    router = await make_router(function("hello", HELLO), generic_pool_size=0)
    status, headers, _ = await router.invoke_json("hello", {})
    assert status == 200 and headers["X-Cold-Start"] == "true"
    [row] = engine_rows(router.app[keys.ENGINE])()
    assert (row.ref.name, row.busy, row.idle, row.cold_starts) == ("hello", 0, 1, 1)
    assert len(row.recent_inits) == 1 and row.recent_inits[0] is not None
    assert row.throttles == {}
