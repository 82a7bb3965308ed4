"""Runtime API functions end to end through the router on the local backend: the seeds'
Node.js handler (a module-level ``instanceId``: the same across warm invokes of one
environment, another in each environment), the Tail log, function errors and a
``provided`` shell bootstrap, all as inline code of Function manifests."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil

import pytest

from tests.router.conftest import function
from tests.runtime.runtime_clients import tool_root

INSTANCE = """
import { randomUUID } from "node:crypto";

const instanceId = randomUUID();
let invocations = 0;

export const handler = async (event, context) => {
  invocations += 1;
  console.log(`instance ${instanceId} invocation ${invocations}`);
  if (event.fail) throw new Error("worker failed");
  if (event.holdMs) await new Promise((resolve) => setTimeout(resolve, event.holdMs));
  return { instanceId, invocations, requestId: context.awsRequestId, version: context.functionVersion };
};
"""

SHELL = """#!/bin/sh
set -eu
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\\r')
  rm -f "$headers"
  curl -sS -o /dev/null "$api/invocation/$id/response" -d "{\\"shell\\": $event}"
done
"""


@pytest.fixture(autouse=True)
def _node():
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `apt-get install nodejs` (Debian's, v18+)", pytrace=False)


async def test_the_instance_repeats_across_warm_invokes(make_router):
    router = await make_router(function("instance", INSTANCE, runtime="nodejs20.x"))
    seen = []
    for _ in range(4):
        status, headers, body = await router.invoke_json("instance", {})
        assert status == 200, body
        seen.append((headers["X-Cold-Start"], body["instanceId"], body["invocations"]))
    assert [cold for cold, _, _ in seen] == ["true", "false", "false", "false"]
    assert len({instance for _, instance, _ in seen}) == 1
    assert [n for _, _, n in seen] == [1, 2, 3, 4]


async def test_each_environment_has_its_own_instance(make_router):
    router = await make_router(function("instance", INSTANCE, runtime="nodejs20.x"))
    # Three at once, each holding its environment: three environments, three instances.
    results = await asyncio.gather(*(router.invoke_json("instance", {"holdMs": 300}) for _ in range(3)))
    assert all(status == 200 for status, _, _ in results)
    instances = {body["instanceId"] for _, _, body in results}
    envs = {headers["X-Environment-Id"] for _, headers, _ in results}
    assert len(instances) == len(envs) == 3
    # Warm again: each answer comes from one of those environments, with its instance.
    for _ in range(3):
        _, headers, body = await router.invoke_json("instance", {})
        assert headers["X-Cold-Start"] == "false"
        assert body["instanceId"] in instances


async def test_tail_log_and_function_errors_through_the_router(make_router):
    router = await make_router(function("instance", INSTANCE, runtime="nodejs20.x"))
    status, headers, body = await router.invoke_json("instance", {}, headers={"X-Amz-Log-Type": "Tail"})
    assert status == 200
    tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
    assert f"instance {body['instanceId']} invocation 1" in tail
    assert "REPORT RequestId: " in tail and "Init Duration: " in tail
    assert float(headers["X-Init-Duration-Ms"]) > 0
    status, headers, body = await router.invoke_json("instance", {"fail": True})
    assert status == 200
    assert headers["X-Amz-Function-Error"] == "Unhandled"
    assert body["errorType"] == "Error" and body["errorMessage"] == "worker failed"


async def test_a_provided_shell_bootstrap(make_router):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: `apt-get install curl`", pytrace=False)
    router = await make_router(function("shell", SHELL, runtime="provided"))
    status, _, body = await router.invoke("shell", {"n": 1})
    assert status == 200
    assert json.loads(body) == {"shell": {"n": 1}}


WORKER = """
import { randomUUID } from "node:crypto";

const instanceId = randomUUID();

export const handler = async (event) => {
  console.log(`worker ${instanceId} got ${event.n}`);
  await new Promise((resolve) => setTimeout(resolve, 200)); // hold the environment
  return { instanceId, n: event.n, doubled: event.n * 2 };
};
"""

# The seeds' orchestrator: @aws-sdk/client-lambda, ten concurrent invokes of the worker
# with LogType Tail. An ES module importing the SDK from NODE_PATH, as a Lambda function
# imports the runtime's own SDK. The endpoint comes in the event only because the test's
# router port is known once it listens; the SDK reads it, and the region and
# credentials, from the environment as in any Lambda function.
ORCHESTRATOR = """
import { LambdaClient, InvokeCommand } from "@aws-sdk/client-lambda";

export const handler = async (event) => {
  process.env.AWS_ENDPOINT_URL_LAMBDA ??= event.endpoint;
  const client = new LambdaClient({});
  const calls = Array.from({ length: 10 }, (_, n) =>
    client.send(
      new InvokeCommand({
        FunctionName: "worker",
        Payload: JSON.stringify({ n }),
        LogType: "Tail",
      }),
    ),
  );
  const answers = await Promise.all(calls);
  return answers.map((answer) => ({
    status: answer.StatusCode,
    payload: JSON.parse(Buffer.from(answer.Payload).toString()),
    log: Buffer.from(answer.LogResult, "base64").toString(),
  }));
};
"""


async def test_the_seeds_orchestrator_fans_out_with_the_aws_sdk(make_router):
    sdk = tool_root("nodesdk") / "node_modules"
    credentials = {"AWS_ACCESS_KEY_ID": "lambdakube", "AWS_SECRET_ACCESS_KEY": "unused", "NODE_PATH": str(sdk)}
    orchestrator = function(
        "orchestrator",
        ORCHESTRATOR,
        runtime="nodejs20.x",
        timeoutSeconds=30,
        env=credentials,
    )
    router = await make_router(orchestrator, function("worker", WORKER, runtime="nodejs20.x"))
    status, _, body = await router.invoke_json("orchestrator", {"endpoint": router.url("/")[:-1]})
    assert status == 200, body
    assert [answer["status"] for answer in body] == [200] * 10
    assert [answer["payload"]["doubled"] for answer in body] == [n * 2 for n in range(10)]
    # Each worker environment has its own instance: more than one served the ten calls
    # at once (each holds its environment a while), never more than were started (a
    # waiting call takes whichever environment is free first, maybe not its own).
    instances = {answer["payload"]["instanceId"] for answer in body}
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/worker")
    assert 1 < len(instances) <= len(state["pool"]["environments"])
    for n, answer in enumerate(body):
        assert f"worker {answer['payload']['instanceId']} got {n}" in answer["log"]
        assert "REPORT RequestId: " in answer["log"]
