"""Function URLs over real HTTP (aiohttp client) against a real router (local backend,
real runtime processes): payload format 2.0 in, Lambda's response format (or its
inference) out, binary bodies both ways, cookies, repeated query keys and headers,
errors as Lambda's URL answers them, and who may call (``--auth token-file``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from multidict import CIMultiDict

from lambdakube_router.access import AuthSettings
from tests.router.conftest import function

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

WEB = """
import base64, json

def handler(event, context):
    path = event["rawPath"]
    if path == "/fail":
        raise RuntimeError("asked to fail")
    if path == "/inferred":
        return {"hello": "world"}
    if path == "/string":
        return "just text"
    if path == "/binary":
        data = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}
    if path == "/bad":
        return {"statusCode": "two hundred"}
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-handler": "web"},
        "cookies": ["session=abc; Path=/", "theme=dark"],
        "body": json.dumps(event),
    }
"""
TOKENS = 'tok-alice,alice,uid-a,"dev"\n'
CORS = {"allowOrigins": ["https://app.example"], "allowMethods": ["GET", "POST"], "allowHeaders": ["x-custom"],
        "exposeHeaders": ["x-handler"], "maxAge": 300}  # fmt: skip


@pytest.fixture
async def router(make_router, tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text(TOKENS)
    return await make_router(
        function("web", WEB, url={"authType": "NONE", "cors": CORS}),
        function("private", WEB, url={"authType": "KUBERNETES"}),
        function("nourl", WEB),
        function("throttled", WEB, url={"authType": "NONE"}, reservedConcurrency=0),
        auth=AuthSettings(mode="token-file", token_file=str(path)),
    )


def url(name: str, rest: str = "", namespace: str = "default") -> str:
    return f"/lambdakube/url/{namespace}/{name}{rest}"


async def test_the_request_as_payload_format_2_and_the_response_back(router):
    headers = CIMultiDict([("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "c1=v1; c2=v2"),
                           ("User-Agent", "lk-test"), ("Content-Type", "application/json")])  # fmt: skip
    async with router.client.post(
        url("web", "/items/42?id=1&id=2&q=x%20y&empty="), data=b'{"k": 1}', headers=headers
    ) as resp:
        assert resp.status == 201
        assert resp.headers["x-handler"] == "web"
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers.getall("Set-Cookie") == ["session=abc; Path=/", "theme=dark"]
        assert resp.headers["x-amzn-RequestId"]
        event = json.loads(await resp.read())
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "id=1&id=2&q=x%20y&empty="
    assert event["queryStringParameters"] == {"id": "1,2", "q": "x y", "empty": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "a,b"
    assert event["headers"]["user-agent"] == "lk-test"
    assert event["body"] == '{"k": 1}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {"method": "POST", "path": "/items/42", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "lk-test"}  # fmt: skip
    assert ctx["accountId"] == "anonymous" and ctx["stage"] == "$default" and ctx["routeKey"] == "$default"
    assert ctx["requestId"] == resp.headers["x-amzn-RequestId"]
    assert ctx["domainName"] == "127.0.0.1" and ctx["domainPrefix"] == "127"
    assert isinstance(ctx["timeEpoch"], int) and ctx["time"].endswith(" +0000")


async def test_the_root_and_no_query(router):
    async with router.client.get(url("web")) as resp:
        event = json.loads(await resp.read())
    assert event["rawPath"] == "/" and event["rawQueryString"] == ""
    assert "queryStringParameters" not in event and "body" not in event and "cookies" not in event
    assert event["requestContext"]["http"]["method"] == "GET"


async def test_binary_bodies_round_trip_through_base64(router):
    data = bytes(range(256)) * 4
    async with router.client.post(
        url("web", "/binary"), data=data, headers={"Content-Type": "application/octet-stream"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert await resp.read() == data[::-1]


async def test_a_plain_result_is_inferred_as_json_200(router):
    async with router.client.get(url("web", "/inferred")) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {"hello": "world"}
    async with router.client.get(url("web", "/string")) as resp:
        assert resp.status == 200 and await resp.read() == b"just text"


async def test_a_function_error_or_a_bad_response_is_502(router):
    for path in ("/fail", "/bad"):
        async with router.client.get(url("web", path)) as resp:
            assert resp.status == 502, path
            assert await resp.text() == "Internal Server Error"


async def test_a_body_over_6_mb_is_413_by_length_or_once_read(router):
    """Refused by its Content-Length before it is read, and a chunked one (no length) once read."""
    big = b"x" * (6 * 1024 * 1024 + 1)

    async def chunks():
        for i in range(0, len(big), 1024 * 1024):
            yield big[i : i + 1024 * 1024]

    for data in (big, chunks()):
        async with router.client.post(url("web", "/upload"), data=data) as resp:
            assert resp.status == 413
            body = await resp.json()
            assert body["errorType"] == "RequestTooLargeException", body
            assert "for a function URL" in body["message"], body


async def test_a_throttle_is_429(router):
    async with router.client.get(url("throttled")) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"]
        assert (await resp.json())["errorType"] == "TooManyRequestsException"


async def test_who_may_call(router):
    async with router.client.get(url("web", "/inferred")) as resp:  # NONE: public
        assert resp.status == 200 and await resp.json() == {"hello": "world"}
    async with router.client.get(url("private")) as resp:  # KUBERNETES: a token
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    auth = {"Authorization": "Bearer tok-alice"}
    async with router.client.get(url("private", "/x"), headers=auth) as resp:
        assert resp.status == 201
        event = json.loads(await resp.read())
    assert event["requestContext"]["authorizer"] == {
        "kubernetes": {"username": "alice", "uid": "uid-a", "groups": ["dev"]}
    }
    assert event["requestContext"]["accountId"] == "default"
    # unknown functions and functions without a URL: 404, and only to a caller
    for name in ("nosuch", "nourl"):
        async with router.client.get(url(name)) as resp:
            assert resp.status == 401, name
        async with router.client.get(url(name), headers=auth) as resp:
            assert resp.status == 404, name
            assert (await resp.json())["errorType"] == "ResourceNotFoundException"


async def test_cors_preflight_is_answered_by_the_router(router):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with router.client.options(url("web", "/items"), headers=preflight) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert resp.headers["Access-Control-Allow-Methods"] == "GET,POST"
        assert resp.headers["Access-Control-Allow-Headers"] == "x-custom"
        assert resp.headers["Access-Control-Max-Age"] == "300"
        assert await resp.read() == b""  # the function did not run
    async with router.client.get(url("web"), headers={"Origin": "https://app.example"}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert resp.headers["Access-Control-Expose-Headers"] == "x-handler"
    async with router.client.get(url("web"), headers={"Origin": "https://evil.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_without_auth_every_url_is_reachable_and_unknown_is_404(make_router):
    router = await make_router(function("web", WEB, url={"authType": "KUBERNETES"}))
    async with router.client.put(url("web", "/a%2Fb/c"), data=b"x", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 201
        event = json.loads(await resp.read())
    assert event["rawPath"] == "/a%2Fb/c" and event["body"] == "x"
    assert event["requestContext"]["http"]["method"] == "PUT"
    async with router.client.delete(url("nosuch")) as resp:
        assert resp.status == 404
    encoded = base64.b64encode(b"\xff\x00").decode()
    assert encoded  # a binary body without a content type is base64 too
    async with router.client.post(url("web"), data=b"\xff\x00", headers={"Content-Type": ""}) as resp:
        event = json.loads(await resp.read())
    assert event["isBase64Encoded"] is True and event["body"] == encoded


async def test_the_example_answers_at_its_url(make_router):
    [doc] = list(yaml.safe_load_all((EXAMPLES / "url.yaml").read_text()))
    router = await make_router(doc)
    async with router.client.get(url("greeter", "/hello?name=x"), headers={"Cookie": "seen=1"}) as resp:
        assert resp.status == 200 and resp.headers["Set-Cookie"] == "greeted=x; Path=/"
        assert await resp.json() == {"message": "hello, x!", "method": "GET", "path": "/hello", "cookies": ["seen=1"]}
