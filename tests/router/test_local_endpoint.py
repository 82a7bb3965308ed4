"""Local environments call the router they run under with a stock SDK: a real
``lambdakube-router`` process gives each environment (provisioned ones, started before it
listens, too) ``AWS_ENDPOINT_URL_LAMBDA`` = its own address, a region and placeholder
keys, under the function's own variables; a handler's ``boto3.client("lambda")`` with no
arguments reaches the other function."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from lambdakube.models import FunctionSpec
from lambdakube.resources import identity
from tests.procs import stop_process
from tests.router.conftest import function

REPO = Path(__file__).resolve().parents[2]

SHOW = """
import os
def handler(event, context):
    return {k: os.environ.get(k) for k in event["show"]}
"""
CALLER = """
import json
import boto3
def handler(event, context):
    out = boto3.client("lambda").invoke(FunctionName="show", Payload=json.dumps({"show": ["AWS_REGION"]}))
    return json.loads(out["Payload"].read())
"""
SHOWN = ["AWS_ENDPOINT_URL_LAMBDA", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize(
    "endpoint, env, expected",
    [
        pytest.param(None, {}, {}, id="no-endpoint"),
        pytest.param(
            "http://127.0.0.1:9",
            {},
            {
                "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9",
                "AWS_REGION": "lambdakube",
                "AWS_DEFAULT_REGION": "lambdakube",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ACCESS_KEY_ID": "lambdakube-local",
                "AWS_SECRET_ACCESS_KEY": "lambdakube-local",
            },
            id="all",
        ),
        pytest.param(
            "http://127.0.0.1:9",
            {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "mine"},
            {
                "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9",
                "AWS_DEFAULT_REGION": "lambdakube",
                "AWS_EC2_METADATA_DISABLED": "true",
            },
            id="the-functions-own-win",
        ),
    ],
)
def test_local_env(endpoint, env, expected):
    spec = FunctionSpec.model_validate({"handler": "index.handler", "image": "x", "env": env})
    assert identity.local_env(endpoint, spec) == expected


def invoke(base: str, name: str, event: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/2015-03-31/functions/{name}/invocations", data=json.dumps(event).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def test_the_router_process_gives_environments_its_address(tmp_path):
    fns = tmp_path / "fns"
    fns.mkdir()
    docs = [function("show", SHOW, provisionedConcurrency=1), function("caller", CALLER, timeoutSeconds=30)]
    (fns / "fns.yaml").write_text(yaml.safe_dump_all(docs))
    argv = [sys.executable, "-m", "lambdakube_router", "--functions", str(fns), "--backend", "local", "--port", "0"]
    argv += ["--state-dir", str(tmp_path / "state"), "--generic-pool-size", "1"]
    with open(tmp_path / "router.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the router prints it or exits
        assert line.startswith("LAMBDAKUBE_ROUTER_LISTENING "), (line, (tmp_path / "router.log").read_text())
        base = line.split()[1]
        shown = invoke(base, "show", {"show": SHOWN})  # the provisioned environment, started first
        assert shown == {
            "AWS_ENDPOINT_URL_LAMBDA": base,
            "AWS_REGION": "lambdakube",
            "AWS_DEFAULT_REGION": "lambdakube",
            "AWS_ACCESS_KEY_ID": "lambdakube-local",
            "AWS_SECRET_ACCESS_KEY": "lambdakube-local",
        }
        # a cold start on the generic spare: the SDK's defaults reach the other function
        assert invoke(base, "caller", {}) == {"AWS_REGION": "lambdakube"}
    finally:
        stop_process(proc)
