"""The Runtime API's contract, seen from a runtime: a probe ``bootstrap`` (stdlib Python,
``clients/probe``) makes the calls an event asks for and answers with what it saw: the
``/next`` headers, its environment, and the API's answers to calls Lambda refuses."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.runtime.runtime_clients import CLIENTS

PROBE = str(CLIENTS / "probe")


@pytest.fixture(scope="module")
def probe(shared_runtime):
    return shared_runtime(
        "probe.handler",
        code_dir=PROBE,
        env={
            "LAMBDAKUBE_RUNTIME": "provided.al2023",
            "LAMBDAKUBE_FUNCTION_NAME": "probe",
            "LAMBDAKUBE_NAMESPACE": "team-a",
            "LAMBDAKUBE_MEMORY_MB": "256",
            "LAMBDAKUBE_TIMEOUT_SECONDS": "7",
            "GREETING": "hi",
        },
    )


def test_next_carries_lambdas_invocation_headers(probe):
    arn = "arn:aws:lambda:us-east-1:123456789012:function:probe:7"
    cc = {"custom": {"a": 1}, "client": {"installation_id": "i"}}
    headers = {
        "X-Request-Id": "req-headers",
        "X-Invoked-Function-Arn": arn,
        "X-Client-Context": base64.b64encode(json.dumps(cc).encode()).decode(),
    }
    seen = probe.invoke({"x": 1}, headers=headers).json()["headers"]
    assert seen["lambda-runtime-aws-request-id"] == "req-headers"
    assert seen["lambda-runtime-invoked-function-arn"] == arn
    assert json.loads(seen["lambda-runtime-client-context"]) == cc
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", seen["lambda-runtime-trace-id"]
    )
    assert seen["content-type"] == "application/json"
    assert "lambda-runtime-cognito-identity" not in seen  # no Cognito: omitted, as Lambda does
    deadline = int(seen["lambda-runtime-deadline-ms"])
    assert int(probe.invoke({}).json()["headers"]["lambda-runtime-deadline-ms"]) > deadline


def test_the_runtime_gets_lambdas_variables(probe):
    env = probe.invoke({}).json()["env"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/lambdakube/team-a/probe"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\]env-test", env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert env["_HANDLER"] == "probe.handler"
    assert env["LAMBDA_TASK_ROOT"] == PROBE
    assert env["AWS_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_provided.al2023"
    # The supervisor's own secrets and pipes never reach the runtime.
    assert not {"LAMBDAKUBE_ENV_TOKEN", "LAMBDAKUBE_PARENT_FD", "LAMBDAKUBE_READY_FD"} & set(env)


def test_calls_lambda_refuses(probe):
    calls = probe.invoke({"calls": ["wrong-id", "init-error-late", "unknown-path"]}).json()["calls"]
    assert calls["wrong-id"] == {
        "status": 400,
        "body": {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"},
    }
    assert calls["init-error-late"]["status"] == 403
    assert calls["init-error-late"]["body"]["errorType"] == "InvalidStateTransition"
    assert calls["unknown-path"]["status"] == 404


def test_a_chunked_response(probe):
    reply = probe.invoke({"respond": "chunked"}, headers={"X-Request-Id": "req-chunked"})
    assert reply.header("X-Function-Error") is None
    assert reply.json()["headers"]["lambda-runtime-aws-request-id"] == "req-chunked"
    probe.wait_for_line("probe: response answered req-chunked 202")


def test_a_chunked_error_with_its_type_in_a_trailer(probe):
    reply = probe.invoke({"respond": "chunked-error"})
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json() == {"errorType": "ChunkedError", "errorMessage": "in chunks"}


def test_an_oversize_response_is_refused_and_the_runtime_keeps_serving(probe):
    reply = probe.invoke({"respond": "big", "bytes": 6 * 1024 * 1024 + 200}, headers={"X-Log-Type": "Tail"})
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json()["errorType"] == "Function.ResponseSizeTooLarge"
    line = probe.wait_for_line("probe: big answered")
    answered = json.loads(line.split("answered", 1)[1])
    assert answered == {
        "status": 413,
        "body": {
            "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
            "errorType": "RequestEntityTooLarge",
        },
    }
    # Read to its end on the same connection: the runtime's next /next works.
    assert probe.invoke({}).header("X-Function-Error") is None


def test_a_response_just_under_the_limit_passes(probe):
    size = 6 * 1024 * 1024  # 6 MiB of payload + quotes: under 6 MiB + 100 bytes
    reply = probe.invoke({"respond": "big", "bytes": size})
    assert reply.header("X-Function-Error") is None
    assert len(reply.body) == size + 2


def test_init_error_posted_by_the_runtime(start_runtime):
    rt = start_runtime(
        "probe.handler",
        code_dir=PROBE,
        env={"LAMBDAKUBE_RUNTIME": "provided", "PROBE_INIT": "init-error"},
        wait="settled",
    )
    status, body = rt.get_json("/readyz")
    assert status == 503 and body["state"] == "init_failed"
    assert body["error"] == {"errorType": "Probe.InitFailed", "errorMessage": "no config", "stackTrace": ["here"]}
    reply = rt.invoke({})
    assert reply.status == 502
    assert reply.json()["errorType"] == "Runtime.InitError"
    assert reply.json()["errorMessage"] == "Probe.InitFailed: no config"
    assert "probe: failing Init" in rt.stdout


def test_a_runtime_that_exits_before_next_fails_init(start_runtime):
    rt = start_runtime(
        "probe.handler", code_dir=PROBE, env={"LAMBDAKUBE_RUNTIME": "provided", "PROBE_INIT": "exit"}, wait="settled"
    )
    status, body = rt.get_json("/readyz")
    assert status == 503
    assert body["error"]["errorType"] == "Runtime.ExitError"
    assert body["error"]["errorMessage"] == "Error: Runtime exited with error: exit status 4"
