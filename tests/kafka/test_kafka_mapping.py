"""A Kafka event source mapping against a real broker (``make kafka``) and a real router
(the local backend's runtime processes): ordering, failures, throttles, concurrency,
restarts and idling, each observed from the handler's side (tests/kafka/harness.py) and
from the broker's committed offsets."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from datetime import datetime, timezone

from lambdakube_router import keys
from lambdakube_router.pollers import source
from tests.kafka.harness import (
    HANDLER,
    batches,
    eventually,
    handler_env,
    mapping_spec,
    produce,
    seen,
    start_mapping,
    wait_committed,
)
from tests.router.conftest import function


def offsets_by_partition(tmp) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for b in batches(tmp):
        (key,) = b["keys"]  # one partition per invocation
        out[key] += b["offsets"]
    return out


async def test_records_reach_the_handler_in_order_per_partition_under_concurrency(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(4)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path, DWELL="0.02")))
    per_partition = 25
    items = [(i % 4, f"k{i}", f"v{i}") for i in range(4 * per_partition)]
    await produce(kafka_broker.bootstrap, topic, items)
    m = start_mapping(router, mapping_spec(kafka_broker.bootstrap, topic, batchSize=3), max_concurrency=lambda: 4)
    try:
        await eventually(
            lambda: sum(len(v) for v in offsets_by_partition(tmp_path).values()) >= len(items),
            what="all records handled",
        )
        for p in range(4):
            await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, p, per_partition)
        want_lag = {(topic, p): 0 for p in range(4)}
        await eventually(lambda: m.recorder.partition_lags == want_lag, what="lag 0 on every partition")
    finally:
        await m.stop()
    got = offsets_by_partition(tmp_path)
    assert got == {f"{topic}-{p}": list(range(per_partition)) for p in range(4)}  # in order, once each
    all_batches = batches(tmp_path)
    assert max(len(b["offsets"]) for b in all_batches) <= 3
    assert max(b["peak"] for b in all_batches) > 1, "the partitions never ran at once"
    # Lambda's self-managed Kafka event, as the handler received it.
    first = next(b for b in all_batches if b["keys"] == [f"{topic}-0"] and b["offsets"][0] == 0)
    assert first["eventSource"] == "SelfManagedKafka"
    assert first["bootstrapServers"] == kafka_broker.bootstrap
    rec = first["first"]
    assert rec["topic"] == topic and rec["partition"] == 0 and rec["offset"] == 0
    assert rec["timestampType"] == "CREATE_TIME" and isinstance(rec["timestamp"], int)
    assert base64.b64decode(rec["key"]) == b"k0" and base64.b64decode(rec["value"]) == b"v0"
    assert rec["headers"] == [{"source": list(b"test")}]
    assert m.recorder.record_count == len(items) and m.recorder.failure_count == 0
    assert m.recorder.batch_results["success"] == len(all_batches)
    assert source.OK in m.recorder.results


async def test_a_poison_record_goes_to_on_failure_after_its_retries_and_the_partition_moves_on(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in ("a", "b", "poison", "c", "d")])
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=1, maximumRetryAttempts=2)
    m = start_mapping(router, spec)
    try:
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 5)
        # More records after it: the partition is not stuck.
        await produce(kafka_broker.bootstrap, topic, [(0, None, "e")])
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 6)
    finally:
        await m.stop()
    calls = [b["offsets"] for b in batches(tmp_path)]
    assert calls == [[0], [1], [2], [2], [2], [3], [4], [5]]  # the poison record: once + 2 retries
    (record,) = m.failed
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["KafkaBatchInfo"]
    assert (info["topic"], info["partition"], info["firstOffset"], info["lastOffset"]) == (topic, 0, 2, 2)
    (lost,) = record["payload"]["records"][f"{topic}-0"]
    assert base64.b64decode(lost["value"]) == b"poison"
    assert m.recorder.failure_count == 3 and source.FUNCTION_FAILED in m.recorder.results


async def test_bisect_isolates_the_poison_record(make_router, kafka_broker, make_topic, tmp_path):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    values = ["a", "b", "c", "d", "e", "poison", "g", "h"]
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in values])
    spec = mapping_spec(
        kafka_broker.bootstrap, topic, batchSize=8, maximumRetryAttempts=1, bisectBatchOnFunctionError=True
    )
    m = start_mapping(router, spec)
    try:
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 8)
    finally:
        await m.stop()
    calls = [b["offsets"] for b in batches(tmp_path)]
    assert calls == [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [5], [6], [7]]
    (record,) = m.failed
    info = record["KafkaBatchInfo"]
    assert (info["firstOffset"], info["lastOffset"], info["batchSize"]) == (5, 5, 1)


async def test_a_partial_batch_response_commits_up_to_the_first_failure(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(1)
    hold = tmp_path / "hold"
    hold.touch()
    router = await make_router(
        function("fn", HANDLER, env=handler_env(tmp_path, PARTIAL="1", HOLD=str(hold)), timeoutSeconds=60)
    )
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in ("a", "b", "flaky", "hold-retry")])
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=10, functionResponseTypes=["ReportBatchItemFailures"])
    m = start_mapping(router, spec)
    group = m.poller.group_id
    try:
        # The retry (of the flaky record and the one after it) is held in the handler:
        # the broker holds the commit point of the partial response meanwhile.
        await eventually(lambda: len(batches(tmp_path)) == 2, what="the retry started")
        await wait_committed(kafka_broker.bootstrap, group, topic, 0, 2)
        hold.unlink()
        await wait_committed(kafka_broker.bootstrap, group, topic, 0, 4)
    finally:
        await m.stop()
    assert [b["offsets"] for b in batches(tmp_path)] == [[0, 1, 2, 3], [2, 3]]
    assert m.failed == [] and m.recorder.failure_count == 2
    assert m.recorder.results == [source.ITEM_FAILURES, source.OK]


async def test_a_throttled_batch_is_retried_without_spending_a_retry(make_router, kafka_broker, make_topic, tmp_path):
    topic = await make_topic(1)
    hold = tmp_path / "hold"
    hold.touch()
    router = await make_router(
        function("fn", HANDLER, env=handler_env(tmp_path, HOLD=str(hold)), reservedConcurrency=1, timeoutSeconds=60)
    )
    blocker = asyncio.create_task(router.app[keys.ENGINE].invoke("default", "fn", b'{"block": true}'))
    await eventually(lambda: any(e.get("block") for e in seen(tmp_path)), what="the blocker holds the slot")
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in ("a", "b", "c")])
    # maximumRetryAttempts 0: a throttle counted as a failure would send the batch away.
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=10, maximumRetryAttempts=0)
    m = start_mapping(router, spec, max_concurrency=lambda: 4)
    try:
        await eventually(lambda: m.recorder.batch_results["throttled"] >= 1, what="a throttle")
        assert batches(tmp_path) == []  # the throttled batch reached no handler
        hold.unlink()
        assert (await blocker).result == "success"
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 3)
    finally:
        await m.stop()
    assert [b["offsets"] for b in batches(tmp_path)] == [[0, 1, 2]]
    assert m.failed == [] and m.recorder.failure_count == 0
    assert source.THROTTLED in m.recorder.results and m.recorder.results[-1] == source.OK


async def test_maximum_concurrency_is_never_exceeded(make_router, kafka_broker, make_topic, tmp_path):
    topic = await make_topic(4)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path, DWELL="0.1")))
    await produce(kafka_broker.bootstrap, topic, [(i % 4, None, f"v{i}") for i in range(32)])
    m = start_mapping(router, mapping_spec(kafka_broker.bootstrap, topic, batchSize=2), max_concurrency=lambda: 2)
    try:
        await eventually(lambda: sum(len(b["offsets"]) for b in batches(tmp_path)) >= 32, what="all handled")
    finally:
        await m.stop()
    peaks = [b["peak"] for b in batches(tmp_path)]
    assert max(peaks) == 2, peaks  # reached, never passed
    assert m.poller.slots.peak == 2


async def test_a_restart_mid_batch_redelivers_only_the_uncommitted_records(
    make_router, kafka_broker, make_topic, tmp_path
):
    """At least once: the poller stops while a batch is in the handler; the next poller
    of the group delivers that batch again, and nothing else twice, nothing lost."""
    topic = await make_topic(1)
    hold = tmp_path / "hold"
    hold.touch()
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path, HOLD=str(hold)), timeoutSeconds=60))
    values = ["a", "b", "c", "d", "e", "hold", "g", "h", "i", "j"]
    await produce(kafka_broker.bootstrap, topic, [(0, None, v) for v in values])
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=3)
    first = start_mapping(router, spec)
    group = first.poller.group_id
    await eventually(lambda: any(5 in b["offsets"] for b in batches(tmp_path)), what="the held batch started")
    await wait_committed(kafka_broker.bootstrap, group, topic, 0, 3)
    await first.stop()  # mid-batch: offsets 3..5 are in the handler, uncommitted
    assert first.crashed() is None
    hold.unlink()
    second = start_mapping(router, spec, name="m1")
    try:
        await wait_committed(kafka_broker.bootstrap, group, topic, 0, 10)
    finally:
        await second.stop()
    delivered = [o for b in batches(tmp_path) for o in b["offsets"]]
    assert sorted(set(delivered)) == list(range(10))  # nothing lost
    twice = sorted(o for o in set(delivered) if delivered.count(o) > 1)
    assert twice == [3, 4, 5]  # exactly the batch in flight at the stop


async def test_an_idle_mapping_invokes_nothing_and_the_function_scales_to_zero(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(2)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path), idleTimeoutSeconds=1))
    await produce(kafka_broker.bootstrap, topic, [(i % 2, None, f"v{i}") for i in range(6)])
    m = start_mapping(router, mapping_spec(kafka_broker.bootstrap, topic, batchSize=10))
    try:
        await eventually(lambda: m.recorder.record_count == 6, what="the backlog handled")  # invocations returned
        invoked = sum(m.recorder.batch_results.values())
        # No backlog: the reaper retires the function's last environment (idle > 1 s)
        # while the poller goes on fetching, and in all that time nothing is invoked.
        await eventually(lambda: router.pool("fn").envs == {}, what="scaled to zero")
        lags_before = len(m.recorder.lags)
        await eventually(lambda: len(m.recorder.lags) > lags_before + 2, what="the poller still fetching")
        assert not m.task.done()
        assert sum(m.recorder.batch_results.values()) == invoked
        assert len(batches(tmp_path)) == invoked
        assert m.recorder.lags[-1] == 0
    finally:
        await m.stop()


async def test_a_record_past_its_maximum_age_goes_to_on_failure(make_router, kafka_broker, make_topic, tmp_path):
    """Unlimited retries: only the age ends the poison record's retries. The wall clock
    is the test's; the records' own Kafka timestamps say how old they are."""
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    t0 = time.time()
    wall = [t0]
    stamp = int(t0 * 1000)
    await produce(
        kafka_broker.bootstrap,
        topic,
        [(0, None, "poison", stamp - 50_000), (0, None, "young", stamp + 100_000)],
    )
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=1, maximumRecordAgeInSeconds=60)
    m = start_mapping(router, spec, wall_clock=lambda: wall[0])
    try:
        await eventually(lambda: len(batches(tmp_path)) >= 2, what="the poison record retried")
        wall[0] = t0 + 20  # the poison record is now 70 s old, the next one still young
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 2)
    finally:
        await m.stop()
    calls = [b["offsets"] for b in batches(tmp_path)]
    assert set(map(tuple, calls[:-1])) == {(0,)} and calls[-1] == [1]
    (record,) = m.failed
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["KafkaBatchInfo"]["firstOffset"] == 0 and record["KafkaBatchInfo"]["lastOffset"] == 0


async def test_parallelization_factor_keeps_the_order_per_key_within_a_partition(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path, DWELL="0.05")))
    keys_ = [f"key{i}" for i in range(6)]
    await produce(kafka_broker.bootstrap, topic, [(0, keys_[i % 6], f"{keys_[i % 6]}:{i}") for i in range(36)])
    spec = mapping_spec(kafka_broker.bootstrap, topic, batchSize=2, parallelizationFactor=3)
    m = start_mapping(router, spec)
    try:
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 36)
    finally:
        await m.stop()
    order: dict[str, list[int]] = defaultdict(list)
    for b in batches(tmp_path):
        for v in b["values"]:
            key, n = v.split(":")
            order[key].append(int(n))
    assert order == {k: list(range(i, 36, 6)) for i, k in enumerate(keys_)}  # each key in order, once
    assert max(b["peak"] for b in batches(tmp_path)) > 1, "one partition never ran two lanes at once"


async def test_filter_criteria_drop_records_and_the_commit_moves_past_them(
    make_router, kafka_broker, make_topic, tmp_path
):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    kinds = ["keep", "drop", "keep", "drop", "drop"]
    await produce(
        kafka_broker.bootstrap, topic, [(0, None, json.dumps({"kind": k, "n": i})) for i, k in enumerate(kinds)]
    )
    spec = mapping_spec(
        kafka_broker.bootstrap,
        topic,
        batchSize=10,
        filterCriteria={"filters": [{"pattern": '{"value": {"kind": ["keep"]}}'}]},
    )
    m = start_mapping(router, spec)
    try:
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 5)
    finally:
        await m.stop()
    assert [o for b in batches(tmp_path) for o in b["offsets"]] == [0, 2]
    assert m.recorder.filtered_count == 3


async def test_at_timestamp_starts_at_the_first_record_not_older(make_router, kafka_broker, make_topic, tmp_path):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    base = (int(time.time()) - 100) * 1000
    await produce(kafka_broker.bootstrap, topic, [(0, None, f"v{i}", base + (i - 1) * 2000) for i in range(3)])
    at = datetime.fromtimestamp(base / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = mapping_spec(
        kafka_broker.bootstrap, topic, startingPosition="AT_TIMESTAMP", startingPositionTimestamp=at, batchSize=10
    )
    m = start_mapping(router, spec)
    try:
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 3)
    finally:
        await m.stop()
    assert [o for b in batches(tmp_path) for o in b["offsets"]] == [1, 2]


async def test_latest_starts_after_what_the_topic_already_holds(make_router, kafka_broker, make_topic, tmp_path):
    topic = await make_topic(1)
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path)))
    await produce(kafka_broker.bootstrap, topic, [(0, None, "old")])
    m = start_mapping(router, mapping_spec(kafka_broker.bootstrap, topic, startingPosition="LATEST"))
    try:
        await eventually(lambda: m.poller.partitions, what="the partition assigned")
        (tp,) = m.poller.partitions
        assert m.poller.consumer is not None
        assert await m.poller.consumer.position(tp) == 1  # resolved at the end, before "new" exists
        await produce(kafka_broker.bootstrap, topic, [(0, None, "new")])
        await wait_committed(kafka_broker.bootstrap, m.poller.group_id, topic, 0, 2)
    finally:
        await m.stop()
    assert [v for b in batches(tmp_path) for v in b["values"]] == ["new"]


async def test_a_backlog_is_taken_in_chunks_and_a_full_partition_is_paused_until_its_lanes_catch_up(
    make_router, kafka_broker, make_topic, tmp_path
):
    """The fetch loop's back-pressure (``KafkaPoller._take``): every take is at most
    ``_FETCH_CHUNK`` records of one partition (the loop never decodes a whole fetch in
    one go), a partition whose lanes hold ``_high_water()`` records is paused, nothing is
    taken of it while it is, and the whole backlog still arrives in order, once. Each
    partition's first record holds its lane until both partitions are paused."""
    from aiokafka import AIOKafkaProducer

    from lambdakube_router.pollers import kafka as kafka_poller

    topic = await make_topic(2)
    per_partition = 5000
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"hold" if i < 2 else b"v", key=b"k", partition=i % 2)
            for i in range(2 * per_partition)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    hold = tmp_path / "hold"
    hold.touch()
    router = await make_router(function("fn", HANDLER, env=handler_env(tmp_path, HOLD=str(hold)), timeoutSeconds=60))
    m = start_mapping(router, mapping_spec(kafka_broker.bootstrap, topic, batchSize=100), max_concurrency=lambda: 2)
    poller = m.poller
    high = poller._high_water()
    assert high < per_partition  # so the backlog must pause each partition
    #: (partitions in the take, its records, was any of them paused before it)
    takes: list[tuple[list[int], int, bool]] = []
    paused_seen: set[int] = set()
    most_held = 0
    take = poller._take

    async def watched_take(consumer):
        nonlocal most_held
        paused_before = {tp for tp, part in poller.partitions.items() if part.paused}
        fetched = await take(consumer)
        if fetched:
            count = sum(len(records) for records in fetched.values())
            takes.append(([tp.partition for tp in fetched], count, any(tp in paused_before for tp in fetched)))
        paused_seen.update(tp.partition for tp, part in poller.partitions.items() if part.paused)
        most_held = max([most_held, *(part.buffered() for part in poller.partitions.values())])
        return fetched

    poller._take = watched_take  # type: ignore[method-assign]
    try:
        await eventually(lambda: paused_seen == {0, 1}, what="both partitions paused behind their held lanes")
        hold.unlink()
        for p in range(2):
            await wait_committed(kafka_broker.bootstrap, poller.group_id, topic, p, per_partition)
    finally:
        await m.stop()
    assert all(len(parts) == 1 for parts, _, _ in takes), "a take mixed partitions"
    assert max(count for _, count, _ in takes) <= kafka_poller._FETCH_CHUNK
    assert not any(from_paused for _, _, from_paused in takes), "records were taken of a paused partition"
    assert most_held >= high
    got = offsets_by_partition(tmp_path)
    assert got == {f"{topic}-{p}": list(range(per_partition)) for p in range(2)}
    assert not any(part.paused for part in poller.partitions.values())  # resumed once drained
