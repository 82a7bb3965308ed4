"""Durable async invocations: retries, destinations, DLQ, throttles, restarts."""

from __future__ import annotations

import asyncio

from lambdakube_router import keys
from lambdakube_router.app import init_app
from tests.router.conftest import Router, function, router_config

EVENT = {"X-Amz-Invocation-Type": "Event"}

#: Fails until the attempts file has FAIL_TIMES lines, counting every attempt in a file
#: (attempts may land on different environments).
FLAKY = """
import os

def handler(event, context):
    path = os.environ["ATTEMPTS"]
    with open(path, "a") as f:
        f.write(context.aws_request_id + "\\n")
    with open(path) as f:
        n = len(f.read().split())
    if n <= int(os.environ["FAIL_TIMES"]):
        raise RuntimeError(f"attempt {n} fails")
    return {"attempt": n, "event": event}
"""

SLEEPY = """
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("hold"):  # wait (bounded) until the test releases the barrier file
        deadline = time.monotonic() + 10
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"done": event}
"""


async def queue(router: Router, name: str) -> list[dict]:
    data = await router.get_json(f"/lambdakube/v1/namespaces/default/queues/{name}/messages")
    return data["messages"]


async def wait_queue(router: Router, name: str, n: int = 1) -> list[dict]:
    async def check():
        msgs = await queue(router, name)
        return msgs if len(msgs) >= n else None

    return await router.eventually(check, timeout=20)


async def test_retry_twice_then_success_goes_to_on_success(make_router, tmp_path):
    attempts = tmp_path / "attempts"
    router = await make_router(
        function(
            "flaky",
            FLAKY,
            env={"ATTEMPTS": str(attempts), "FAIL_TIMES": "2"},
            **{"async": {"maxRetryAttempts": 2, "onSuccess": {"queue": "ok"}, "onFailure": {"queue": "failed"}}},
        )
    )
    status, headers, body = await router.invoke("flaky", {"order": 1}, headers=EVENT)
    assert status == 202 and body == b""
    request_id = headers["X-Amz-Request-Id"]
    [msg] = await wait_queue(router, "ok")
    record = msg["body"]
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": "lambdakube:default:function:flaky",
        "condition": "Success",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"order": 1}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"attempt": 3, "event": {"order": 1}}
    assert record["timestamp"].endswith("Z")
    # Lambda keeps the request id across retries
    assert attempts.read_text().split() == [request_id] * 3
    assert await queue(router, "failed") == []
    assert (await router.get_json("/lambdakube/v1/namespaces/default/async-events"))["events"] == []


async def test_retries_exhausted_on_failure_record_and_dead_letter(make_router, tmp_path):
    attempts = tmp_path / "attempts"
    router = await make_router(
        function(
            "doomed",
            FLAKY,
            env={"ATTEMPTS": str(attempts), "FAIL_TIMES": "100"},
            **{"async": {"maxRetryAttempts": 1, "onFailure": {"queue": "failed"}, "deadLetter": {"queue": "dlq"}}},
        )
    )
    status, headers, _ = await router.invoke("doomed", {"k": "v"}, headers=EVENT)
    assert status == 202
    [failed] = await wait_queue(router, "failed")
    [dead] = await wait_queue(router, "dlq")
    record = failed["body"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # 1 try + 1 retry
    assert record["requestContext"]["requestId"] == headers["X-Amz-Request-Id"]
    assert record["requestPayload"] == {"k": "v"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "attempt 2 fails"
    assert dead["body"] == {"k": "v"}  # the DLQ gets the original event only
    assert len(attempts.read_text().split()) == 2


async def test_destination_function(make_router, tmp_path):
    attempts = tmp_path / "attempts"
    router = await make_router(
        function(
            "src",
            FLAKY,
            env={"ATTEMPTS": str(attempts), "FAIL_TIMES": "0"},
            **{"async": {"onSuccess": {"function": "sink"}}},
        ),
        function("sink", SLEEPY, **{"async": {"onSuccess": {"queue": "sunk"}}}),
    )
    status, _, _ = await router.invoke("src", {"n": 1}, headers=EVENT)
    assert status == 202
    [msg] = await wait_queue(router, "sunk")
    # the sink received src's record as its event
    inner = msg["body"]["requestPayload"]
    assert inner["requestContext"]["functionArn"] == "lambdakube:default:function:src"
    assert inner["responsePayload"]["event"] == {"n": 1}


async def test_throttled_event_retried_without_using_retries(make_router, tmp_path):
    router = await make_router(
        function(
            "one",
            SLEEPY,
            reservedConcurrency=1,
            **{"async": {"maxRetryAttempts": 0, "onSuccess": {"queue": "ok"}, "onFailure": {"queue": "failed"}}},
        )
    )
    engine = router.app[keys.ENGINE]
    barrier = tmp_path / "go"
    busy = asyncio.ensure_future(router.invoke_json("one", {"hold": str(barrier)}))
    await router.eventually(lambda: engine.namespaces["default"].in_flight == 1)
    status, _, _ = await router.invoke("one", {"async": True}, headers=EVENT)
    assert status == 202

    async def throttled_twice():
        events = (await router.get_json("/lambdakube/v1/namespaces/default/async-events"))["events"]
        return events and events[0]["systemRetries"] >= 2 and events[0]

    ev = await router.eventually(throttled_twice, timeout=10)
    assert ev["functionErrors"] == 0 and "429" in ev["lastError"]
    barrier.touch()
    assert (await busy)[0] == 200
    [msg] = await wait_queue(router, "ok")
    assert msg["body"]["requestContext"]["condition"] == "Success"
    assert msg["body"]["requestContext"]["approximateInvokeCount"] == 1
    assert await queue(router, "failed") == []
    async with router.client.session.get(router.url("/metrics")) as resp:
        text = await resp.text()
    assert 'lambdakube_async_queue_depth{namespace="default"} 0.0' in text


async def test_events_survive_router_restart(aiohttp_client, tmp_path):
    """Stop the app while an event is pending, start a new one on the same state dir."""
    held = function("later", SLEEPY, reservedConcurrency=0, **{"async": {"onSuccess": {"queue": "ok"}}})
    config = router_config(tmp_path, held)
    app = await init_app(config)
    client = await aiohttp_client(app)
    router = Router(client, app, config)
    status, headers, _ = await router.invoke("later", {"survives": True}, headers=EVENT)
    assert status == 202
    events = (await router.get_json("/lambdakube/v1/namespaces/default/async-events"))["events"]
    assert [e["id"] for e in events] == [headers["X-Amz-Request-Id"]]
    await client.close()  # runs the app's cleanup: dispatcher, pools, store closed

    released = function("later", SLEEPY, **{"async": {"onSuccess": {"queue": "ok"}}})
    config2 = router_config(tmp_path, released)
    assert config2.state_dir == config.state_dir
    app2 = await init_app(config2)
    client2 = await aiohttp_client(app2)
    router2 = Router(client2, app2, config2)
    [msg] = await wait_queue(router2, "ok")
    assert msg["body"]["requestContext"]["requestId"] == headers["X-Amz-Request-Id"]
    assert msg["body"]["responsePayload"] == {"done": {"survives": True}}


async def test_async_unknown_function_and_bad_payload(make_router):
    router = await make_router(function("fn", SLEEPY))
    status, _, _ = await router.invoke("nope", {}, headers=EVENT)
    assert status == 404
    status, _, _ = await router.invoke("fn", data=b"{", headers=EVENT)
    assert status == 400
