"""A Kafka EventSourceMapping declared as a manifest, run by the router's mapping manager
(``pollers.manager``) against a real broker: onFailure into the router's durable queue,
the mapping's status (state, lag, last result), and a whole router restart mid-batch."""

from __future__ import annotations

from lambdakube_router import keys
from lambdakube_router.app import init_app
from tests.kafka.harness import HANDLER, batches, eventually, handler_env, produce, wait_committed
from tests.router.conftest import Router, function, router_config

MAPPINGS = "/lambdakube/v1/namespaces/default/eventsourcemappings"
QUEUE = "/lambdakube/v1/namespaces/default/queues/{}/messages"


def kafka_mapping(bootstrap: str, topic: str, name: str = "orders", **spec) -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": name},
        "spec": {
            "functionName": "fn",
            "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [bootstrap]}},
            "topics": [topic],
            "startingPosition": "TRIM_HORIZON",
            "maximumBatchingWindowInSeconds": 0,
            **spec,
        },
    }


async def mapping_status(router: Router, name: str = "orders") -> dict | None:
    items = (await router.get_json(MAPPINGS))["eventSourceMappings"]
    return next((i["status"] for i in items if i["name"] == name), None)


async def test_a_kafka_mapping_manifest_polls_and_sends_the_poison_record_to_its_queue(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(2)
    spec = {"batchSize": 5, "maximumRetryAttempts": 1, "destinationConfig": {"onFailure": {"queue": "failed"}}}
    spec["selfManagedKafkaEventSourceConfig"] = {"consumerGroupId": "orders-group"}
    # In the log before the router starts: each partition's first batch holds all of it.
    await produce(kafka_broker.bootstrap, topic, [(0, None, "a"), (0, None, "poison"), (1, None, "b"), (1, None, "c")])
    router = await make_router(
        function("fn", HANDLER, env=handler_env(tmp_path)), kafka_mapping(kafka_broker.bootstrap, topic, **spec)
    )
    await wait_committed(kafka_broker.bootstrap, "orders-group", topic, 1, 2)
    await wait_committed(kafka_broker.bootstrap, "orders-group", topic, 0, 2)

    async def failed_messages():
        return (await router.get_json(QUEUE.format("failed")))["messages"]

    [message] = await eventually(failed_messages, what="the onFailure message")
    record = message["body"]  # the queue API shows a JSON body parsed
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == "lambdakube:default:function:fn"
    info = record["KafkaBatchInfo"]
    assert (info["topic"], info["partition"], info["firstOffset"], info["lastOffset"]) == (topic, 0, 0, 1)
    assert set(record["payload"]["records"]) == {f"{topic}-0"}

    # The partition moved on: a later record is processed, and the status says so.
    await produce(kafka_broker.bootstrap, topic, [(0, None, "z")])
    await wait_committed(kafka_broker.bootstrap, "orders-group", topic, 0, 3)

    async def settled():
        st = await mapping_status(router)
        return st if st and st.get("lag") == 0 and st.get("lastProcessingResult") == "OK" else None

    st = await eventually(settled, what="lag 0 and OK in the mapping's status")
    assert st["state"] == "Enabled"
    async with router.client.session.get(router.url("/metrics")) as resp:
        metrics = await resp.text()
    m = 'mapping="orders",namespace="default"'  # prometheus_client sorts the labels
    for p in (0, 1):
        assert (
            f'lambdakube_event_source_partition_lag{{{m},partition="{p}",source="kafka",topic="{topic}"}} 0.0'
            in metrics
        )
    # 2 + 2 (its retry) + 2 + 1 records delivered; the failed batch's two, twice, failed.
    assert f'lambdakube_event_source_records_total{{{m},source="kafka"}} 7.0' in metrics
    assert f'lambdakube_event_source_failures_total{{{m},source="kafka"}} 4.0' in metrics
    calls = sorted((b["keys"][0], b["offsets"]) for b in batches(tmp_path))
    assert calls == [(f"{topic}-0", [0, 1]), (f"{topic}-0", [0, 1]), (f"{topic}-0", [2]), (f"{topic}-1", [0, 1])]


async def test_a_router_restart_mid_batch_redelivers_the_batch_and_loses_nothing(
    aiohttp_client, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(1)
    hold = tmp_path / "hold"
    hold.touch()
    fn = function("fn", HANDLER, env=handler_env(tmp_path, HOLD=str(hold)), timeoutSeconds=60)
    mapping = kafka_mapping(kafka_broker.bootstrap, topic, batchSize=2)
    config = router_config(tmp_path, fn, mapping)
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in ("a", "b", "hold", "d", "e")])
    app = await init_app(config)
    client = await aiohttp_client(app)
    group = "lambdakube-default-orders"
    await eventually(lambda: any(2 in b["offsets"] for b in batches(tmp_path)), what="the held batch started")
    await wait_committed(kafka_broker.bootstrap, group, topic, 0, 2)
    engine = app[keys.ENGINE]
    assert engine.get("default", "fn").limits.functions["fn"].in_flight == 1
    await client.close()  # the router stops with offsets 2..3 in the handler, uncommitted
    hold.unlink()

    app2 = await init_app(router_config(tmp_path, fn, mapping))
    await aiohttp_client(app2)
    await wait_committed(kafka_broker.bootstrap, group, topic, 0, 5)
    delivered = [o for b in batches(tmp_path) for o in b["offsets"]]
    assert sorted(set(delivered)) == [0, 1, 2, 3, 4]
    assert sorted(o for o in set(delivered) if delivered.count(o) > 1) == [2, 3]


async def test_a_bad_filter_fails_the_mapping_and_a_missing_topic_is_a_problem(make_router, kafka_broker, tmp_path):
    bad_filter = {"filters": [{"pattern": '{"value": {"kind": [{"no-such-operator": 1}]}}'}]}
    router = await make_router(
        function("fn", HANDLER, env=handler_env(tmp_path)),
        kafka_mapping(kafka_broker.bootstrap, "orders", name="bad-filter", filterCriteria=bad_filter),
        kafka_mapping(kafka_broker.bootstrap, "no-such-topic", name="no-topic"),
    )

    async def state_of(name: str, predicate):
        st = await mapping_status(router, name)
        return st if st and predicate(st) else None

    failed = await eventually(lambda: state_of("bad-filter", lambda s: s.get("state") == "Failed"), what="Failed")
    assert "filterCriteria" in failed["stateTransitionReason"]
    problem = await eventually(
        lambda: state_of("no-topic", lambda s: "does not exist" in (s.get("lastProcessingResult") or "")),
        what="a PROBLEM for the missing topic",
    )
    assert problem["state"] != "Failed"  # retried: the topic may yet be created
    assert batches(tmp_path) == []


async def test_the_functions_reserved_concurrency_caps_the_pollers_without_throttles(
    make_router, kafka_broker, make_topic, tmp_path
):
    """Four partitions, reservedConcurrency 2: the manager's cap reaches the poller, so
    at most two batches run at once and none is ever throttled."""
    topic = await make_topic(4)
    await produce(kafka_broker.bootstrap, topic, [(i % 4, None, f"v{i}") for i in range(24)])
    router = await make_router(
        function("fn", HANDLER, env=handler_env(tmp_path, DWELL="0.1"), reservedConcurrency=2),
        kafka_mapping(kafka_broker.bootstrap, topic, batchSize=2),
    )
    for p in range(4):
        await wait_committed(kafka_broker.bootstrap, "lambdakube-default-orders", topic, p, 6)
    peaks = [b["peak"] for b in batches(tmp_path)]
    assert max(peaks) == 2, peaks
    async with router.client.session.get(router.url("/metrics")) as resp:
        metrics = await resp.text()
    assert 'result="success"' in metrics and 'result="throttled"' not in metrics
