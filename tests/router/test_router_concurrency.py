"""Concurrency limits end to end: reserved, namespace quota, scaling rate, exclusivity."""

from __future__ import annotations

import asyncio
import json

from lambdakube_router import keys
from tests.router.conftest import function, quota

SLEEPER = """
import os, time

def handler(event, context):
    t0 = time.monotonic()
    time.sleep(event.get("sleep", 0.05))
    t1 = time.monotonic()
    log = os.environ.get("SERVED_LOG")
    if log and "id" in event:
        with open(log, "a") as f:
            f.write(event["id"] + "\\n")
    return {"env": os.environ["LAMBDAKUBE_ENV_ID"], "start": t0, "end": t1, "id": event.get("id")}
"""


def throttle_body(reason: str, retry_after: str = "1") -> dict:
    return {
        "Type": "User",
        "message": "Rate Exceeded.",
        "Reason": reason,
        "retryAfterSeconds": retry_after,
        "errorType": "TooManyRequestsException",
    }


async def test_reserved_10_under_200_concurrent_clients(make_router, wide_session, tmp_path):
    served_log = tmp_path / "served.log"
    router = await make_router(function("conc", SLEEPER, reservedConcurrency=10, env={"SERVED_LOG": str(served_log)}))
    answers: dict[str, tuple[int, dict]] = {}

    async def client(c: int) -> None:
        for i in range(3):  # bounded: 600 requests in all
            rid = f"c{c}-r{i}"
            status, headers, body = await router.invoke("conc", {"id": rid, "sleep": 0.05}, session=wide_session)
            assert rid not in answers
            answers[rid] = (status, json.loads(body), dict(headers))

    await asyncio.wait_for(asyncio.gather(*(client(c) for c in range(200))), 120)

    assert len(answers) == 600  # none lost: every request got exactly one answer
    statuses = {s for s, _, _ in answers.values()}
    assert statuses <= {200, 429}, statuses  # in particular no 502 from a 409 EnvironmentBusy
    ok = {rid: body for rid, (s, body, _) in answers.items() if s == 200}
    throttled = [(body, h) for s, body, h in answers.values() if s == 429]
    assert ok and throttled
    for body, headers in throttled:
        assert body == throttle_body("ReservedFunctionConcurrentInvocationLimitExceeded")
        assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
        assert headers["Retry-After"] == "1"
    for rid, body in ok.items():
        assert body["id"] == rid
    # no request served twice, and every 200 was really served once
    served = served_log.read_text().split()
    assert sorted(served) == sorted(ok)
    # never two requests on one environment
    by_env: dict[str, list[tuple[float, float]]] = {}
    for body in ok.values():
        by_env.setdefault(body["env"], []).append((body["start"], body["end"]))
    for env, spans in by_env.items():
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            assert e1 <= s2, f"environment {env} ran two requests at once"
    # at most 10 executions at any instant
    edges = sorted(
        [(b["start"], 1) for b in ok.values()] + [(b["end"], -1) for b in ok.values()], key=lambda e: (e[0], e[1])
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    assert peak <= 10
    assert len(by_env) <= 10
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/conc")
    assert state["concurrency"]["inFlight"] == 0
    assert state["pool"]["counts"]["busy"] == 0


async def test_reserved_zero_throttles_everything(make_router):
    router = await make_router(function("off", SLEEPER, reservedConcurrency=0))
    for _ in range(3):
        status, headers, body = await router.invoke_json("off", {})
        assert status == 429
        assert body == throttle_body("ReservedFunctionConcurrentInvocationLimitExceeded")
    assert router.pool("off").envs == {}
    async with router.client.session.get(router.url("/metrics")) as resp:
        text = await resp.text()
    assert (
        'lambdakube_throttles_total{function="off",namespace="default",'
        'reason="ReservedFunctionConcurrentInvocationLimitExceeded"} 3.0'
    ) in text


async def test_namespace_quota_exhausted(make_router):
    router = await make_router(
        quota(concurrentExecutions=2, minimumUnreserved=0), function("a", SLEEPER), function("b", SLEEPER)
    )
    slow = [asyncio.ensure_future(router.invoke_json(n, {"sleep": 1.0})) for n in ("a", "b")]
    await router.eventually(lambda: router.app[keys.ENGINE].namespaces["default"].in_flight == 2)
    status, headers, body = await router.invoke_json("a", {})
    assert status == 429 and body == throttle_body("ConcurrentInvocationLimitExceeded")
    results = await asyncio.gather(*slow)
    assert [r[0] for r in results] == [200, 200]
    status, _, _ = await router.invoke_json("b", {})
    assert status == 200


async def test_reservation_guarantee_and_rejection_reported(make_router):
    router = await make_router(
        quota(concurrentExecutions=5, minimumUnreserved=1),
        function("big", SLEEPER, reservedConcurrency=3),
        function("late", SLEEPER, reservedConcurrency=2),
    )
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/late")
    assert state["concurrency"]["reservedGranted"] is None
    assert "does not fit" in state["concurrency"]["reservationRejected"]
    big = await router.get_json("/lambdakube/v1/namespaces/default/functions/big")
    assert big["concurrency"]["reservedGranted"] == 3
    assert big["concurrency"]["unreservedPool"] == 2


async def test_scaling_rate_token_bucket(make_router):
    router = await make_router(quota(scalingRate={"burst": 1, "periodSeconds": 3600}), function("fn", SLEEPER))
    first = asyncio.ensure_future(router.invoke_json("fn", {"sleep": 0.5}))
    await router.eventually(lambda: router.pool("fn").counts()["busy"] == 1)
    status, headers, body = await router.invoke_json("fn", {})  # needs a second env: no token
    assert status == 429
    assert body["Reason"] == "FunctionInvocationRateLimitExceeded"
    assert int(headers["Retry-After"]) > 1 and body["retryAfterSeconds"] == headers["Retry-After"]
    status, _, _ = await first
    assert status == 200
    status, headers, _ = await router.invoke_json("fn", {})  # warm: no token needed
    assert status == 200 and headers["X-Cold-Start"] == "false"
