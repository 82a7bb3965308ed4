"""The router's gate in front of real handlers and real runtime processes (local
backend), with ``--auth token-file``: who gets 401, 403 and through, in Lambda's error
shape; which endpoints stay open; and the CLIs refusing an exposed router without
authentication. TokenReview and SubjectAccessReview against a real kube-apiserver are
test_router_auth_kubernetes.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lambdakube_router import keys
from lambdakube_router.access import Attributes, AuthSettings, UserInfo
from tests.router.conftest import function

HELLO = """
def handler(event, context):
    return {"hello": event.get("name")}
"""

TOKENS = 'tok-alice,alice,uid-a,"dev"\ntok-bob,bob,uid-b\n'


@pytest.fixture
async def router(make_router, tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text(TOKENS)
    return await make_router(function("hello", HELLO), auth=AuthSettings(mode="token-file", token_file=str(path)))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_lambda_error(status, headers, body, want_status: int, error_type: str) -> dict:
    assert status == want_status, body
    assert headers["x-amzn-ErrorType"] == error_type
    assert headers["X-Amz-Request-Id"]
    doc = json.loads(body)
    assert doc["errorType"] == error_type and doc["message"] == doc["errorMessage"] and doc["Type"] == "User"
    return doc


async def test_invoke_needs_a_known_token(router):
    status, headers, body = await router.invoke("hello", {"name": "x"})
    doc = assert_lambda_error(status, headers, body, 401, "UnrecognizedClientException")
    assert "Missing authentication token" in doc["message"]
    assert headers["WWW-Authenticate"] == 'Bearer realm="lambdakube"'
    for header in (bearer("tok-mallory"), {"Authorization": "Basic dG9rLWFsaWNlOg=="}):
        status, headers, body = await router.invoke("hello", {"name": "x"}, headers=header)
        assert_lambda_error(status, headers, body, 401, "UnrecognizedClientException")
    status, _, body = await router.invoke_json("hello", {"name": "x"}, headers=bearer("tok-alice"))
    assert status == 200 and body == {"hello": "x"}
    # every listed token may do everything (token-file mode: the file is the access list)
    status, _, body = await router.invoke_json("hello", {"name": "b"}, headers=bearer("tok-bob"))
    assert status == 200 and body == {"hello": "b"}


async def test_probes_metrics_document_and_announce_stay_open(router):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        async with router.client.get(path) as resp:
            assert resp.status == 200, path
    # the announce is checked by its own per-pod token (here: no announces at all)
    async with router.client.post("/internal/v1/environments/listening", json={}) as resp:
        assert resp.status == 404 and resp.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/lambdakube/v1/namespaces/default/queues/done/messages"),
        ("DELETE", "/lambdakube/v1/namespaces/default/queues/done/messages?upTo=5"),
        ("GET", "/lambdakube/v1/namespaces/default/async-events"),
        ("GET", "/lambdakube/v1/namespaces/default/functions"),
        ("GET", "/lambdakube/v1/namespaces/default/functions/hello"),
        ("GET", "/no/such/path"),
        ("POST", "/healthz"),
    ],
)
async def test_the_read_api_and_unknown_paths_need_a_token(router, method, path):
    async with router.client.request(method, path) as resp:
        assert resp.status == 401 and resp.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    async with router.client.request(method, path, headers=bearer("tok-alice")) as resp:
        assert resp.status in (200, 404, 405), await resp.text()


async def test_a_denial_is_403_access_denied_and_runs_nothing(router):
    """The gate's authorizer says no (as a SubjectAccessReview would): 403 in Lambda's
    shape, naming what was missing; the function never ran, nor was it looked up (an
    unknown function is 403 too: the caller learns nothing of what exists)."""
    asked: list = []

    async def deny(user: UserInfo, attrs: Attributes) -> bool:
        asked.append((user.username, attrs))
        return False

    router.app[keys.GATE].authorize = deny
    status, headers, body = await router.invoke("hello", {}, headers=bearer("tok-alice"))
    doc = assert_lambda_error(status, headers, body, 403, "AccessDeniedException")
    assert doc["message"] == (
        "User: alice is not authorized to perform: invoke on functions.lambdakube.dev/hello in namespace default"
    )
    status, headers, body = await router.invoke("nope", {}, headers=bearer("tok-alice"))
    assert_lambda_error(status, headers, body, 403, "AccessDeniedException")
    status, headers, body = await router.invoke(
        "lambdakube:team-b:function:hello", {}, headers=bearer("tok-alice"), params={"Qualifier": "prod"}
    )
    doc = assert_lambda_error(status, headers, body, 403, "AccessDeniedException")
    assert "invoke on functions.lambdakube.dev/hello in namespace team-b" in doc["message"]
    assert "(or invoke on functions.lambdakube.dev/hello:prod in namespace team-b)" in doc["message"]
    assert [a for _, a in asked] == [
        Attributes("invoke", "functions", "default", "hello"),
        Attributes("invoke", "functions", "default", "nope"),
        Attributes("invoke", "functions", "team-b", "hello:prod"),
        Attributes("invoke", "functions", "team-b", "hello"),
    ]
    async with router.client.delete(
        "/lambdakube/v1/namespaces/default/queues/done/messages?upTo=1", headers=bearer("tok-alice")
    ) as resp:
        assert resp.status == 403 and "delete on queues.lambdakube.dev/done" in (await resp.json())["message"]
    assert router.pool("hello").describe()["coldStarts"] == 0


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "argv",
    [
        ("-m", "lambdakube_router.cli", "dev", "examples/", "--host", "0.0.0.0", "--port", "0"),
        ("-m", "lambdakube_router", "--functions", "examples/", "--host", "0.0.0.0", "--port", "0"),
        ("-m", "lambdakube_router", "--functions", "examples/", "--host", "::", "--auth", "none", "--port", "0"),
    ],
    ids=["dev", "router-local", "router-explicit-none"],
)
def test_an_exposed_router_without_auth_refuses_to_start(argv, tmp_path):
    out = run_cli(*argv, "--state-dir", str(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "refusing to serve on" in out.stderr and "--insecure" in out.stderr
    assert "LAMBDAKUBE_ROUTER_LISTENING" not in out.stdout


def test_a_bad_auth_flag_or_token_file_is_refused(tmp_path):
    out = run_cli("-m", "lambdakube_router", "--functions", "examples/", "--auth", "webhook")
    assert out.returncode == 2 and "--auth must be none, tokenreview or token-file=PATH" in out.stderr
    bad = tmp_path / "tokens.csv"
    bad.write_text("only-a-token\n")
    out = run_cli(
        "-m", "lambdakube_router", "--functions", "examples/", "--port", "0", "--state-dir", str(tmp_path),
        "--auth", f"token-file={bad}",
    )  # fmt: skip
    assert out.returncode == 2 and f"{bad}:1: expected token,user,uid" in out.stderr, out.stderr
