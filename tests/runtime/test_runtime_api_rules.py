"""The Runtime API's rules and the runtime table as data: pure functions, named cases."""

from __future__ import annotations

import pytest

from lambdakube_runtime import runtimes
from lambdakube_runtime.http import ProtocolError, _Chunked
from lambdakube_runtime.runtime_api import (
    DELIVER,
    ERROR,
    INIT,
    INIT_ERROR,
    INVOKING,
    PARK,
    READY,
    REFUSE,
    RESPONSE,
    TOO_LARGE,
    WAITING,
    decide,
    error_type_of,
    exit_message,
    init_error_of,
    route,
)

P = "/2018-06-01/runtime/"

ROUTES = {
    "next": ("GET", P + "invocation/next", ("next", "")),
    "next with POST": ("POST", P + "invocation/next", ("method", "")),
    "response": ("POST", P + "invocation/abc/response", ("response", "abc")),
    "error": ("POST", P + "invocation/abc/error", ("error", "abc")),
    "response with GET": ("GET", P + "invocation/abc/response", ("method", "abc")),
    "init error": ("POST", P + "init/error", ("init_error", "")),
    "empty id": ("POST", P + "invocation//response", ("", "")),
    "other version": ("GET", "/2020-01-01/runtime/invocation/next", ("", "")),
    "unknown": ("GET", P + "invocation/abc/what", ("", "")),
}


@pytest.mark.parametrize("name", ROUTES)
def test_route(name):
    method, path, want = ROUTES[name]
    assert route(method, path) == want


# (phase, current, event waiting, parked, endpoint, request id, oversize) -> action, status
DECISIONS = {
    "first next ends Init": ((INIT, None, False, False, "next", "", 0), (READY, 0)),
    "next with an event waiting": ((WAITING, None, True, False, "next", "", 0), (DELIVER, 0)),
    "next with nothing to do parks": ((WAITING, None, False, False, "next", "", 0), (PARK, 0)),
    "a second parked next": ((WAITING, None, False, True, "next", "", 0), (REFUSE, 403)),
    "next before answering": ((INVOKING, "a", False, False, "next", "", 0), (REFUSE, 403)),
    "response of the invocation": ((INVOKING, "a", False, False, "response", "a", 0), (RESPONSE, 0)),
    "oversize response": ((INVOKING, "a", False, False, "response", "a", 7_000_000), (TOO_LARGE, 0)),
    "error of the invocation": ((INVOKING, "a", False, False, "error", "a", 0), (ERROR, 0)),
    "response of another id": ((INVOKING, "a", False, False, "response", "b", 0), (REFUSE, 400)),
    "response when idle": ((WAITING, None, False, True, "response", "a", 0), (REFUSE, 400)),
    "error during Init": ((INIT, None, False, False, "error", "a", 0), (REFUSE, 400)),
    "init error during Init": ((INIT, None, False, False, "init_error", "", 0), (INIT_ERROR, 0)),
    "init error after Init": ((WAITING, None, False, True, "init_error", "", 0), (REFUSE, 403)),
    "unknown path": ((WAITING, None, False, False, "", "", 0), (REFUSE, 404)),
    "wrong method": ((WAITING, None, False, False, "method", "", 0), (REFUSE, 405)),
}


@pytest.mark.parametrize("name", DECISIONS)
def test_decide(name):
    (phase, current, waiting, parked, endpoint, request_id, oversize), (action, status) = DECISIONS[name]
    decision = decide(
        phase=phase,
        current=current,
        event_waiting=waiting,
        parked=parked,
        endpoint=endpoint,
        request_id=request_id,
        oversize=oversize,
    )
    assert (decision.action, decision.status) == (action, status)


ERROR_TYPES = {
    "runtime type kept": ("Runtime.ExitError", "Runtime.ExitError"),
    "function type kept": ("Function.ResponseSizeTooLarge", "Function.ResponseSizeTooLarge"),
    "odd function type": ("Function.x", "Function.Unknown"),
    "plain name": ("ValueError", "Runtime.Unknown"),
    "absent": (None, "Runtime.Unknown"),
}


@pytest.mark.parametrize("name", ERROR_TYPES)
def test_error_type_of(name):
    value, want = ERROR_TYPES[name]
    assert error_type_of(value) == want


INIT_ERRORS = {
    "lambda's json": (
        b'{"errorType":"Runtime.ImportModuleError","errorMessage":"no module","stackTrace":["a"]}',
        None,
        ("Runtime.ImportModuleError", "no module", ["a"]),
    ),
    "text with a type header": (b"it broke", "Runtime.Custom", ("Runtime.Custom", "it broke", [])),
    "empty": (b"", None, ("Runtime.Unknown", "", [])),
    "json without type": (b'{"errorMessage":"m"}', "Function.bad", ("Function.Unknown", "m", [])),
}


@pytest.mark.parametrize("name", INIT_ERRORS)
def test_init_error_of(name):
    body, header, want = INIT_ERRORS[name]
    error = init_error_of(body, header)
    assert (error.error_type, error.message, error.stack_trace) == want


def test_exit_messages():
    assert exit_message("r", 2) == "RequestId: r Error: Runtime exited with error: exit status 2"
    assert exit_message(None, -9) == "Error: Runtime exited with error: signal: killed"


RUNTIMES = {
    # runtime -> (builtin, inline file for module "index")
    "": (True, "index.py"),
    "python3.12": (True, "index.py"),
    "nodejs20.x": (False, "index.mjs"),
    "nodejs22.x": (False, "index.mjs"),
    "provided": (False, "bootstrap"),
    "provided.al2023": (False, "bootstrap"),
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtimes(runtime):
    builtin, filename = RUNTIMES[runtime]
    assert runtimes.check(runtime) == runtime
    assert runtimes.is_builtin(runtime) is builtin
    assert runtimes.inline_filename(runtime, "index") == filename
    assert runtimes.inline_filename(runtime, "index", "index.js") == "index.js"


@pytest.mark.parametrize("runtime", ["java21", "nodejs", "nodejsX.x", "provided.al3", "go1.x"])
def test_unknown_runtimes(runtime):
    with pytest.raises(runtimes.UnknownRuntime):
        runtimes.check(runtime)


COMMANDS = {
    "provided": ("provided", {}, ["/task/bootstrap"]),
    "node, our bootstrap": ("nodejs20.x", {}, ["node", runtimes.NODE_BOOTSTRAP]),
    "node binary chosen": ("nodejs20.x", {"LAMBDAKUBE_NODE": "/n"}, ["/n", runtimes.NODE_BOOTSTRAP]),
    "node, aws-lambda-ric": (
        "nodejs20.x",
        {"LAMBDAKUBE_NODE_RIC": "/r.mjs", "_HANDLER": "a.b"},
        ["node", "/r.mjs", "a.b"],
    ),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_command(name):
    runtime, environ, want = COMMANDS[name]
    assert runtimes.command(runtime, "/task", environ) == want


def test_lambda_variables_respect_the_functions_region_and_tz():
    base = dict(
        runtime="nodejs20.x",
        function_name="f",
        function_version="3",
        memory_mb=512,
        namespace="ns",
        handler="index.handler",
        task_root="/task",
        env_id="e1",
        now=0.0,
    )
    plain = runtimes.lambda_variables(**base, api_address="127.0.0.1:9", environ={})
    assert plain["AWS_REGION"] == plain["AWS_DEFAULT_REGION"] == "us-east-1"
    assert plain["AWS_LAMBDA_LOG_STREAM_NAME"] == "1970/01/01/[3]e1"
    assert plain["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9"
    own = runtimes.lambda_variables(**base, api_address=None, environ={"AWS_REGION": "eu-west-1", "TZ": "Europe/Paris"})
    assert (own["AWS_REGION"], own["AWS_DEFAULT_REGION"], own["TZ"]) == ("eu-west-1", "eu-west-1", "Europe/Paris")
    assert "AWS_LAMBDA_RUNTIME_API" not in own


# Chunked bodies as they arrive in pieces: (wire bytes, limit, keep_oversize) -> body, dropped, trailers
CHUNKED = {
    "two chunks": (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 100, False, (b"abcde", 0, {})),
    "bare LF lines": (b"3\nabc\n0\n\n", 100, False, (b"abc", 0, {})),
    "extension ignored": (b"3;x=y\r\nabc\r\n0\r\n\r\n", 100, False, (b"abc", 0, {})),
    "a trailer": (
        b"1\r\na\r\n0\r\nLambda-Runtime-Function-Error-Type: Runtime.X\r\n\r\n",
        100,
        False,
        (b"a", 0, {"lambda-runtime-function-error-type": "Runtime.X"}),
    ),
    "oversize dropped": (b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", 6, True, (b"", 8, {})),
}


@pytest.mark.parametrize("name", CHUNKED)
@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_chunked_bodies_in_pieces(name, piece):
    wire, limit, keep, want = CHUNKED[name]
    decoder = _Chunked(limit, keep)
    buf = bytearray()
    done = False
    for i in range(0, len(wire), piece):
        buf += wire[i : i + piece]
        done = decoder.feed(buf)
    assert done and not buf
    assert (decoder.body(), decoder.dropped, decoder.trailers) == want


@pytest.mark.parametrize(
    ("wire", "status"),
    [(b"zz\r\n", 400), (b"3\r\nabcX\r\n", 400), (b"8\r\nabcdefgh\r\n", 413)],
    ids=["bad size", "data longer than its size", "over the limit without keep_oversize"],
)
def test_chunked_refusals(wire, status):
    with pytest.raises(ProtocolError) as caught:
        _Chunked(4, False).feed(bytearray(wire))
    assert caught.value.response.status == status


# (phase, in progress, event waiting, parked, endpoint, request id) with 3 slots -> action, status
SLOTTED = {
    "a second next while one runs: deliver": ((INVOKING, ["a"], True, 0, "next", ""), (DELIVER, 0)),
    "a second next while one runs, nothing waiting: park": ((INVOKING, ["a"], False, 0, "next", ""), (PARK, 0)),
    "nexts parked and running up to the slots": ((INVOKING, ["a"], False, 1, "next", ""), (PARK, 0)),
    "one next beyond the slots": ((INVOKING, ["a", "b"], False, 1, "next", ""), (REFUSE, 403)),
    "three running: no next": ((INVOKING, ["a", "b", "c"], True, 0, "next", ""), (REFUSE, 403)),
    "the response of any invocation in progress": ((INVOKING, ["a", "b"], False, 1, "response", "b"), (RESPONSE, 0)),
    "the response of one not in progress": ((INVOKING, ["a", "b"], False, 1, "response", "z"), (REFUSE, 400)),
}


@pytest.mark.parametrize("name", SLOTTED)
def test_decide_with_slots(name):
    (phase, running, waiting, parked, endpoint, request_id), (action, status) = SLOTTED[name]
    decision = decide(
        phase=phase,
        current=request_id if request_id in running else None,
        event_waiting=waiting,
        parked=parked,
        endpoint=endpoint,
        request_id=request_id,
        oversize=0,
        slots=3,
        running=len(running),
    )
    assert (decision.action, decision.status) == (action, status)


def test_max_concurrency_reaches_the_child_as_lambdas_variable():
    common = dict(
        runtime="nodejs20.x",
        function_name="f",
        function_version="$LATEST",
        memory_mb=128,
        namespace="default",
        handler="index.handler",
        task_root="/tmp",
        env_id="e",
        api_address="127.0.0.1:1",
        environ={},
        now=0.0,
    )
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in runtimes.lambda_variables(**common)
    assert runtimes.lambda_variables(**common, max_concurrency=8)["AWS_LAMBDA_MAX_CONCURRENCY"] == "8"
