"""The synchronous Invoke API against real runtime processes on 127.0.0.1."""

from __future__ import annotations

import base64
import json

from tests.router.conftest import function

ECHO = """
import os
count = 0

def handler(event, context):
    global count
    count += 1
    return {"event": event, "count": count, "env": os.environ["LAMBDAKUBE_ENV_ID"],
            "clientContext": context.client_context.custom if context.client_context else None}
"""

FAILS = """
def handler(event, context):
    print("about to fail")
    raise ValueError("boom: " + str(event.get("x")))
"""


async def test_cold_start_then_warm_reuse(make_router):
    router = await make_router(function("echo", ECHO))
    status, h1, b1 = await router.invoke_json("echo", {"a": 1})
    assert status == 200, b1
    assert h1["X-Cold-Start"] == "true" and "X-Init-Duration-Ms" in h1
    assert h1["X-Amz-Executed-Version"] == "$LATEST"
    for key in ("X-Run-Duration-Ms", "X-Queue-Wait-Ms", "X-Environment-Id", "X-Amz-Request-Id"):
        assert key in h1, key
    assert b1["event"] == {"a": 1} and b1["count"] == 1
    status, h2, b2 = await router.invoke_json("echo", {"a": 2})
    assert status == 200
    assert h2["X-Cold-Start"] == "false" and "X-Init-Duration-Ms" not in h2
    assert h2["X-Environment-Id"] == h1["X-Environment-Id"] == b2["env"]
    assert b2["count"] == 2
    assert h2["X-Amz-Request-Id"] != h1["X-Amz-Request-Id"]
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/echo")
    assert state["pool"]["coldStarts"] == 1 and state["pool"]["warmStarts"] == 1
    assert [e["state"] for e in state["pool"]["environments"]] == ["idle"]


async def test_curl_style_form_content_type_and_empty_body(make_router):
    router = await make_router(function("echo", ECHO))
    # curl -d sends application/x-www-form-urlencoded: accepted, like Lambda.
    status, _, body = await router.invoke_json(
        "echo", data=b'{"name":"x"}', headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200 and body["event"] == {"name": "x"}
    status, _, body = await router.invoke_json("echo", data=b"")
    assert status == 200 and body["event"] == {}


async def test_function_name_forms(make_router):
    router = await make_router(function("echo", ECHO), function("echo", ECHO, namespace="team-a"))
    status, _, _ = await router.invoke_json("lambdakube:team-a:function:echo", {})
    assert status == 200
    status, _, _ = await router.invoke_json("echo", {}, headers={"X-Lambdakube-Namespace": "team-a"})
    assert status == 200
    status, _, body = await router.invoke_json("echo", {}, headers={"X-Lambdakube-Namespace": "nope"})
    assert status == 404 and body["message"] == "Function not found: nope/echo"
    status, _, _ = await router.invoke_json("echo", {}, params={"Qualifier": "$LATEST"})
    assert status == 200
    status, h, body = await router.invoke_json("echo", {}, params={"Qualifier": "1"})
    assert status == 404 and body["errorType"] == "ResourceNotFoundException"
    assert h["x-amzn-ErrorType"] == "ResourceNotFoundException"
    status, h, body = await router.invoke_json("lambdakube:bad", {})
    assert status == 400 and body["errorType"] == h["x-amzn-ErrorType"] == "ValidationException"


async def test_errors(make_router):
    router = await make_router(function("echo", ECHO))
    status, h, body = await router.invoke_json("missing", {})
    assert status == 404 and body["errorType"] == "ResourceNotFoundException"
    assert body["message"] == "Function not found: default/missing"
    assert h["x-amzn-ErrorType"] == "ResourceNotFoundException"

    status, h, body = await router.invoke_json("echo", data=b"{not json")
    assert status == 400 and body["errorType"] == "InvalidRequestContentException"
    assert body["message"].startswith("Could not parse request body into json: ")

    status, _, body = await router.invoke_json("echo", data=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert status == 413 and body["errorType"] == "RequestTooLargeException"
    status, _, body = await router.invoke_json(
        "echo", data=b'"' + b"x" * (256 * 1024) + b'"', headers={"X-Amz-Invocation-Type": "Event"}
    )
    assert status == 413 and body["errorType"] == "RequestTooLargeException"

    status, _, body = await router.invoke_json(
        "echo", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert status == 415 and body["errorType"] == "UnsupportedMediaTypeException"

    status, _, body = await router.invoke_json("echo", {}, headers={"X-Amz-Invocation-Type": "Later"})
    assert status == 400 and body["errorType"] == "InvalidParameterValueException"

    too_big = base64.b64encode(json.dumps({"custom": {"k": "v" * 3000}}).encode()).decode()
    status, _, body = await router.invoke_json("echo", {}, headers={"X-Amz-Client-Context": too_big})
    assert status == 400 and "3583" in body["message"]
    # nothing above started an environment
    assert router.pool("echo").envs == {}


async def test_dry_run(make_router):
    router = await make_router(function("echo", ECHO))
    status, h, body = await router.invoke("echo", {}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert status == 204 and body == b"" and "X-Amz-Request-Id" in h
    assert router.pool("echo").envs == {}  # ran nothing
    status, _, _ = await router.invoke("nope", {}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert status == 404


async def test_tail_log_and_client_context(make_router):
    router = await make_router(function("echo", ECHO), function("fails", FAILS))
    ctx = base64.b64encode(json.dumps({"custom": {"user": "u1"}}).encode()).decode()
    status, h, body = await router.invoke_json(
        "echo", {"q": 1}, headers={"X-Amz-Log-Type": "Tail", "X-Amz-Client-Context": ctx}
    )
    assert status == 200 and body["clientContext"] == {"user": "u1"}
    log = base64.b64decode(h["X-Amz-Log-Result"]).decode()
    assert "START RequestId" in log and "REPORT RequestId" in log
    status, h, _ = await router.invoke_json("echo", {})
    assert "X-Amz-Log-Result" not in h

    status, h, body = await router.invoke_json("fails", {"x": 7}, headers={"X-Amz-Log-Type": "Tail"})
    assert status == 200
    assert h["X-Amz-Function-Error"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "boom: 7"
    assert "about to fail" in base64.b64decode(h["X-Amz-Log-Result"]).decode()
    # a handler exception does not cost the environment
    status, h2, _ = await router.invoke_json("fails", {"x": 8})
    assert h2["X-Cold-Start"] == "false" and h2["X-Environment-Id"] == h["X-Environment-Id"]


async def test_health_metrics_openapi(make_router):
    router = await make_router(function("echo", ECHO))
    await router.invoke_json("echo", {})
    await router.invoke_json("missing", {})
    assert (await router.get_json("/healthz"))["status"] == "ok"
    doc = await router.get_json("/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert "/2015-03-31/functions/{FunctionName}/invocations" in doc["paths"]
    async with router.client.session.get(router.url("/metrics")) as resp:
        text = await resp.text()
    for needle in (
        'lambdakube_invocations_total{function="echo",namespace="default",result="success"} 1.0',
        'lambdakube_cold_starts_total{function="echo",namespace="default"} 1.0',
        "lambdakube_init_duration_seconds_bucket",
        "lambdakube_run_duration_seconds_bucket",
        "lambdakube_queue_wait_seconds_bucket",
        'lambdakube_environments{function="echo",namespace="default",state="idle"} 1.0',
        'lambdakube_concurrent_executions{function="echo",namespace="default"} 0.0',
        'lambdakube_namespace_concurrent_executions{namespace="default"} 0.0',
    ):
        assert needle in text, needle
    listing = await router.get_json("/lambdakube/v1/namespaces/default/functions")
    assert [f["name"] for f in listing["functions"]] == ["echo"]


async def test_a_large_inline_function_runs_locally(make_router):
    """A valid 150 KiB inline source (the CRD allows 256 Ki chars) starts a fresh local
    process: the code goes in POST /init, not in an environment variable (Linux caps one
    at 128 KiB and the exec failed with E2BIG)."""
    source = (
        "X = 1\n"
        + "# padding line of the module, long enough to add up quickly\n" * 2600
        + "def handler(event, context):\n    return {'size': len(open(__file__).read()), 'x': X}\n"
    )
    assert len(source.encode()) > 150 * 1024
    router = await make_router(function("big", source), generic_pool_size=0)
    status, headers, body = await router.invoke_json("big", {})
    assert status == 200, body
    assert body == {"size": len(source), "x": 1}
    assert headers["X-Environment-Source"] == "fresh"
