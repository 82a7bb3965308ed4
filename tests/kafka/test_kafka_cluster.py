"""A Kafka EventSourceMapping on a real kube-apiserver: the CRD accepts Lambda's Kafka
fields, the router's informer brings the mapping, its poller reads the real broker, and
the status (state, lag, lastProcessingResult) lands in the object's status subresource."""

from __future__ import annotations

import json

import pytest
import yaml

from lambdakube_router.app import init_app
from lambdakube_router.sources import KubernetesSource
from tests.kafka.harness import HANDLER, batches, eventually, handler_env, produce, wait_committed
from tests.router.conftest import Router, function, kubectl, router_config

pytestmark = pytest.mark.cluster


async def esm_status(cp, namespace: str, name: str) -> dict:
    out = await kubectl(cp, "get", "esm", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout).get("status") or {}


async def test_a_kafka_mapping_from_the_api_server_polls_and_publishes_status(
    control_plane, namespace, crds, aiohttp_client, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(2)
    await produce(kafka_broker.bootstrap, topic, [(i % 2, f"k{i}", f"v{i}") for i in range(6)])
    mapping = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {
            "functionName": "fn",
            "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [kafka_broker.bootstrap]}},
            "topics": [topic],
            "startingPosition": "TRIM_HORIZON",
            "selfManagedKafkaEventSourceConfig": {"consumerGroupId": f"group-{namespace}"},
            "batchSize": 10,
            "maximumBatchingWindowInSeconds": 0,
            "parallelizationFactor": 2,
            "bisectBatchOnFunctionError": True,
            "maximumRetryAttempts": 1,
        },
    }
    fn = function("fn", HANDLER, namespace=namespace, env=handler_env(tmp_path))
    await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([fn, mapping]))
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    Router(await aiohttp_client(app), app, config)

    for p in (0, 1):
        await wait_committed(kafka_broker.bootstrap, f"group-{namespace}", topic, p, 3)
    assert sorted(o for b in batches(tmp_path) for o in b["offsets"]) == [0, 0, 1, 1, 2, 2]

    async def published():
        st = await esm_status(control_plane, namespace, "orders")
        return st if st.get("lag") == 0 and st.get("lastProcessingResult") == "OK" else None

    st = await eventually(published, what="the status written")
    assert st["state"] == "Enabled" and st["observedGeneration"] == 1
    table = (await kubectl(control_plane, "get", "esm", "orders", "-n", namespace)).stdout.splitlines()
    assert topic in table[1].split() and "Enabled" in table[1].split()
