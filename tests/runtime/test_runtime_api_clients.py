"""Conformance of the Runtime API with Lambda's real runtime clients: awslambdaric (PyPI),
aws-lambda-go (Go module proxy), our plain-JavaScript Node.js bootstrap running
unmodified handlers, and a shell ``bootstrap`` with curl. Each runs as a child of a real
runtime process on loopback; the test talks to the runtime as the router does."""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time

import pytest

from tests.runtime.runtime_clients import CLIENTS, awslambdaric_dir, lambda_go_dir, node_binary, node_ric_index


def node_dir(tmp_path):
    node_binary()  # fails naming what to install
    return CLIENTS / "node"


def shell_dir(tmp_path):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: `apt-get install curl` (the shell bootstrap's client)", pytrace=False)
    return CLIENTS / "shell"


#: client -> (runtime, handler, code directory maker)
KINDS = {
    "shell": ("provided", "function.handler", shell_dir),
    "awslambdaric": ("provided.al2023", "app.handler", awslambdaric_dir),
    "aws-lambda-go": ("provided.al2", "main.handler", lambda_go_dir),
    "node-esm": ("nodejs20.x", "index.handler", node_dir),
    # The same handler through aws-lambda-ric (npm), Lambda's own Node.js client.
    "aws-lambda-ric": ("nodejs20.x", "index.handler", node_dir),
}


def start(start_runtime, tmp_path, kind: str, **env):
    runtime, handler, code = KINDS[kind]
    if kind == "aws-lambda-ric":
        env = {"LAMBDAKUBE_NODE_RIC": node_ric_index(), **env}
    return start_runtime(
        handler,
        code_dir=str(code(tmp_path)),
        env={"LAMBDAKUBE_RUNTIME": runtime, "LAMBDAKUBE_TIMEOUT_SECONDS": "3", **env},
    )


def client_context(custom: dict) -> str:
    return base64.b64encode(json.dumps({"custom": custom}).encode()).decode()


@pytest.mark.parametrize("kind", KINDS)
def test_warm_invokes_reuse_one_initialised_runtime(start_runtime, tmp_path, kind):
    rt = start(start_runtime, tmp_path, kind)
    first = rt.invoke({"n": 1}, headers={"X-Log-Type": "Tail", "X-Request-Id": "req-cold"})
    second = rt.invoke({"n": 2}, headers={"X-Log-Type": "Tail", "X-Request-Id": "req-warm"})
    assert (first.status, second.status) == (200, 200), (first.body, second.body)
    a, b = first.json(), second.json()
    assert a["instanceId"] == b["instanceId"]  # module-level state survives
    assert (a["count"], b["count"]) == (1, 2)
    assert (a["requestId"], b["requestId"]) == ("req-cold", "req-warm")
    # Init Duration on the cold start only, measured until the runtime's first /next.
    assert float(first.header("X-Init-Duration-Ms")) > 0
    assert second.header("X-Init-Duration-Ms") is None
    assert first.header("X-Function-Error") is None
    tail = first.log_tail()
    assert tail.startswith("START RequestId: req-cold Version: $LATEST\n")
    assert "END RequestId: req-cold\n" in tail and "REPORT RequestId: req-cold\t" in tail
    assert "\tInit Duration: " in tail
    # The child's own output is in the pod log, and in the tail between START and END.
    rt.wait_for_line("REPORT RequestId: req-warm\t")  # written once the answer is out
    if kind != "aws-lambda-go":  # the Go function prints only when asked (below)
        body_lines = tail.split("START RequestId: req-cold")[1].split("END RequestId")[0]
        assert "1" in body_lines and len(body_lines.strip().splitlines()) >= 1


@pytest.mark.parametrize("kind", ["awslambdaric", "node-esm", "aws-lambda-ric", "aws-lambda-go"])
def test_two_environments_have_different_instances(start_runtime, tmp_path, kind):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = start(start_runtime, tmp_path / "one", kind)
    two = start(start_runtime, tmp_path / "two", kind)
    ids = {rt.invoke({}).json()["instanceId"] for rt in (one, two, one, two)}
    assert len(ids) == 2


@pytest.mark.parametrize("kind", ["awslambdaric", "node-esm", "aws-lambda-ric", "aws-lambda-go"])
def test_context_from_the_runtime_api_headers(start_runtime, tmp_path, kind):
    rt = start(start_runtime, tmp_path, kind)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"
    headers = {"X-Invoked-Function-Arn": arn, "X-Client-Context": client_context({"k": "v"})}
    body = rt.invoke({}, headers=headers).json()
    assert body["arn"] == arn
    assert 0 < body["remainingMs"] <= 3000
    if kind != "aws-lambda-go":
        assert body["custom"] == {"k": "v"}
        assert body["functionName"] == "fn"
    assert str(body["memory"]) == "128"


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("shell", "ShellError"),
        ("awslambdaric", "ValueError"),
        ("node-esm", "TypeError"),
        ("aws-lambda-go", "errorString"),
    ],
)
def test_function_errors_are_unhandled_with_lambdas_body(start_runtime, tmp_path, kind, error_type):
    rt = start(start_runtime, tmp_path, kind)
    event = {"action": "fail"} if kind == "aws-lambda-go" else {"fail": True}
    reply = rt.invoke(event, headers={"X-Log-Type": "Tail"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json()["errorType"] == error_type
    assert reply.json()["errorMessage"]
    # A function error leaves the runtime running: the next invoke succeeds.
    assert rt.invoke({}).header("X-Function-Error") is None


def test_node_callback_style_commonjs_handler(start_runtime):
    node_binary()
    rt = start_runtime("index.handler", code_dir=str(CLIENTS / "node-cjs"), env={"LAMBDAKUBE_RUNTIME": "nodejs20.x"})
    assert rt.invoke({}).json() == {"count": 1, "style": "callback"}
    failed = rt.invoke({"fail": True})
    assert failed.header("X-Function-Error") == "Unhandled"
    assert failed.json()["errorMessage"] == "callback failure"
    assert rt.invoke({}).json()["count"] == 3


def test_the_go_runtime_prints_into_the_tail(start_runtime, tmp_path):
    rt = start(start_runtime, tmp_path, "aws-lambda-go")
    reply = rt.invoke({"print": "hello from go"}, headers={"X-Log-Type": "Tail"})
    tail = reply.log_tail()
    assert tail.index("hello from go") < tail.index("END RequestId:")


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` has ended (gone or a zombie), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs")


@pytest.mark.parametrize("kind", ["awslambdaric", "node-esm", "aws-lambda-ric"])
def test_a_timeout_kills_the_runtime_and_recycles_the_environment(start_runtime, tmp_path, kind):
    rt = start(start_runtime, tmp_path, kind, LAMBDAKUBE_TIMEOUT_SECONDS="1")
    pid = rt.invoke({}).json()["pid"]
    reply = rt.invoke({"sleepMs": 5000}, headers={"X-Log-Type": "Tail"})
    assert reply.status == 200
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.header("X-Env-Unhealthy") == "true"
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in reply.log_tail()
    assert rt.wait_exit() == 0
    _wait_gone(pid)


def test_a_runtime_that_exits_mid_invoke_is_an_exit_error(start_runtime, tmp_path):
    rt = start(start_runtime, tmp_path, "node-esm")
    rt.invoke({})
    reply = rt.invoke({"exit": True}, headers={"X-Request-Id": "req-exit"})
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-exit Error: Runtime exited with error: exit status 7",
    }
    assert reply.header("X-Env-Unhealthy") == "true"
    assert rt.wait_exit() == 0


def test_the_go_runtime_exiting_recycles_the_environment(start_runtime, tmp_path):
    rt = start(start_runtime, tmp_path, "aws-lambda-go")
    reply = rt.invoke({"action": "exit"})
    assert reply.json()["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in reply.json()["errorMessage"]
    assert rt.wait_exit() == 0


def test_an_oversize_go_response_is_lambdas_size_error(start_runtime, tmp_path):
    rt = start(start_runtime, tmp_path, "aws-lambda-go")
    reply = rt.invoke({"action": "big", "bytes": 7 * 1024 * 1024})
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json() == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    }
    # aws-lambda-go exits when its response is refused (as in Lambda): recycled.
    assert rt.wait_exit() == 0
    rt.wait_for_line("got unexpected status code: 413")


def test_init_error_of_an_unloadable_node_module(start_runtime, tmp_path):
    node_binary()
    (tmp_path / "index.mjs").write_text("export const handler = async () => {\n")
    rt = start_runtime(
        "index.handler", code_dir=str(tmp_path), env={"LAMBDAKUBE_RUNTIME": "nodejs20.x"}, wait="settled"
    )
    status, body = rt.get_json("/readyz")
    assert status == 503 and body["state"] == "init_failed"
    assert body["error"]["errorType"] == "Runtime.UserCodeSyntaxError"
    reply = rt.invoke({})
    assert reply.status == 502
    assert reply.json()["errorType"] == "Runtime.InitError"


def test_generic_environment_specialised_with_inline_node_code(start_runtime):
    node_binary()
    rt = start_runtime(None, code_dir=None, wait=None)
    source = "let n = 0;\nexport const handler = async (event) => ({ n: ++n, got: event });\n"
    body = {"handler": "index.handler", "inlineCode": source, "runtime": "nodejs20.x", "functionName": "inl"}
    reply = rt.request("POST", "/init", json.dumps(body).encode())
    assert reply.status == 200, reply.body
    assert reply.json()["initDurationMs"] > 0
    assert rt.invoke({"a": 1}).json() == {"n": 1, "got": {"a": 1}}
    assert rt.invoke({}).json()["n"] == 2


def test_inline_shell_bootstrap(start_runtime):
    source = (CLIENTS / "shell" / "bootstrap").read_text()
    rt = start_runtime(None, code_dir=None, wait=None)
    body = {"handler": "function.handler", "inlineCode": source, "inlineModule": "function", "runtime": "provided"}
    assert rt.request("POST", "/init", json.dumps(body).encode()).status == 200
    assert rt.invoke({"x": 1}).json()["event"] == {"x": 1}


def test_unknown_runtime_is_refused_at_init(start_runtime):
    rt = start_runtime(None, code_dir=None, wait=None)
    body = {"handler": "index.handler", "inlineCode": "x", "runtime": "java21"}
    reply = rt.request("POST", "/init", json.dumps(body).encode())
    assert reply.status == 400
    assert "unknown runtime 'java21'" in reply.json()["errorMessage"]


def test_missing_bootstrap_is_an_init_error(start_runtime, tmp_path):
    rt = start_runtime("x.handler", code_dir=str(tmp_path), env={"LAMBDAKUBE_RUNTIME": "provided"}, wait="settled")
    status, body = rt.get_json("/readyz")
    assert status == 503
    assert body["error"]["errorType"] == "Runtime.InvalidEntrypoint"
    assert os.path.join(str(tmp_path), "bootstrap") in body["error"]["errorMessage"]


def test_the_runtime_dies_with_its_environment(start_runtime, tmp_path):
    """A kill -9 of the environment (the router's, an OOM kill) takes its runtime along,
    even one busy in a handler that would not notice the Runtime API is gone for long."""
    rt = start(start_runtime, tmp_path, "node-esm", LAMBDAKUBE_TIMEOUT_SECONDS="60")
    pid = rt.invoke({}).json()["pid"]
    busy = threading.Thread(target=lambda: _ignore_errors(rt.invoke, {"sleepMs": 30000}), daemon=True)
    busy.start()
    rt.wait_for_line('node handler got {"sleepMs":30000}')
    rt.proc.kill()
    rt.wait_exit()
    _wait_gone(pid, timeout=5)


def _ignore_errors(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:  # the environment was killed under the request
        pass


NODE_INIT_ERRORS = {
    "no such module": ({}, "index.handler", "Runtime.ImportModuleError"),
    "no such export": ({"index.mjs": "export const other = 1;\n"}, "index.handler", "Runtime.HandlerNotFound"),
    "module throws": ({"index.mjs": "throw new RangeError('at import');\n"}, "index.handler", "RangeError"),
}


@pytest.mark.parametrize("name", NODE_INIT_ERRORS)
def test_node_init_errors(start_runtime, tmp_path, name):
    node_binary()
    files, handler, error_type = NODE_INIT_ERRORS[name]
    for filename, text in files.items():
        (tmp_path / filename).write_text(text)
    rt = start_runtime(handler, code_dir=str(tmp_path), env={"LAMBDAKUBE_RUNTIME": "nodejs20.x"}, wait="settled")
    status, body = rt.get_json("/readyz")
    assert status == 503 and body["state"] == "init_failed"
    assert body["error"]["errorType"] == error_type


def test_an_uncaught_node_exception_fails_the_invocation_and_recycles(start_runtime, tmp_path):
    node_binary()
    source = "export const handler = () => new Promise(() => setTimeout(() => { throw new Error('late'); }, 1));\n"
    (tmp_path / "index.mjs").write_text(source)
    rt = start_runtime("index.handler", code_dir=str(tmp_path), env={"LAMBDAKUBE_RUNTIME": "nodejs20.x"})
    reply = rt.invoke({})
    assert reply.header("X-Function-Error") == "Unhandled"
    assert reply.json()["errorMessage"] == "late"
    assert rt.wait_exit() == 0  # the Node.js runtime exits after an uncaught exception
