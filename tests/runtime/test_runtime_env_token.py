"""An environment serves ``/init`` and ``/invoke`` only to whoever shows its token
(``X-Env-Token``, from ``LAMBDAKUBE_ENV_TOKEN``): anything else that reaches its address,
another function's handler included, gets 401 before anything runs. The kubelet's probes
stay open, and the handler's environment no longer holds the token."""

from __future__ import annotations

import json

import pytest

from lambdakube.resources import env_token
from lambdakube_runtime import server

TOKEN = "s3cret-token-of-this-environment"
SHOW_ENV = "import os\ndef handler(event, context):\n    return {'token': os.environ.get('LAMBDAKUBE_ENV_TOKEN')}\n"


def test_the_runtime_spells_the_contract_as_the_builders_do():
    assert server.TOKEN_VARIABLE == env_token.VARIABLE
    assert server.TOKEN_HEADER == env_token.HEADER.lower()


@pytest.fixture(scope="module")
def guarded():
    from tests.runtime.conftest import launch

    runtime = launch("index.handler", inline_code=SHOW_ENV, env={env_token.VARIABLE: TOKEN})
    yield runtime
    runtime.stop()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no token"),
        pytest.param({env_token.HEADER: "wrong"}, id="a wrong token"),
        pytest.param({env_token.HEADER: TOKEN[:-1]}, id="a prefix of the token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, id="the token in another header"),
    ],
)
@pytest.mark.parametrize("path", ["/invoke", "/init"])
def test_a_request_without_the_token_is_401(guarded, headers, path):
    reply = guarded.request("POST", path, b"{}", headers)
    assert reply.status == 401, reply.body
    assert reply.json()["errorType"] == "Unauthorized"


def test_the_token_opens_invoke_and_the_handler_does_not_see_it(guarded):
    reply = guarded.invoke({}, headers={env_token.HEADER: TOKEN})
    assert reply.status == 200, reply.body
    assert reply.json() == {"token": None}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_stay_open(guarded, path):
    status, body = guarded.get_json(path)
    assert status == 200, body


def test_a_generic_environment_takes_its_code_only_with_its_token(start_runtime):
    runtime = start_runtime(None, env={env_token.VARIABLE: TOKEN}, code_dir=None, wait=None)
    runtime.wait_until(lambda: runtime.get_json("/healthz")[0] == 200)
    body = json.dumps({"functionName": "fn", "handler": "index.handler", "inlineCode": SHOW_ENV}).encode()
    assert runtime.request("POST", "/init", body).status == 401
    assert runtime.get_json("/healthz")[1]["state"] == "generic"  # nothing ran
    reply = runtime.request("POST", "/init", body, {env_token.HEADER: TOKEN})
    assert reply.status == 200, reply.body


def test_blank_runtime_variables_are_unset():
    """What a pod with envFrom carries (``runtime_env.blanks``): each of the runtime's
    variables empty, and the runtime starts as if none were set (a generic runtime,
    waiting for /init), not with an empty handler or token."""
    from lambdakube.resources import runtime_env
    from tests.runtime.conftest import launch

    blanks = {v: "" for v in runtime_env.VARIABLES if v not in ("LAMBDAKUBE_ENV_ID",)}
    runtime = launch(None, env=blanks, code_dir=None, wait=None)
    try:
        status, body = runtime.get_json("/healthz")
        assert status == 200 and body["state"] == "generic"
        assert runtime.request("POST", "/invoke", b"{}").status != 401  # no token: none asked
    finally:
        runtime.stop()
