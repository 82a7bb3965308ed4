"""A handler calls the Invoke API with the real AWS SDK (boto3) and its default settings,
authenticated as its own identity: the runtime serves the function's token as container
credentials (``lambdakube_runtime.credentials``), boto3 signs with it as the session
token, and the router takes that token as the caller's (``access.request_token``).

The runtime runs here as a real process given what a pod of a Function with
``spec.serviceAccountName`` gets (``identity``: the token file's path, the router's
endpoint, a region); the token is one of the router's ``--auth token-file`` tokens, as
on a cluster it is a projected ServiceAccount token checked by TokenReview (the
real-node e2e, tests/e2e/test_12_identity.py)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest

from lambdakube.resources import identity
from lambdakube_router.access import AuthSettings
from lambdakube_runtime import credentials
from tests.router.conftest import function
from tests.runtime.conftest import launch

WORKER = """
def handler(event, context):
    return {"doubled": event["n"] * 2}
"""

ORCHESTRATOR = """
import json, os
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    if event.get("show"):
        return {k: os.environ.get(k) for k in event["show"]}
    client = boto3.client("lambda")  # no arguments: the environment says everything
    try:
        out = client.invoke(FunctionName=event["target"], Payload=json.dumps({"n": event["n"]}))
    except ClientError as exc:
        return {"error": exc.response["Error"]["Code"], "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}
    return {"status": out["StatusCode"], "payload": json.loads(out["Payload"].read())}
"""

TOKEN = "tok-orchestrator"


def test_the_runtime_spells_the_contract_as_the_builders_do():
    assert credentials.TOKEN_FILE_VARIABLE == identity.TOKEN_FILE_VARIABLE
    assert credentials.PATH == identity.CREDENTIALS_PATH


@pytest.fixture
async def setup(make_router, tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{TOKEN},system:serviceaccount:team-a:orchestrator,uid-o\ntok-alice,alice,uid-a\n")
    router = await make_router(
        function("worker", WORKER, namespace="team-a"),
        function("worker", "def handler(event, context):\n    return 'the default namespace'\n"),
        auth=AuthSettings(mode="token-file", token_file=str(tokens)),
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        identity.TOKEN_FILE_VARIABLE: str(token_file),
        # what the pod builder adds (identity.endpoint_env)
        **{e["name"]: e["value"] for e in identity.endpoint_env(router.url("/").rstrip("/"), None)},
        # nothing of this machine's own AWS setup
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    runtime = await asyncio.to_thread(launch, "index.handler", inline_code=ORCHESTRATOR, env=env)
    try:
        yield router, runtime, token_file
    finally:
        await asyncio.to_thread(runtime.stop)


async def invoke(runtime, event):
    """The runtime's /invoke off the event loop: the router under test runs on it."""
    reply = await asyncio.to_thread(runtime.invoke, event)
    assert reply.status == 200, reply.body
    return reply.json()


async def test_a_handler_invokes_another_function_with_the_sdk_defaults(setup):
    """A plain name is the caller's namespace's function (a ServiceAccount's namespace is
    its "account"); an ARN names any other."""
    router, runtime, _ = setup
    assert await invoke(runtime, {"target": "worker", "n": 21}) == {"status": 200, "payload": {"doubled": 42}}
    got = await invoke(runtime, {"target": "lambdakube:default:function:worker", "n": 1})
    assert got == {"status": 200, "payload": "the default namespace"}


async def test_a_plain_name_from_a_user_is_the_routers_namespace(setup):
    router, _, _ = setup
    status, _, body = await router.invoke_json("worker", {}, headers={"Authorization": "Bearer tok-alice"})
    assert status == 200 and body == "the default namespace"
    # the header still wins over a ServiceAccount's own namespace
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Lambdakube-Namespace": "default"}
    status, _, body = await router.invoke_json("worker", {}, headers=headers)
    assert status == 200 and body == "the default namespace"


async def test_without_a_valid_token_the_router_refuses_the_sdk(setup):
    """The SDK's signature is not what lets it in: with a token the router does not know
    (a new client fetches the credentials again), the same call is 401."""
    _, runtime, token_file = setup
    token_file.write_text("tok-unknown\n")
    got = await invoke(runtime, {"target": "worker", "n": 1})
    assert got == {"error": "UnrecognizedClientException", "status": 401}


def get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def jwt(claims: dict) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


async def test_the_credentials_endpoint(setup):
    """Loopback callers with the process's secret get the token file's current content
    (a rotated token is served at once) and the token's own expiry; anyone else gets
    nothing."""
    _, runtime, token_file = setup
    show = [credentials.FULL_URI_VARIABLE, credentials.AUTHORIZATION_VARIABLE, identity.TOKEN_FILE_VARIABLE]
    env = await invoke(runtime, {"show": show})
    url, secret = env[credentials.FULL_URI_VARIABLE], env[credentials.AUTHORIZATION_VARIABLE]
    assert url == f"http://127.0.0.1:{runtime.port}{identity.CREDENTIALS_PATH}" and len(secret) >= 32

    status, body = await asyncio.to_thread(get, url, {"Authorization": secret})
    assert status == 200 and body["Token"] == TOKEN and body["AccessKeyId"]
    rotated = jwt({"sub": "system:serviceaccount:team-a:orchestrator", "exp": 2_000_000_000})
    token_file.write_text(rotated)
    status, body = await asyncio.to_thread(get, url, {"Authorization": secret})
    assert status == 200 and body["Token"] == rotated and body["Expiration"] == "2033-05-18T03:33:20Z"

    for headers in ({}, {"Authorization": secret[:-1]}, {"X-Env-Token": secret}):
        status, body = await asyncio.to_thread(get, url, headers)
        assert status == 401 and body["errorType"] == "Unauthorized", headers
    token_file.unlink()
    status, body = await asyncio.to_thread(get, url, {"Authorization": secret})
    assert status == 500 and body["errorType"] == "TokenUnavailable"


@pytest.mark.parametrize(
    "token, want",
    [
        pytest.param(jwt({"exp": 1_800_000_000}), 1_800_000_000, id="a JWT's exp"),
        pytest.param(jwt({"sub": "x"}), 1000 + credentials.FALLBACK_LIFETIME_SECONDS, id="no exp"),
        pytest.param(jwt({"exp": "soon"}), 1000 + credentials.FALLBACK_LIFETIME_SECONDS, id="a non-numeric exp"),
        pytest.param("opaque-token", 1000 + credentials.FALLBACK_LIFETIME_SECONDS, id="not a JWT"),
        pytest.param("a.!!!.c", 1000 + credentials.FALLBACK_LIFETIME_SECONDS, id="a broken payload"),
    ],
)
def test_expiry(token, want):
    assert credentials.expiry(token, now=1000) == want


def test_only_loopback_clients_are_answered(tmp_path):
    from lambdakube_runtime.http import Request

    token_file = tmp_path / "token"
    token_file.write_text("t")
    creds = credentials.Credentials(str(token_file), "secret")
    for loopback, status in ((False, 403), (True, 200)):
        request = Request(
            "GET", credentials.PATH, credentials.PATH, "HTTP/1.1", {"authorization": "secret"}, b"", True, loopback
        )
        assert creds.answer(request).status == status


@pytest.mark.parametrize(
    "peer, loopback",
    [
        (("127.0.0.1", 5000), True),
        (("127.8.9.1", 5000), True),
        (("::1", 5000, 0, 0), True),
        (("::ffff:127.0.0.1", 5000, 0, 0), True),
        (("10.0.0.7", 5000), False),
        (("::ffff:10.0.0.7", 5000, 0, 0), False),
        (None, False),
        ("/run/socket", False),
    ],
)
def test_loopback_peers(peer, loopback):
    from lambdakube_runtime.http import _is_loopback

    assert _is_loopback(peer) is loopback
