"""POST /invoke: results, function errors, timeouts, single flight, context, log tail."""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import threading
import time

import pytest

from lambdakube_router import names
from lambdakube_runtime import server
from tests.runtime.harness import HOST

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def timeout_message_re(request_id: str, seconds_re: str) -> str:
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    return rf"^{iso} {re.escape(request_id)} Task timed out after {seconds_re} seconds$"


def test_success_headers_and_body(start_runtime):
    runtime = start_runtime("basic.echo", env={"LAMBDAKUBE_MEMORY_MB": "192", "LAMBDAKUBE_FUNCTION_VERSION": "5"})
    reply = runtime.invoke({"hello": ["world", 1]}, headers={"X-Request-Id": "abc-123"})
    assert reply.status == 200
    assert reply.json() == {"hello": ["world", 1]}
    assert reply.header("Content-Type") == "application/json"
    assert reply.header("X-Request-Id") == "abc-123"
    assert reply.header("X-Env-Id") == "env-test"
    assert re.fullmatch(r"\d+\.\d{3}", reply.header("X-Run-Duration-Ms"))
    run_ms = float(reply.header("X-Run-Duration-Ms"))
    assert int(reply.header("X-Billed-Duration-Ms")) == max(1, math.ceil(run_ms))
    assert int(reply.header("X-Max-Memory-Used-Mb")) > 0
    assert reply.header("X-Memory-Size-Mb") == "192"
    assert reply.header("X-Executed-Version") == "5"
    assert reply.header("X-Function-Error") is None
    assert reply.header("X-Env-Unhealthy") is None
    assert reply.header("X-Log-Result") is None  # only with X-Log-Type: Tail


@pytest.mark.parametrize(
    "raw, expected",
    [(b"", {}), (b'"just a string"', "just a string"), (b"[1, 2]", [1, 2]), (b"null", None), (b"3.5", 3.5)],
    ids=["empty-is-object", "string", "list", "null", "number"],
)
def test_any_json_event(shared_runtime, raw, expected):
    runtime = shared_runtime("basic.echo")
    reply = runtime.invoke(raw=raw)
    assert reply.status == 200 and reply.json() == expected


def test_none_result_is_null(start_runtime):
    reply = start_runtime("basic.none").invoke({})
    assert reply.status == 200 and reply.body == b"null"


def test_generated_request_id_reaches_the_context(shared_runtime):
    runtime = shared_runtime("basic.context_info")
    reply = runtime.invoke({})
    request_id = reply.header("X-Request-Id")
    assert UUID4_RE.match(request_id)
    body = reply.json()
    assert body["aws_request_id"] == body["request_id"] == request_id
    assert runtime.invoke({}).header("X-Request-Id") != request_id


def test_context_object(start_runtime):
    runtime = start_runtime(
        "basic.context_info",
        env={
            "LAMBDAKUBE_FUNCTION_NAME": "orders",
            "LAMBDAKUBE_NAMESPACE": "shop",
            "LAMBDAKUBE_ENV_ID": "env-42",
            "LAMBDAKUBE_MEMORY_MB": "256",
            "LAMBDAKUBE_TIMEOUT_SECONDS": "3",
        },
    )
    body = runtime.invoke({}, headers={"X-Request-Id": "ctx-1"}).json()
    remaining = body.pop("remaining_ms")
    assert 0 < remaining <= 3000
    assert body == {
        "aws_request_id": "ctx-1",
        "request_id": "ctx-1",
        "function_name": "orders",
        "function_version": "$LATEST",
        "memory_limit_in_mb": "256",  # a string, as Lambda's
        "invoked_function_arn": "lambdakube:shop:function:orders",  # no X-Invoked-Function-Arn
        "log_group_name": "/lambdakube/shop/orders",
        "log_stream_name": "env-42",
        "client_context": None,
        "identity": {"type": "CognitoIdentity", "cognito_identity_id": None, "cognito_identity_pool_id": None},
        "tenant_id": None,
        "timeout_seconds": 3.0,
    }
    # An earlier router deadline bounds the remaining time.
    deadline = int(time.time() * 1000) + 2000
    remaining = runtime.invoke({}, headers={"X-Deadline-Ms": str(deadline)}).json()["remaining_ms"]
    assert 0 < remaining <= 2000


def b64json(value) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


CLIENT = {"installation_id": "abc", "app_title": "Shop", "app_version_name": "1.2", "app_version_code": "12",
          "app_package_name": "com.example.shop"}  # fmt: skip

# (case, the caller's ClientContext) -> context.client_context as the handler sees it
CLIENT_CONTEXTS = [
    ("as a mobile SDK sends it", {"client": CLIENT, "custom": {"k": "v"}, "env": {"locale": "en"}},
     {"type": "ClientContext", "custom": {"k": "v"}, "env": {"locale": "en"}, "client": {"type": "Client", **CLIENT}}),
    ("custom only: client and env are None", {"custom": {"user": "u1"}},
     {"type": "ClientContext", "custom": {"user": "u1"}, "env": None, "client": None}),
    ("a partial client: its other fields are None", {"client": {"installation_id": "abc"}},
     {"type": "ClientContext", "custom": None, "env": None,
      "client": {"type": "Client", **dict.fromkeys(CLIENT), "installation_id": "abc"}}),
    ("unknown keys are dropped", {"custom": 1, "other": 2},
     {"type": "ClientContext", "custom": 1, "env": None, "client": None}),
    ("an empty object", {}, {"type": "ClientContext", "custom": None, "env": None, "client": None}),
]  # fmt: skip


@pytest.mark.parametrize("sent,seen", [c[1:] for c in CLIENT_CONTEXTS], ids=[c[0] for c in CLIENT_CONTEXTS])
def test_client_context_is_lambdas_object(shared_runtime, sent, seen):
    runtime = shared_runtime("basic.context_info")
    reply = runtime.invoke({}, headers={"X-Client-Context": b64json(sent)})
    assert reply.status == 200 and reply.json()["client_context"] == seen


def test_a_lambda_handler_reads_the_context_as_on_lambda(shared_runtime):
    runtime = shared_runtime("basic.lambda_style", env={"LAMBDAKUBE_MEMORY_MB": "512"})
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"
    sent = {"client": {"installation_id": "i-1", "app_title": "Shop"}, "custom": {"user": "u1"}, "env": {"a": "b"}}
    reply = runtime.invoke({}, headers={"X-Client-Context": b64json(sent), server.INVOKED_ARN_HEADER: arn})
    assert reply.status == 200
    assert reply.json() == {
        "custom": {"user": "u1"},
        "env": {"a": "b"},
        "installation_id": "i-1",
        "app_title": "Shop",
        "cognito_identity_id": None,
        "cognito_identity_pool_id": None,
        "account": "123456789012",
        "invoked_function_arn": arn,
        "memory": 512,
    }
    # the next invocation has its own context: no client context, lambdakube's ARN
    body = runtime.invoke({}).json()
    assert body["custom"] is None and body["installation_id"] is None
    assert body["invoked_function_arn"] == "lambdakube:default:function:fn"


def test_the_runtime_spells_the_invoked_arn_header_as_the_router_does():
    assert server.INVOKED_ARN_HEADER == names.INVOKED_ARN_HEADER.lower()


def test_client_context_refusals(shared_runtime):
    runtime = shared_runtime("basic.context_info")

    for bad in ("!!!not-base64!!!", base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b"{nope").decode()):
        reply = runtime.invoke({}, headers={"X-Client-Context": bad})
        assert reply.status == 400, bad
        assert reply.json()["errorType"] == "InvalidRequestContentException"
    assert runtime.invoke({}).status == 200  # a rejected request does not leave the env busy


def test_bad_json_payload_is_400(start_runtime):
    runtime = start_runtime("basic.count")
    reply = runtime.invoke(raw=b'{"unterminated": ')
    assert reply.status == 400
    body = reply.json()
    assert body["errorType"] == "InvalidRequestContentException"
    assert body["errorMessage"].startswith("Could not parse request body into json: ")
    assert runtime.invoke(raw=b"\xff\xfe").status == 400  # not UTF-8
    # Nothing ran: the next invocation is the first one (count 1, cold start).
    reply = runtime.invoke({})
    assert reply.json()["count"] == 1 and reply.header("X-Init-Duration-Ms") is not None


def test_handler_exception_is_a_function_error(shared_runtime):
    runtime = shared_runtime("basic.boom")
    reply = runtime.invoke({"why": "bad input"}, headers={"X-Request-Id": "err-1"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.header("X-Env-Unhealthy") is None
    body = reply.json()
    assert set(body) == {"errorType", "errorMessage", "requestId", "stackTrace"}
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom: bad input"
    assert body["requestId"] == "err-1"
    assert all(isinstance(frame, str) for frame in body["stackTrace"])
    assert re.match(r'  File ".*basic\.py", line \d+, in boom\n    raise ValueError', body["stackTrace"][-1])
    assert not any("lambdakube_runtime" in frame for frame in body["stackTrace"])
    runtime.wait_for_line("[ERROR] ValueError: boom: bad input")
    # The environment keeps serving.
    assert runtime.get_json("/readyz")[0] == 200
    again = runtime.invoke({"why": 2})
    assert again.status == 200 and again.json()["errorMessage"] == "boom: 2"


def test_unserialisable_result_is_marshal_error(start_runtime):
    runtime = start_runtime("basic.unserialisable")
    reply = runtime.invoke({})
    assert reply.status == 200 and reply.header("X-Function-Error") == "Unhandled"
    body = reply.json()
    assert body["errorType"] == "Runtime.MarshalError"
    assert "not JSON serializable" in body["errorMessage"]
    assert runtime.invoke({}).status == 200 and runtime.get_json("/readyz")[0] == 200


def test_sys_exit_in_handler_recycles_the_environment(start_runtime):
    runtime = start_runtime("basic.exits")
    reply = runtime.invoke({}, headers={"X-Request-Id": "exit-1"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.header("X-Env-Unhealthy") == "true"
    body = reply.json()
    assert body["errorType"] == "Runtime.ExitError" and "exit status 3" in body["errorMessage"]
    assert runtime.wait_exit() == 0


def test_async_handler(start_runtime):
    runtime = start_runtime("basic.async_echo")
    first = runtime.invoke({"n": 1}, headers={"X-Request-Id": "async-1"})
    second = runtime.invoke({"n": 2})
    assert first.status == second.status == 200
    body = first.json()
    assert body["event"] == {"n": 1} and body["requestId"] == "async-1"
    assert body["thread"] == body["init"]  # the worker thread's own event loop
    assert second.json()["event"] == {"n": 2}
    assert second.json()["sameLoopAsBefore"] is True


def test_async_handler_exception(start_runtime):
    runtime = start_runtime("basic.async_boom")
    reply = runtime.invoke({})
    assert reply.status == 200 and reply.header("X-Function-Error") == "Unhandled"
    body = reply.json()
    assert body["errorType"] == "LookupError" and body["errorMessage"] == "async failure"
    assert "in async_boom" in body["stackTrace"][-1]
    assert not any("asyncio" in frame or "lambdakube_runtime" in frame for frame in body["stackTrace"])
    assert runtime.invoke({}).status == 200  # the worker's loop survives a failed coroutine


def test_log_tail(start_runtime):
    runtime = start_runtime("basic.chatty")
    reply = runtime.invoke({}, headers={"X-Request-Id": "tail-1", "X-Log-Type": "Tail"})
    assert reply.status == 200 and reply.json() == "ok"
    tail = reply.log_tail()
    lines = tail.splitlines()
    assert lines[0] == "START RequestId: tail-1 Version: $LATEST"
    assert "hello from print tail-1" in lines
    assert "hello from stderr" in lines
    assert any(line.startswith("[WARNING]\t") and line.endswith("\ttail-1\ta warning via logging") for line in lines)
    assert lines[-2] == "END RequestId: tail-1"
    assert lines[-1].startswith("REPORT RequestId: tail-1\tDuration: ")
    # Handler output still reached the pod log, exactly once.
    runtime.wait_for_line("REPORT RequestId: tail-1")
    assert runtime.stdout.count("hello from print tail-1") == 1
    assert sum("a warning via logging" in line for line in runtime.stdout) == 1
    # The next invocation's tail holds only its own log.
    second = runtime.invoke({}, headers={"X-Request-Id": "tail-2", "X-Log-Type": "Tail"})
    assert "tail-1" not in second.log_tail() and "hello from print tail-2" in second.log_tail()


def test_log_tail_keeps_the_last_4k(start_runtime):
    runtime = start_runtime("basic.flood")
    reply = runtime.invoke({"lines": 500}, headers={"X-Request-Id": "flood", "X-Log-Type": "Tail"})
    assert reply.json() == 500
    raw = base64.b64decode(reply.header("X-Log-Result"))
    assert len(raw) == 4096
    text = raw.decode()
    assert "line 00000" not in text and "line 00499" in text
    assert text.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId: flood\t")


def test_error_is_in_log_tail(shared_runtime):
    reply = shared_runtime("basic.boom").invoke({"why": "tail"}, headers={"X-Log-Type": "Tail"})
    assert "[ERROR] ValueError: boom: tail" in reply.log_tail()


# -- one request at a time ----------------------------------------------------------------


def _invoke_in_thread(runtime, event, request_id):  # -> (thread, {"reply": Reply})
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(reply=runtime.invoke(event, headers={"X-Request-Id": request_id}))
    )
    thread.start()
    return thread, result


def test_concurrent_invocation_is_refused_immediately(start_runtime):
    runtime = start_runtime("basic.slow")
    thread, result = _invoke_in_thread(runtime, {"seconds": 1.0}, "first")
    runtime.wait_for_line("SLOW-START first")

    refusals = [runtime.invoke({"seconds": 0}, headers={"X-Request-Id": f"second-{n}"}) for n in range(3)]
    assert thread.is_alive(), "the refusals must not wait for the running invocation"
    for reply in refusals:
        assert reply.status == 409
        body = reply.json()
        assert body["errorType"] == "EnvironmentBusy"
        assert "already running request first" in body["errorMessage"]
        assert reply.header("X-Request-Id").startswith("second-")
    # Probes are answered while the handler runs.
    assert runtime.get_json("/healthz")[1]["state"] == "ready"
    assert runtime.get_json("/readyz")[0] == 200

    thread.join(15)
    assert result["reply"].status == 200 and result["reply"].json() == {"slept": 1.0}
    # Refused requests never ran (no START line) and the environment is free again.
    assert not any(line.startswith("START RequestId: second-") for line in runtime.stdout)
    assert runtime.invoke({"seconds": 0}).status == 200


def test_simultaneous_arrivals_only_one_runs(start_runtime):
    runtime = start_runtime("basic.slow")
    barrier = threading.Barrier(6)
    results: list = []

    def go(n):
        conn = runtime.connection()
        conn.connect()
        barrier.wait()  # all connected; fire together
        conn.request("POST", "/invoke", body=b'{"seconds": 1.0}', headers={"X-Request-Id": f"r{n}"})
        response = conn.getresponse()
        results.append((response.status, response.read()))
        conn.close()

    threads = [threading.Thread(target=go, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(status for status, _ in results) == [200] + [409] * 5
    assert sum(line.startswith("START RequestId: ") for line in runtime.stdout) == 1


def test_client_hanging_up_does_not_free_the_environment(start_runtime):
    runtime = start_runtime("basic.slow")
    body = json.dumps({"seconds": 1.0}).encode()
    with socket.create_connection((HOST, runtime.port)) as sock:
        head = b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone\r\nContent-Length: %d\r\n\r\n" % len(body)
        sock.sendall(head + body)
        runtime.wait_for_line("SLOW-START gone")
    busy = runtime.invoke({"seconds": 0})
    assert busy.status == 409 and "request gone" in busy.json()["errorMessage"]
    runtime.wait_for_line("REPORT RequestId: gone")
    runtime.wait_until(lambda: runtime.invoke({"seconds": 0}).status == 200)


# -- timeouts -------------------------------------------------------------------------------


def test_timeout_recycles_the_environment(start_runtime):
    runtime = start_runtime("basic.slow", env={"LAMBDAKUBE_TIMEOUT_SECONDS": "0.3"})
    reply = runtime.invoke({"seconds": 30}, headers={"X-Request-Id": "slowpoke"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.header("X-Env-Unhealthy") == "true"
    assert reply.header("Connection") == "close"
    body = reply.json()
    assert set(body) == {"errorType", "errorMessage"}
    assert body["errorType"] == "Sandbox.Timedout"
    assert re.match(timeout_message_re("slowpoke", r"0\.30"), body["errorMessage"])
    assert float(reply.header("X-Run-Duration-Ms")) >= 0 and reply.header("X-Billed-Duration-Ms") is not None
    # A Python thread cannot be killed: the process exits instead.
    assert runtime.wait_exit() == 0
    stdout = runtime.stdout
    assert "END RequestId: slowpoke" in stdout
    assert any(line.startswith("REPORT RequestId: slowpoke\t") for line in stdout)
    assert any(line.endswith("slowpoke Task timed out after 0.30 seconds") for line in stdout)


def test_unhealthy_environment_refuses_work_until_it_exits(start_runtime):
    runtime = start_runtime(
        "basic.slow",
        env={"LAMBDAKUBE_TIMEOUT_SECONDS": "0.3", "LAMBDAKUBE_UNHEALTHY_EXIT_DELAY_SECONDS": "1"},
    )
    reply = runtime.invoke({"seconds": 30}, headers={"X-Log-Type": "Tail"})
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.30 seconds" in reply.log_tail()
    assert runtime.get_json("/readyz") == (503, {"ready": False, "state": "unhealthy", "envId": "env-test"})
    assert runtime.get_json("/healthz")[1]["state"] == "unhealthy"
    refused = runtime.invoke({"seconds": 0})
    assert refused.status == 503 and refused.json()["errorType"] == "EnvironmentUnhealthy"
    assert runtime.wait_exit() == 0


def test_router_deadline_header_shortens_the_timeout(start_runtime):
    runtime = start_runtime("basic.slow", env={"LAMBDAKUBE_TIMEOUT_SECONDS": "30"})
    deadline = int(time.time() * 1000) + 400
    reply = runtime.invoke({"seconds": 30}, headers={"X-Deadline-Ms": str(deadline), "X-Request-Id": "dl"})
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    assert re.match(timeout_message_re("dl", r"0\.\d\d"), reply.json()["errorMessage"])
    assert reply.header("X-Env-Unhealthy") == "true"
    assert runtime.wait_exit() == 0


def test_deadline_already_passed_does_not_run_the_handler(start_runtime):
    runtime = start_runtime("basic.count")
    past = int(time.time() * 1000) - 1000
    reply = runtime.invoke({}, headers={"X-Deadline-Ms": str(past), "X-Request-Id": "late"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.header("X-Env-Unhealthy") is None
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    # Nothing ran, nothing is stuck: the environment serves the next call as its first.
    assert runtime.get_json("/readyz")[0] == 200
    reply = runtime.invoke({})
    assert reply.json()["count"] == 1 and reply.header("X-Init-Duration-Ms") is not None
    assert runtime.invoke({}, headers={"X-Deadline-Ms": "soon"}).status == 400


def test_handler_closing_stdout_does_not_break_logging(start_runtime):
    """The tee standing in for sys.stdout is reused across invocations; a function that
    closes it must not close the pod's stdout or break the next invocation's capture."""
    runtime = start_runtime("basic.closes_stdout")
    for request_id in ("close-1", "close-2"):
        reply = runtime.invoke({}, headers={"X-Request-Id": request_id, "X-Log-Type": "Tail"})
        assert reply.status == 200 and reply.json() == "closed"
        assert f"after close {request_id}" in reply.log_tail().splitlines()
        runtime.wait_for_line(f"REPORT RequestId: {request_id}")
    assert "after close close-2" in runtime.stdout
