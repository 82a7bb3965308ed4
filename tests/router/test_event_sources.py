"""Queue event source mappings on a real router (local backend: real handler processes,
the real SQLite store): Lambda's SQS event, redelivery, partial batch responses,
onFailure, throttles against reserved concurrency, a restart mid-batch, scale to zero.

The handlers write what they saw (each invocation's records, and when it started and
ended, wall time) to a file of their own, one JSON line per invocation: the tests judge
what the function received, not what the router says it sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path

from lambdakube_router import keys
from lambdakube_router.app import init_app
from tests.router.conftest import INVOKE, Router, function, router_config

RECORDER = """
import json, os, time

def handler(event, context):
    start = time.time()
    records = event.get("Records") or []
    if event.get("hold"):
        time.sleep(event["hold"])
    elif os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    fail = [r["messageId"] for r in records if r["body"].startswith("fail")]
    line = json.dumps({"start": start, "end": time.time(), "records": records, "hold": bool(event.get("hold"))})
    with open(os.environ["OUT"], "a") as f:
        f.write(line + "\\n")
    if os.environ.get("MODE") == "partial":
        return {"batchItemFailures": [{"itemIdentifier": i} for i in fail]}
    if fail:
        raise RuntimeError("asked to fail: " + ", ".join(fail))
    return {"ok": len(records)}
"""

SEND = "/lambdakube/v1/namespaces/{}/queues/{}/messages"
MAPPINGS = "/lambdakube/v1/namespaces/default/eventsourcemappings"
SQS_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def consumer(out: Path, **spec) -> dict:
    env = {"OUT": str(out), **spec.pop("env", {})}
    return function("consumer", RECORDER, env=env, timeoutSeconds=30, **spec)


def mapping(name: str = "orders", visibility: int = 30, **spec) -> dict:
    """A mapping of queue ``orders``. Its visibility timeout outlasts a cold start unless
    a test wants redelivery (a message still in its handler when its timeout ends is
    received again: SQS's rule)."""
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": name},
        "spec": {
            "functionName": "consumer",
            "queue": {"name": "orders", "visibilityTimeoutSeconds": visibility},
            **spec,
        },
    }


def seen(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def bodies(out: Path) -> list[str]:
    return [r["body"] for inv in seen(out) for r in inv["records"]]


async def send(router: Router, *messages: str | dict, queue: str = "orders") -> dict:
    entries = [m if isinstance(m, dict) else {"MessageBody": m} for m in messages]
    body = {"Entries": [{"Id": f"m{i}", **e} for i, e in enumerate(entries)]}
    async with router.client.session.post(router.url(SEND.format("default", queue)), json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def queue_messages(router: Router, queue: str) -> list[dict]:
    return (await router.get_json(SEND.format("default", queue)))["messages"]


async def status(router: Router, name: str = "orders") -> dict:
    items = (await router.get_json(MAPPINGS))["eventSourceMappings"]
    return next(i["status"] for i in items if i["name"] == name)


async def drained(router: Router, queue: str = "orders") -> bool:
    return await queue_messages(router, queue) == []


def max_overlap(invocations: list[dict]) -> int:
    edges = sorted([(i["start"], 1) for i in invocations] + [(i["end"], -1) for i in invocations])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


async def test_a_batch_arrives_as_lambdas_sqs_event(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(consumer(out), mapping(batchSize=10, maximumBatchingWindowInSeconds=1))
    attrs = {"kind": {"DataType": "String", "StringValue": "order"}}
    sent = await send(router, *[{"MessageBody": f"order-{i}", "MessageAttributes": attrs} for i in range(5)])
    await router.eventually(lambda: len(bodies(out)) == 5)
    [invocation] = seen(out)  # one batch: the window gathered all five
    records = invocation["records"]
    assert [r["body"] for r in records] == [f"order-{i}" for i in range(5)]
    assert [r["messageId"] for r in records] == [s["MessageId"] for s in sent["Successful"]]
    for r in records:
        assert set(r) == SQS_KEYS
        assert r["eventSource"] == "aws:sqs"
        assert r["eventSourceARN"] == "lambdakube:default:queue:orders"
        assert r["awsRegion"] == "lambdakube"
        assert r["md5OfBody"] == hashlib.md5(r["body"].encode()).hexdigest()
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
        assert int(r["attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(r["attributes"]["SentTimestamp"])
        assert r["messageAttributes"] == {
            "kind": {"stringValue": "order", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
        }
    assert [s["MD5OfMessageBody"] for s in sent["Successful"]] == [r["md5OfBody"] for r in records]
    await router.eventually(lambda: drained(router))
    st = await router.eventually(lambda: _when(status(router), lambda s: s["lastProcessingResult"] == "OK"))
    assert st["state"] == "Enabled"


async def _when(coro, predicate):
    value = await coro
    return value if predicate(value) else None


async def test_a_failing_message_is_redelivered_then_sent_to_on_failure(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(
        consumer(out),
        mapping(visibility=1, batchSize=1, maximumRetryAttempts=2, destinationConfig={"onFailure": {"queue": "dead"}}),
    )
    assert (await router.invoke("consumer", {}))[0] == 200  # warm: each try ends well within its 1 s
    await send(router, "fail-1")
    [dead] = await router.eventually(lambda: queue_messages(router, "dead"))
    counts = [
        r["attributes"]["ApproximateReceiveCount"] for inv in seen(out) for r in inv["records"] if r["body"] == "fail-1"
    ]
    assert counts == ["1", "2", "3"]  # received three times: the first try and maximumRetryAttempts more
    record = dead["body"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == "lambdakube:default:function:consumer"
    assert record["responseContext"]["functionError"] == "Unhandled"
    [failed] = record["requestPayload"]["Records"]
    assert failed["body"] == "fail-1" and failed["attributes"]["ApproximateReceiveCount"] == "3"
    await router.eventually(lambda: drained(router))


async def test_partial_batch_response_deletes_only_the_successes(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(
        consumer(out, env={"MODE": "partial"}),
        mapping(
            visibility=1,
            batchSize=10,
            maximumBatchingWindowInSeconds=1,
            functionResponseTypes=["ReportBatchItemFailures"],
            maximumRetryAttempts=1,
            destinationConfig={"onFailure": {"queue": "dead"}},
        ),
    )
    assert (await router.invoke("consumer", {}))[0] == 200  # warm: the batch ends well within its 1 s
    await send(router, "ok-1", "fail-a", "ok-2", "fail-b")
    dead = await router.eventually(lambda: _when(queue_messages(router, "dead"), lambda d: len(d) == 2))
    assert sorted(d["body"]["requestPayload"]["Records"][0]["body"] for d in dead) == ["fail-a", "fail-b"]
    assert {d["body"]["requestContext"]["condition"] for d in dead} == {"RetryAttemptsExhausted"}
    got = bodies(out)
    assert got.count("ok-1") == 1 and got.count("ok-2") == 1  # successes were deleted, never redelivered
    assert got.count("fail-a") == 2 and got.count("fail-b") == 2
    await router.eventually(lambda: drained(router))
    st = await status(router)
    assert st["lastProcessingResult"] == "PROBLEM: Function reported batch item failures"


async def test_throttles_return_the_batch_and_limits_are_never_exceeded(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(
        consumer(out, reservedConcurrency=1, env={"SLEEP": "0.05"}),
        mapping(batchSize=1, scalingConfig={"maximumConcurrency": 2}),
    )
    engine = router.app[keys.ENGINE]
    hold = asyncio.ensure_future(router.invoke("consumer", {"hold": 1.5}))
    await router.eventually(lambda: engine.get("default", "consumer").limits.functions["consumer"].in_flight == 1)
    await send(router, *[f"m{i}" for i in range(6)])

    async def throttled() -> bool:
        async with router.client.session.get(router.url("/metrics")) as resp:
            text = await resp.text()
        return 'lambdakube_event_source_batches_total{mapping="orders",namespace="default",result="throttled"' in text

    await router.eventually(throttled)  # the poller met the reservation held by the sync call
    assert (await hold)[0] == 200
    await router.eventually(lambda: len(bodies(out)) == 6)
    invocations = seen(out)
    assert max_overlap(invocations) == 1  # reservedConcurrency 1: never two at once, the sync call included
    assert sorted(bodies(out)) == [f"m{i}" for i in range(6)]
    # a throttled receive is not counted: every message reached the function on its first count
    assert {r["attributes"]["ApproximateReceiveCount"] for inv in invocations for r in inv["records"]} == {"1"}
    await router.eventually(lambda: drained(router))


async def test_pollers_scale_with_the_backlog_and_down_to_zero(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(
        consumer(out, env={"SLEEP": "0.2"}), mapping(batchSize=1, scalingConfig={"maximumConcurrency": 4})
    )
    await send(router, *[f"a{i}" for i in range(10)])
    await send(router, *[f"b{i}" for i in range(10)])
    await router.eventually(lambda: len(bodies(out)) == 20)
    overlap = max_overlap(seen(out))
    assert 2 <= overlap <= 4  # more than one poller for a backlog, never above maximumConcurrency
    assert sorted(bodies(out)) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)])

    async def gauge_zero() -> bool:
        async with router.client.session.get(router.url("/metrics")) as resp:
            text = await resp.text()
        return (
            'lambdakube_event_source_pollers{mapping="orders",namespace="default",source="queue"} 0.0' in text
            and 'lambdakube_event_source_lag{mapping="orders",namespace="default",source="queue"} 0.0' in text
        )

    await router.eventually(gauge_zero)
    st = await status(router)
    assert (st["pollers"], st["lag"], st["state"]) == (0, 0, "Enabled")


async def test_a_router_restart_mid_batch_loses_no_message(aiohttp_client, tmp_path):
    out = tmp_path / "seen.jsonl"
    config = router_config(tmp_path, consumer(out, env={"SLEEP": "30"}), mapping(visibility=5, batchSize=1))
    app = await init_app(config)
    client = await aiohttp_client(app)
    router = Router(client, app, config)
    await send(router, "survivor")
    engine = app[keys.ENGINE]
    await router.eventually(lambda: engine.get("default", "consumer").limits.functions["consumer"].in_flight == 1)
    await client.close()  # the batch is in the handler: stopped mid-batch, the message not deleted

    config2 = router_config(tmp_path, consumer(out), mapping(visibility=5, batchSize=1))
    assert config2.state_dir == config.state_dir
    app2 = await init_app(config2)
    router2 = Router(await aiohttp_client(app2), app2, config2)
    await router2.eventually(lambda: bodies(out) == ["survivor"])
    [record] = seen(out)[0]["records"]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"  # its second receive, after the timeout
    await router2.eventually(lambda: drained(router2))


async def test_disabled_and_missing_function_mappings_do_not_poll(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    router = await make_router(
        consumer(out),
        mapping("off", enabled=False),
        mapping("orphan", functionName="nobody"),
    )
    await send(router, "waits")
    st_off, st_orphan = await status(router, "off"), await status(router, "orphan")
    assert (st_off["state"], st_orphan["state"]) == ("Disabled", "Creating")
    assert "waiting for Function default/nobody" in st_orphan["stateTransitionReason"]
    assert [m["body"] for m in await queue_messages(router, "orders")] == ["waits"]


async def test_send_message_refuses_bad_input_and_stores_nothing(make_router, tmp_path):
    router = await make_router(consumer(tmp_path / "seen.jsonl"))
    url = router.url(SEND.format("default", "inbox"))
    for body in (b"{", b"[]", b'{"MessageBody": ""}', b'{"MessageBody": "x", "DelaySeconds": 901}', b'{"Entries": []}'):
        async with router.client.session.post(url, data=body) as resp:
            assert resp.status == 400, body
            assert (await resp.json())["errorType"] == "InvalidParameterValueException"
    assert await queue_messages(router, "inbox") == []
    async with router.client.session.post(url, json={"MessageBody": "hello"}) as resp:
        assert resp.status == 200
        sent = await resp.json()
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"hello").hexdigest()
    [stored] = await queue_messages(router, "inbox")
    assert (stored["messageId"], stored["body"]) == (sent["MessageId"], "hello")


async def test_send_message_refuses_an_oversize_request_and_stores_nothing(make_router, tmp_path):
    """Over the limit by Content-Length (refused before it is read) or chunked (once read)."""
    from lambdakube_router.event_source_api import MAX_REQUEST_BYTES

    router = await make_router(consumer(tmp_path / "seen.jsonl"))
    url = router.url(SEND.format("default", "inbox"))
    big = json.dumps({"MessageBody": "x" * MAX_REQUEST_BYTES}).encode()

    async def chunks():
        yield big

    for data in (big, chunks()):
        async with router.client.session.post(url, data=data) as resp:
            assert resp.status == 413
            assert (await resp.json())["errorType"] == "RequestTooLargeException"
    assert await queue_messages(router, "inbox") == []


_ = INVOKE


async def test_filter_criteria_drop_what_no_filter_matches(make_router, tmp_path):
    out = tmp_path / "seen.jsonl"
    patterns = [{"body": {"kind": ["order"], "total": [{"numeric": [">", 10]}]}}, {"body": [{"prefix": "urgent"}]}]
    router = await make_router(
        consumer(out), mapping(filterCriteria={"filters": [{"pattern": json.dumps(p)} for p in patterns]})
    )
    big = json.dumps({"kind": "order", "total": 12})
    small = json.dumps({"kind": "order", "total": 3})
    refund = json.dumps({"kind": "refund", "total": 50})
    await send(router, big, small, refund, "urgent: call back", "plain text")
    await router.eventually(lambda: drained(router))  # the dropped ones are deleted, as Lambda does
    assert sorted(bodies(out)) == sorted([big, "urgent: call back"])

    async def filtered_three() -> bool:
        async with router.client.session.get(router.url("/metrics")) as resp:
            text = await resp.text()
        return 'lambdakube_event_source_filtered_total{mapping="orders",namespace="default",source="queue"} 3.0' in text

    await router.eventually(filtered_three)


async def test_a_batch_in_flight_finishes_when_its_mapping_is_disabled(make_router, tmp_path):
    """Lambda lets in-flight batches finish when a mapping changes: the handler's batch
    completes and is deleted (not left for its visibility timeout), and nothing more is
    received once the mapping is disabled."""
    out = tmp_path / "seen.jsonl"
    router = await make_router(consumer(out, env={"SLEEP": "1.5"}), mapping(batchSize=1))
    engine, manager = router.app[keys.ENGINE], router.app[keys.MAPPINGS]
    await send(router, "in-flight")
    await router.eventually(lambda: engine.get("default", "consumer").limits.functions["consumer"].in_flight == 1)
    entry = manager.states[("default", "orders")].entry
    disabled = entry.spec.model_copy(update={"enabled": False})
    manager.apply({("default", "orders"): dataclasses.replace(entry, spec=disabled)})
    await send(router, "after")
    await router.eventually(lambda: bodies(out) == ["in-flight"])
    await router.eventually(
        lambda: _when(queue_messages(router, "orders"), lambda q: [m["body"] for m in q] == ["after"])
    )
    st = await router.eventually(lambda: _when(status(router), lambda s: s["pollers"] == 0))
    assert st["state"] == "Disabled"
