"""Init phase, probes, generic environments, START/END/REPORT lines."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from lambdakube_router import names
from lambdakube_runtime import server
from tests.procs import stop_process
from tests.runtime.harness import RUNTIME_DIR

REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: (?P<duration>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory>\d+) MB\t"
    r"Max Memory Used: (?P<used>\d+) MB(?:\tInit Duration: (?P<init>\d+\.\d{2}) ms)?$"
)


def test_listening_line_and_probes(shared_runtime):
    runtime = shared_runtime("basic.count")
    assert runtime.port > 0
    status, health = runtime.get_json("/healthz")
    assert status == 200
    assert health["status"] == "ok" and health["state"] == "ready" and health["envId"] == "env-test"
    assert health["initDurationMs"] >= 0
    status, ready = runtime.get_json("/readyz")
    assert status == 200
    assert ready == {
        "ready": True,
        "initDurationMs": health["initDurationMs"],
        "function": "fn",
        "envId": "env-test",
    }


def test_listens_before_init_finishes(start_runtime):
    code = "import time\ntime.sleep(0.6)\n\ndef handler(event, context):\n    return 'late'\n"
    runtime = start_runtime("index.handler", inline_code=code, wait=None)
    status, health = runtime.get_json("/healthz")
    assert status == 200 and health["state"] == "initializing" and health["initDurationMs"] is None
    assert runtime.get_json("/readyz") == (503, {"ready": False, "state": "initializing", "envId": "env-test"})
    reply = runtime.invoke({})
    assert reply.status == 503 and reply.json()["errorType"] == "EnvironmentNotReady"
    runtime.wait_ready()
    assert runtime.invoke({}).json() == "late"


def test_init_runs_once_and_state_survives_between_invocations(start_runtime):
    runtime = start_runtime("basic.count")
    replies = [runtime.invoke({}) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    bodies = [r.json() for r in replies]
    assert [b["count"] for b in bodies] == [1, 2, 3, 4, 5]
    assert len({b["initTime"] for b in bodies}) == 1
    # The cold start is reported on the first invocation only.
    init_header = replies[0].header("X-Init-Duration-Ms")
    assert init_header is not None and float(init_header) >= 0
    assert float(init_header) == runtime.get_json("/readyz")[1]["initDurationMs"]
    assert all(r.header("X-Init-Duration-Ms") is None for r in replies[1:])
    # The module was imported exactly once.
    assert runtime.stdout.count("BASIC-MODULE-IMPORTED") == 1


def test_init_and_handlers_share_one_worker_thread(start_runtime):
    runtime = start_runtime("basic.threads")
    first, second = runtime.invoke({}).json(), runtime.invoke({}).json()
    assert first["init"] == first["handler"] == second["handler"]
    assert first["handler"] != first["main"]  # not on the server's thread


def test_report_lines_on_stdout(start_runtime):
    runtime = start_runtime("basic.chatty", env={"LAMBDAKUBE_MEMORY_MB": "256", "LAMBDAKUBE_FUNCTION_VERSION": "7"})
    ids = ["req-one", "req-two"]
    for request_id in ids:
        assert runtime.invoke({}, headers={"X-Request-Id": request_id}).status == 200
    runtime.wait_for_line("REPORT RequestId: req-two")
    lines = runtime.stdout
    for n, request_id in enumerate(ids):
        start = lines.index(f"START RequestId: {request_id} Version: 7")
        printed = lines.index(f"hello from print {request_id}")
        end = lines.index(f"END RequestId: {request_id}")
        report = [line for line in lines if line.startswith(f"REPORT RequestId: {request_id}\t")]
        assert len(report) == 1
        assert start < printed < end < lines.index(report[0])
        match = REPORT_RE.match(report[0])
        assert match, report[0]
        assert match["memory"] == "256"
        assert int(match["billed"]) == max(1, math.ceil(float(match["duration"])))
        assert int(match["used"]) > 0
        if n == 0:
            assert match["init"] is not None and float(match["init"]) >= 0
        else:
            assert match["init"] is None


@pytest.mark.parametrize(
    "provisioned, first_has_init",
    [
        pytest.param(False, True, id="on-demand: the first REPORT has it"),
        pytest.param(True, False, id="provisioned: none"),
    ],
)
def test_init_duration_only_on_an_on_demand_cold_start(start_runtime, provisioned, first_has_init):
    """A provisioned environment's Init ran before any invocation: Lambda reports no
    Init Duration for it, and neither do we when the router says so."""
    runtime = start_runtime("basic.chatty")
    headers = {server.PROVISIONED_HEADER: "true"} if provisioned else {}
    for request_id in ("req-one", "req-two"):
        assert runtime.invoke({}, headers={"X-Request-Id": request_id, **headers}).status == 200
    runtime.wait_for_line("REPORT RequestId: req-two")
    reports = [REPORT_RE.match(line) for line in runtime.stdout if line.startswith("REPORT RequestId: ")]
    assert [m is not None and m["init"] is not None for m in reports] == [first_has_init, False]


def test_the_runtime_spells_the_provisioned_header_as_the_router_does():
    assert server.PROVISIONED_HEADER == names.PROVISIONED_HEADER.lower()


def test_dotted_module_handler(start_runtime):
    runtime = start_runtime("pkg.sub.handler")
    assert runtime.invoke({}).json() == {"module": "pkg.sub"}


INIT_FAILURES = [
    pytest.param(
        {"handler": "index.handler", "inline_code": "def handler(event, context)\n    return 1\n"},
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'index'",
        id="syntax-error",
    ),
    pytest.param(
        {"handler": "does_not_exist.handler"},
        "Runtime.ImportModuleError",
        "Unable to import module 'does_not_exist': No module named 'does_not_exist'",
        id="missing-module",
    ),
    pytest.param(
        {"handler": "basic.no_such_function"},
        "Runtime.HandlerNotFound",
        "Handler 'no_such_function' missing on module 'basic'",
        id="missing-function",
    ),
    pytest.param(
        {"handler": "basic.NOT_CALLABLE"},
        "Runtime.HandlerNotFound",
        "is not callable",
        id="not-callable",
    ),
    pytest.param(
        {"handler": "index.handler", "inline_code": "import os\nraise RuntimeError('kaboom at import')\n"},
        "RuntimeError",
        "kaboom at import",
        id="raises-at-import",
    ),
    pytest.param(
        {"handler": "index.handler", "inline_code": "import missing_dependency_xyz\n"},
        "Runtime.ImportModuleError",
        "No module named 'missing_dependency_xyz'",
        id="missing-dependency",
    ),
    pytest.param(
        {"handler": "index.handler", "inline_code": "import sys\nsys.exit(4)\n"},
        "Runtime.ExitError",
        "sys.exit(4)",
        id="exit-at-import",
    ),
    pytest.param({"handler": "nodot"}, "Runtime.MalformedHandlerName", "Bad handler 'nodot'", id="malformed"),
]


@pytest.mark.parametrize("setup, error_type, message", INIT_FAILURES)
def test_init_failure_is_reported_not_fatal(start_runtime, setup, error_type, message):
    runtime = start_runtime(setup["handler"], inline_code=setup.get("inline_code"), wait="settled")
    status, ready = runtime.get_json("/readyz")
    assert status == 503
    assert ready["ready"] is False and ready["state"] == "init_failed"
    error = ready["error"]
    assert error["errorType"] == error_type
    assert message in error["errorMessage"]
    assert isinstance(error["stackTrace"], list)
    status, health = runtime.get_json("/healthz")
    assert status == 200 and health["state"] == "init_failed"

    reply = runtime.invoke({"x": 1})
    assert reply.status == 502
    body = reply.json()
    assert body["errorType"] == "Runtime.InitError"
    assert body["initError"] == error
    assert error_type in body["errorMessage"]
    # The failure is in the pod log too.
    runtime.wait_for_line(f"[ERROR] {error_type}: ")
    assert runtime.proc.poll() is None  # still alive: the router decides what to do


def test_import_time_exception_stack_points_at_user_code(start_runtime):
    code = "def helper():\n    raise KeyError('missing-key')\n\nhelper()\n"
    runtime = start_runtime("index.handler", inline_code=code, wait="settled")
    error = runtime.get_json("/readyz")[1]["error"]
    assert error["errorType"] == "KeyError"
    joined = "".join(error["stackTrace"])
    assert "index.py" in joined and "in helper" in joined
    assert "lambdakube_runtime" not in joined and "importlib" not in joined


def test_invalid_configuration_exits_with_status_2():
    result = subprocess.run(
        [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
        env={**os.environ, "PYTHONPATH": str(RUNTIME_DIR), "LAMBDAKUBE_HANDLER": "a.b", "LAMBDAKUBE_MEMORY_MB": "lots"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "LAMBDAKUBE_MEMORY_MB" in result.stderr
    assert "LAMBDAKUBE_LISTENING" not in result.stdout


READY_FD_CODE = """
import os

def handler(event, context):
    return {"variable": os.environ.get("LAMBDAKUBE_READY_FD")}
"""

# (name, LAMBDAKUBE_READY_FD: "pipe" for a real pipe's write end, else the raw value)
READY_FDS = [
    ("a pipe", "pipe"),
    ("not a number", "seven"),
    ("not an open fd", "999"),
]


@pytest.mark.parametrize("value", [c[1] for c in READY_FDS], ids=[c[0] for c in READY_FDS])
def test_the_listening_line_goes_to_the_ready_pipe_too(value):
    """The parent's ready pipe (``LAMBDAKUBE_READY_FD``) gets the stdout line, then its
    end; a value that is no pipe of ours changes nothing. The variable is gone before
    the function runs, either way."""
    read_end, write_end = os.pipe()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAMBDAKUBE_")},
        "PYTHONPATH": str(RUNTIME_DIR),
        "LAMBDAKUBE_HANDLER": "index.handler",
        "LAMBDAKUBE_INLINE_CODE": READY_FD_CODE,
        "LAMBDAKUBE_READY_FD": str(write_end) if value == "pipe" else value,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        pass_fds=(write_end,) if value == "pipe" else (),
    )
    os.close(write_end)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("LAMBDAKUBE_LISTENING port="), line
        with os.fdopen(read_end, "rb") as ready:
            assert ready.read() == (line.encode() if value == "pipe" else b"")  # then EOF: the runtime closed it
        port = int(line.split("=", 1)[1])
        body = {}
        for _ in range(200):  # bounded: Init runs after listening
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/invoke", b"{}")
            reply = conn.getresponse()
            body = json.loads(reply.read())
            conn.close()
            if reply.status != 503:
                break
            threading.Event().wait(0.02)
        assert body == {"variable": None}
    finally:
        stop_process(proc)


INLINE_FILE_CODE = """
def handler(event, context):
    return __file__
"""

# (name, what TMPDIR is, where the inline code must land)
INLINE_ROOTS = [
    ("TMPDIR is a directory", "directory", "tmpdir"),
    ("TMPDIR does not exist", "missing", "/tmp"),
    ("TMPDIR is a file", "file", "/tmp"),
]


@pytest.mark.parametrize(("tmpdir", "lands"), [c[1:] for c in INLINE_ROOTS], ids=[c[0] for c in INLINE_ROOTS])
def test_inline_code_is_written_where_it_can_be(start_runtime, tmp_path, tmpdir, lands):
    """As tempfile would: the first of $TMPDIR, ..., /tmp that can take the file (a full
    disk under $TMPDIR: ``test_router_store_faults``), in a private directory."""
    root = tmp_path / "tmpdir"
    if tmpdir == "directory":
        root.mkdir()
    elif tmpdir == "file":
        root.write_text("")
    runtime = start_runtime("index.handler", inline_code=INLINE_FILE_CODE, env={"TMPDIR": str(root)})
    directory = os.path.dirname(runtime.invoke({}).json())
    assert os.path.dirname(directory) == (str(root) if lands == "tmpdir" else lands)
    assert os.path.basename(directory).startswith("lambdakube-inline-")
    assert os.stat(directory).st_mode & 0o777 == 0o700
    runtime.stop()
    assert not os.path.exists(directory)


# -- generic (pre-warmed) environments ----------------------------------------------------

GENERIC_CODE = """
import os
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    return {
        "count": COUNT,
        "greeting": os.environ.get("GREETING"),
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "file": __file__,
    }
"""


def test_generic_environment_specialises_via_init(start_runtime):
    runtime = start_runtime(None, wait=None)
    status, health = runtime.get_json("/healthz")
    assert status == 200 and health["state"] == "generic" and health["initDurationMs"] is None
    assert runtime.get_json("/readyz") == (503, {"ready": False, "state": "generic", "envId": "env-test"})
    not_ready = runtime.invoke({})
    assert not_ready.status == 503 and not_ready.json()["errorType"] == "EnvironmentNotReady"

    init = {
        "handler": "app.handler",
        "inlineCode": GENERIC_CODE,
        "inlineModule": "app",
        "codeDir": None,
        "functionName": "greeter",
        "functionVersion": "3",
        "memoryMb": 512,
        "timeoutSeconds": 2,
        "env": {"GREETING": "hi"},
        "namespace": "team-a",
    }
    reply = runtime.request("POST", "/init", json.dumps(init).encode())
    assert reply.status == 200
    body = reply.json()
    assert body["ready"] is True and body["initDurationMs"] >= 0
    assert runtime.get_json("/readyz")[1]["function"] == "greeter"

    first, second = runtime.invoke({}), runtime.invoke({})
    assert first.status == second.status == 200
    assert first.json()["count"] == 1 and second.json()["count"] == 2
    assert first.json()["greeting"] == "hi"
    assert first.json()["function"] == "greeter"
    assert first.json()["arn"] == "lambdakube:team-a:function:greeter"
    assert first.json()["memory"] == "512"  # a string, as Lambda's
    assert first.header("X-Memory-Size-Mb") == "512" and first.header("X-Executed-Version") == "3"
    assert float(first.header("X-Init-Duration-Ms")) == body["initDurationMs"]
    assert second.header("X-Init-Duration-Ms") is None

    again = runtime.request("POST", "/init", json.dumps(init).encode())
    assert again.status == 409 and again.json()["errorType"] == "EnvironmentAlreadyInitialized"

    # The private inline-code directory is removed on a clean shutdown.
    inline_file = first.json()["file"]
    assert os.path.exists(inline_file)
    runtime.stop()
    assert runtime.proc.returncode == 0
    assert not os.path.exists(os.path.dirname(inline_file))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"inlineCode": "x = 1"}).encode(),  # no handler
        json.dumps({"handler": "index.handler", "timeout": 3}).encode(),  # unknown field
        json.dumps({"handler": "index.handler", "memoryMb": -1}).encode(),
        json.dumps({"handler": "index.handler", "env": {"A": 1}}).encode(),
    ],
    ids=["not-json", "not-object", "no-handler", "unknown-field", "bad-memory", "bad-env"],
)
def test_bad_init_request_is_400_and_stays_generic(shared_runtime, body):
    runtime = shared_runtime(None, wait=None)  # a refused /init leaves it as it was
    reply = runtime.request("POST", "/init", body)
    assert reply.status == 400
    assert reply.json()["errorType"] == "InvalidRequestContentException"
    assert runtime.get_json("/healthz")[1]["state"] == "generic"


def test_failed_init_via_init_endpoint(start_runtime):
    runtime = start_runtime(None, wait=None)
    reply = runtime.request(
        "POST", "/init", json.dumps({"handler": "index.handler", "inlineCode": "raise ValueError('nope')"}).encode()
    )
    assert reply.status == 500
    body = reply.json()
    assert body["ready"] is False
    assert body["error"]["errorType"] == "ValueError" and body["error"]["errorMessage"] == "nope"
    status, ready = runtime.get_json("/readyz")
    assert status == 503 and ready["state"] == "init_failed" and ready["error"] == body["error"]
    assert runtime.request("POST", "/init", json.dumps({"handler": "a.b"}).encode()).status == 409


def test_second_init_while_initialising_is_409(start_runtime):
    runtime = start_runtime(None, wait=None)
    code = "import time\ntime.sleep(0.6)\ndef handler(e, c):\n    return 1\n"
    slow = {"handler": "index.handler", "inlineCode": code}
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(reply=runtime.request("POST", "/init", json.dumps(slow).encode()))
    )
    thread.start()
    runtime.wait_until(lambda: runtime.get_json("/healthz")[1]["state"] == "initializing")
    second = runtime.request("POST", "/init", json.dumps({"handler": "basic.count"}).encode())
    assert second.status == 409
    thread.join(15)
    assert result["reply"].status == 200
    assert runtime.invoke({}).json() == 1


def test_init_on_specialised_environment_is_409(shared_runtime):
    runtime = shared_runtime("basic.count")
    base = runtime.invoke({}).json()["count"]
    reply = runtime.request("POST", "/init", json.dumps({"handler": "basic.echo"}).encode())
    assert reply.status == 409
    assert runtime.invoke({}).json()["count"] == base + 1  # still the original function


def test_sigterm_lets_the_running_invocation_finish(start_runtime):
    runtime = start_runtime("basic.slow")
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(reply=runtime.invoke({"seconds": 0.5}, headers={"X-Request-Id": "draining"}))
    )
    thread.start()
    runtime.wait_for_line("SLOW-START draining")
    runtime.proc.send_signal(signal.SIGTERM)
    thread.join(10)
    assert result["reply"].status == 200 and result["reply"].json() == {"slept": 0.5}
    assert runtime.wait_exit() == 0


def test_sigterm_with_idle_keep_alive_connections_exits_cleanly(start_runtime):
    runtime = start_runtime("basic.count")
    conn = runtime.connection()
    conn.request("POST", "/invoke", body=b"{}")
    assert conn.getresponse().read()  # the connection stays open, idle
    try:
        runtime.proc.send_signal(signal.SIGTERM)
        assert runtime.wait_exit() == 0
    finally:
        conn.close()
    assert "Traceback" not in runtime.stderr
