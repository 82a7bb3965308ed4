"""Event source mappings from a real kube-apiserver: the router's informer brings them,
its pollers run them, and their status (state, lag, lastProcessingResult) lands in each
object's status subresource, where ``kubectl get esm`` shows it. Environments are the
local backend's processes (the kubernetes backend's pods are another file's subject)."""

from __future__ import annotations

import json

import pytest
import yaml

from lambdakube import crdgen
from lambdakube_router.app import init_app
from lambdakube_router.pollers import source as source_registry
from lambdakube_router.sources import KubernetesSource
from tests.router.conftest import Router, function, kubectl, router_config
from tests.router.test_event_sources import RECORDER, bodies

pytestmark = pytest.mark.cluster


def mapping(name: str, namespace: str, **spec) -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"functionName": "consumer", **spec},
    }


async def apply(cp, namespace, *docs):
    await kubectl(cp, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


async def esm_status(cp, namespace, name) -> dict:
    out = await kubectl(cp, "get", "esm", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout).get("status") or {}


async def test_mappings_from_the_api_server_poll_and_publish_status(
    control_plane, namespace, crds, aiohttp_client, tmp_path, monkeypatch
):
    # This router has no Kafka poller (as a build without the Kafka client would not):
    # its Kafka mappings must fail with the reason while the queue mapping runs.
    monkeypatch.setitem(source_registry.SOURCES, "kafka", "lambdakube_router.pollers.not_built:KafkaPoller")
    out = tmp_path / "seen.jsonl"
    await apply(
        control_plane,
        namespace,
        function("consumer", RECORDER, namespace=namespace, env={"OUT": str(out)}, timeoutSeconds=30),
        mapping("orders", namespace, queue={"name": "orders"}, batchSize=5, maximumBatchingWindowInSeconds=1),
        mapping("broken-filter", namespace, queue={"name": "orders"}, filterCriteria={"filters": [{"pattern": "{x"}]}),
        mapping(
            "from-kafka",
            namespace,
            selfManagedEventSource={"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:9"]}},
            topics=["t"],
            startingPosition="LATEST",
        ),
    )
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    router = Router(await aiohttp_client(app), app, config)
    router.client.session.headers["X-Lambdakube-Namespace"] = namespace

    orders = await router.eventually(
        lambda: _state(esm_status(control_plane, namespace, "orders"), "Enabled"), timeout=20
    )
    assert orders["observedGeneration"] == 1
    # the API server accepts what the models refuse (a filter that is not JSON): Failed, with why
    broken = await router.eventually(lambda: _state(esm_status(control_plane, namespace, "broken-filter"), "Failed"))
    assert "is not JSON" in broken["stateTransitionReason"]
    # a source kind this router has no poller for: Failed, with why, and the router runs on
    kafka = await router.eventually(lambda: _state(esm_status(control_plane, namespace, "from-kafka"), "Failed"))
    assert "cannot poll kafka sources" in kafka["stateTransitionReason"]

    # messages go through; "broken-filter" reads nothing, so each is delivered once
    async with router.client.session.post(
        router.url(f"/lambdakube/v1/namespaces/{namespace}/queues/orders/messages"),
        json={"Entries": [{"Id": f"m{i}", "MessageBody": f"order-{i}"} for i in range(3)]},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await router.eventually(lambda: sorted(bodies(out)) == ["order-0", "order-1", "order-2"], timeout=30)
    done = await router.eventually(
        lambda: _when(esm_status(control_plane, namespace, "orders"), lambda s: s.get("lastProcessingResult") == "OK")
    )
    assert (done["lag"], done["pollers"]) == (0, 0)
    table = (await kubectl(control_plane, "get", "esm", "orders", "-n", namespace)).stdout.splitlines()
    assert table[1].split()[:6] == ["orders", "consumer", "orders", "Enabled", "0", "0"]

    # disabling it through the API server stops it, and the status says so
    await kubectl(
        control_plane, "patch", "esm", "orders", "-n", namespace, "--type=merge", "-p", '{"spec":{"enabled":false}}'
    )
    off = await router.eventually(
        lambda: _state(esm_status(control_plane, namespace, "orders"), "Disabled"), timeout=20
    )
    assert off["observedGeneration"] == 2


async def _state(coro, state: str):
    status = await coro
    return status if status.get("state") == state else None


async def _when(coro, predicate):
    value = await coro
    return value if predicate(value) else None


async def test_a_cluster_without_the_mapping_crd_still_serves_functions(
    control_plane, namespace, crds, aiohttp_client, tmp_path, caplog
):
    """``helm upgrade`` does not install a chart's new CRDs: a router of this version on
    such a cluster starts and serves Functions, and says what to apply."""
    await apply(control_plane, namespace, function("consumer", RECORDER, namespace=namespace, env={"OUT": "/dev/null"}))
    await kubectl(control_plane, "delete", "crd", "eventsourcemappings.lambdakube.dev", "--wait=true")
    try:
        gone = Router(None, None, None)  # only its bounded ``eventually``

        async def unserved() -> bool:
            raw = f"/apis/lambdakube.dev/v1alpha1/namespaces/{namespace}/eventsourcemappings"
            out = await kubectl(control_plane, "get", "--raw", raw, check=False)
            return out.returncode != 0 and "NotFound" in out.stderr

        await gone.eventually(unserved, timeout=30)  # the API server stopped serving it
        source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
        config = router_config(tmp_path, source=source, namespace=namespace)
        config.snapshot = None
        app = await init_app(config)
        router = Router(await aiohttp_client(app), app, config)
        router.client.session.headers["X-Lambdakube-Namespace"] = namespace
        status, _, body = await router.invoke_json("consumer", {})
        assert status == 200, body
        assert "the EventSourceMapping CRD is not installed (kubectl apply -f crds/eventsourcemappings.yaml)" in (
            caplog.text
        )
    finally:  # back as the session's control plane had it (install_crds runs once per session)
        crd = crdgen.CRD_DIR / "eventsourcemappings.yaml"
        await kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
        await kubectl(
            control_plane,
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/eventsourcemappings.lambdakube.dev",
        )
