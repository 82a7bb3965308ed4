"""Lambda's Runtime API (2018-06-01), served on loopback to the function's own runtime.

Why: every official Lambda runtime (awslambdaric, aws-lambda-ric for Node.js,
aws-lambda-go, any ``bootstrap`` executable) speaks this API and nothing else. Serving
it lets their code run unchanged; the environment (``server``) stays what the router
talks to, and this module turns each of its invocations into one ``/next`` answer.

The child (the runtime process) is started at Init with ``AWS_LAMBDA_RUNTIME_API``
pointing here and Lambda's variables (``runtimes.lambda_variables``). Init ends at its
first ``GET /next`` (Init Duration is measured until then), or fails with its
``POST /init/error`` or its exit. Then, one invocation at a time: the event is the
answer to the parked ``/next``; the child's ``POST /invocation/{id}/response`` or
``/error`` is the invocation's outcome. A response over Lambda's 6 MB is answered 413
(``RequestEntityTooLarge``, as Lambda's emulator) and the invocation gets
``Function.ResponseSizeTooLarge``. A child that exits is an error of the invocation it
was running (``Runtime.ExitError``) and recycles the environment, as does a timeout
(``server`` kills the child's whole process group).

The child's stdout and stderr are one pipe, read on the event loop: copied to this
process's stdout (the pod log) and, while an invocation runs, into its log (the Tail
log). The pipe is drained before the outcome is taken, so everything the handler
printed before it answered is in its tail, before END.

With ``slots`` > 1 (``perEnvironmentConcurrency``, the child's
``AWS_LAMBDA_MAX_CONCURRENCY``, as Lambda Managed Instances) the child may hold up to
that many ``/next`` and invocations at once (Node.js: one event loop, several
``/next`` loops); each response names its request id. Output is then attributed to an
invocation by the request id its line carries (Lambda's log format), else only copied
to the pod log.

``decide`` is the protocol as a pure table (``tests/runtime/test_runtime_api_rules.py``);
``RuntimeApi`` is the driver.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import runtimes
from .capture import InvocationLog
from .http import HTTPServer, Pending, Request, Response, json_response
from .invoker import Outcome
from .loader import InitError

PREFIX = "/2018-06-01/runtime/"
#: Lambda's limit on a synchronous response: 6 MiB + 100 bytes (the emulator's
#: ``interop.MaxPayloadSize``).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
#: Lambda's error types look like this; anything else becomes ``Runtime.Unknown``.
_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")

# Phases of the child, as ``decide`` sees them.
INIT = "init"  # started, no /next yet
WAITING = "waiting"  # between invocations
INVOKING = "invoking"  # an event was handed out, no outcome yet
GONE = "gone"  # exited or killed


@dataclass(frozen=True)
class Decision:
    """What to do with one Runtime API request: ``action`` (below) and, for a refusal,
    the answer's status, error type and message."""

    action: str
    status: int = 0
    error_type: str = ""
    message: str = ""


# Actions.
READY = "ready"  # the first /next: Init is done; park it
DELIVER = "deliver"  # answer /next with the waiting event
PARK = "park"  # hold /next until an invocation comes
RESPONSE = "response"  # the invocation's result
TOO_LARGE = "too_large"  # its result, over the limit
ERROR = "error"  # the invocation's function error
INIT_ERROR = "init_error"  # Init failed
REFUSE = "refuse"


def route(method: str, path: str) -> tuple[str, str]:
    """``(endpoint, request id)`` of a request: ``next``, ``response``, ``error``,
    ``init_error``; ``""`` for no such path, ``"method"`` for a wrong method."""
    if not path.startswith(PREFIX):
        return "", ""
    rest = path[len(PREFIX) :]
    if rest == "invocation/next":
        return ("next" if method == "GET" else "method"), ""
    if rest == "init/error":
        return ("init_error" if method == "POST" else "method"), ""
    parts = rest.split("/")
    if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error") and parts[1]:
        return (parts[2] if method == "POST" else "method"), parts[1]
    return "", ""


def _invalid_state(phase: str, wanted: str) -> Decision:
    return Decision(
        REFUSE,
        403,
        "InvalidStateTransition",
        f"State transition from {phase} to {wanted} failed for runtime. Error: invalid state transition",
    )


def decide(
    *,
    phase: str,
    current: str | None,
    event_waiting: bool,
    parked: int,
    endpoint: str,
    request_id: str,
    oversize: int,
    slots: int = 1,
    running: int | None = None,
) -> Decision:
    """The Runtime API's rules (Lambda's, as its emulator implements them): the request
    id must be an invocation in progress (``current``: the one it names, if in progress;
    400 ``InvalidRequestID``), and each call must fit the child's phase (403
    ``InvalidStateTransition``): at most ``slots`` ``/next`` parked or invocations
    running at once (``running``: in progress; by default 1 while ``INVOKING``)."""
    if running is None:
        running = 1 if phase == INVOKING else 0
    if endpoint == "":
        return Decision(REFUSE, 404, "NotFound", "no such Runtime API path")
    if endpoint == "method":
        return Decision(REFUSE, 405, "MethodNotAllowed", "method not allowed on this Runtime API path")
    if endpoint == "next":
        if phase == INIT:
            return Decision(READY)
        if phase in (WAITING, INVOKING) and parked + running < slots:
            return Decision(DELIVER if event_waiting else PARK)
        return _invalid_state(phase, "Ready")
    if endpoint == "init_error":
        return Decision(INIT_ERROR) if phase == INIT else _invalid_state(phase, "InitError")
    # response / error
    if phase != INVOKING or request_id != current:
        return Decision(REFUSE, 400, "InvalidRequestID", "Invalid request ID")
    if endpoint == "error":
        return Decision(ERROR)
    return Decision(TOO_LARGE if oversize else RESPONSE)


def error_type_of(value: str | None) -> str:
    """``Lambda-Runtime-Function-Error-Type`` as Lambda keeps it."""
    if value and _ERROR_TYPE.match(value):
        return value
    if value and value.startswith("Function."):
        return "Function.Unknown"
    return "Runtime.Unknown"


def init_error_of(body: bytes, header_type: str | None) -> InitError:
    """An ``InitError`` from ``/init/error``: the runtime's JSON error (awslambdaric,
    aws-lambda-go and Node's clients all post ``{errorType, errorMessage, stackTrace}``),
    or its type header and raw text."""
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        value = {}
    if not isinstance(value, dict):
        value = {}
    error_type = value.get("errorType") or error_type_of(header_type)
    message = value.get("errorMessage")
    if not isinstance(message, str):
        message = body.decode("utf-8", "replace") if body and not value else ""
    stack = value.get("stackTrace")
    stack_list = [str(s) for s in stack] if isinstance(stack, list) else []
    return InitError(str(error_type), message, stack_list)


def exit_message(request_id: str | None, status: int) -> str:
    """Lambda's text for a runtime that exited: ``exit status N`` or ``signal: killed``."""
    how = f"signal: {_signal_name(-status)}" if status < 0 else f"exit status {status}"
    prefix = f"RequestId: {request_id} " if request_id else ""
    return f"{prefix}Error: Runtime exited with error: {how}"


def _signal_name(number: int) -> str:
    try:
        return {"SIGKILL": "killed", "SIGTERM": "terminated", "SIGSEGV": "segmentation fault"}.get(
            signal.Signals(number).name, signal.Signals(number).name
        )
    except ValueError:
        return str(number)


def trace_id(now: float) -> str:
    """An X-Ray trace header, ``Root=1-<epoch hex>-<96 random bits>;Parent=...;Sampled=0``."""
    return f"Root=1-{int(now):08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"


def peak_rss_mb(status: bytes) -> int:
    """The peak resident set (``VmHWM``) of a ``/proc/<pid>/status``, in MB rounded up;
    0 if it has none."""
    at = status.find(b"VmHWM:")
    if at < 0:
        return 0
    try:
        return -(-int(status[at + 6 :].split(None, 1)[0]) // 1024)
    except (ValueError, IndexError):
        return 0


class _Call:
    """The invocation the child is running (or about to receive)."""

    __slots__ = ("request_id", "payload", "headers", "log", "on_done", "start")

    def __init__(self, request_id, payload, headers, log, on_done):
        self.request_id: str = request_id
        self.payload: bytes = payload
        self.headers: list[tuple[str, str]] = headers
        self.log: InvocationLog = log
        self.on_done: Callable[[Outcome | None, BaseException | None], None] = on_done
        self.start = time.perf_counter()


class RuntimeApi:
    """One child runtime and the Runtime API it is served."""

    def __init__(
        self,
        *,
        runtime: str,
        task_root: str,
        variables: Callable[[str], dict[str, str]],
        on_gone: Callable[[str], None],
        slots: int = 1,
    ):
        self.runtime = runtime
        self.task_root = task_root
        self._variables = variables  # api address -> Lambda's variables
        self._on_gone = on_gone  # the child exited while no invocation ran
        self.phase = INIT
        self.proc: subprocess.Popen | None = None
        self._server = HTTPServer(self.handle, chunked=True, max_body=MAX_RESPONSE_BYTES, keep_oversize=True)
        self._init: asyncio.Future | None = None
        self.slots = slots
        #: Handed to the child (its /next answered), by request id, not yet answered.
        self._calls: dict[str, _Call] = {}
        #: Not yet handed out: no /next was parked when they came.
        self._waiting: collections.deque[_Call] = collections.deque()
        self._parked: collections.deque[Pending] = collections.deque()
        self._pipe = -1
        self._status_fd = -1  # the child's /proc/<pid>/status, kept open (read per invoke)

    # -- Init --------------------------------------------------------------------------

    async def start(self) -> tuple[InitError | None, float]:
        """Spawn the child and wait for its Init: ``(error or None, Init Duration ms)``."""
        loop = asyncio.get_running_loop()
        port = await self._server.start("127.0.0.1", 0)
        started = time.perf_counter()
        self._init = loop.create_future()
        environ = runtimes.child_environ(dict(os.environ), self._variables(f"127.0.0.1:{port}"))
        try:
            argv = runtimes.command(self.runtime, self.task_root, environ)
        except runtimes.UnknownRuntime as exc:
            return InitError("Runtime.InvalidRuntime", str(exc)), 0.0
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.task_root,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,  # its own process group: a timeout kills all of it
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except OSError as exc:
            os.close(read_end)
            self.phase = GONE
            name = argv[0]
            return InitError(
                "Runtime.InvalidEntrypoint", f"cannot start the runtime {name!r} ({self.runtime}): {exc}"
            ), (time.perf_counter() - started) * 1000.0
        finally:
            os.close(write_end)
        _CHILDREN.add(self.proc.pid)
        try:
            self._status_fd = os.open(f"/proc/{self.proc.pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no procfs: Max Memory Used reads 0
            pass
        os.set_blocking(read_end, False)
        self._pipe = read_end
        loop.add_reader(read_end, self._drain)
        self._watch_exit(loop)
        error = await self._init
        return error, (time.perf_counter() - started) * 1000.0

    def _watch_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call ``_exited`` on the loop when the child ends: a pidfd, readable at its
        exit (no thread, no SIGCHLD handler); a waiting thread where there is none."""
        assert self.proc is not None
        proc = self.proc
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            threading.Thread(target=lambda: (proc.wait(), loop.call_soon_threadsafe(self._exited)), daemon=True).start()
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            proc.wait()
            self._exited()

        loop.add_reader(pidfd, readable)

    # -- Invoke (from the server) ------------------------------------------------------

    def invoke(
        self,
        request_id: str,
        payload: bytes,
        headers: list[tuple[str, str]],
        log: InvocationLog,
        on_done: Callable[[Outcome | None, BaseException | None], None],
    ) -> None:
        """Hand the event to the child (now if a ``/next`` is parked, else at its next
        one); ``on_done(outcome, None)`` once it answers or exits."""
        self._waiting.append(_Call(request_id, payload, headers, log, on_done))
        if self._parked:
            self._parked.popleft().resolve(self._event_response())

    def _event_response(self) -> Response:
        call = self._waiting.popleft()
        self._calls[call.request_id] = call
        self.phase = INVOKING
        call.start = time.perf_counter()
        return Response(200, call.payload, call.headers)

    def kill(self) -> None:
        """Kill the child's process group (a timeout, the environment's exit)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def max_memory_mb(self) -> int:
        """The child's peak RSS: one ``pread`` of its status file (open since its start,
        so no open/close per invocation)."""
        if self._status_fd < 0:
            return 0
        try:
            return peak_rss_mb(os.pread(self._status_fd, 4096, 0))
        except OSError:  # the child is gone
            return 0

    def next_headers(
        self, request_id: str, deadline: float, arn: str, client_context: dict | None
    ) -> list[tuple[str, str]]:
        """The ``/next`` answer's headers, as Lambda's (Cognito identity: none here)."""
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(int(deadline * 1000))),
            ("Lambda-Runtime-Invoked-Function-Arn", arn),
            ("Lambda-Runtime-Trace-Id", trace_id(time.time())),
        ]
        if client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", json.dumps(client_context)))
        return headers

    # -- the Runtime API (from the child) ----------------------------------------------

    def handle(self, request: Request) -> Response | Pending:
        endpoint, request_id = route(request.method, request.path)
        call = self._calls.get(request_id) if request_id else None
        decision = decide(
            phase=self.phase,
            current=request_id if call is not None else None,
            event_waiting=bool(self._waiting),
            parked=len(self._parked),
            endpoint=endpoint,
            request_id=request_id,
            oversize=request.oversize,
            slots=self.slots,
            running=len(self._calls),
        )
        action = decision.action
        if action == REFUSE:
            return json_response(decision.status, {"errorMessage": decision.message, "errorType": decision.error_type})
        if action == READY:
            self.phase = WAITING
            self._settle_init(None)
            return self._park()
        if action == PARK:
            return self._park()
        if action == DELIVER:
            return self._event_response()
        if action == INIT_ERROR:
            self._settle_init(init_error_of(request.body, request.header("lambda-runtime-function-error-type")))
            self.kill()  # Lambda resets a runtime whose Init failed
            return _accepted()
        assert call is not None
        # The outcome is taken now (no other call can take it), and given to the caller
        # once the child has its answer: the child's next /next then overlaps with the
        # answer to the caller, instead of waiting for it (sequential invokes).
        elapsed = self._elapsed(call)
        del self._calls[request_id]
        if not self._calls:
            self.phase = WAITING
        if action == TOO_LARGE:
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
            body = json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode()
            answer = json_response(
                413,
                {
                    "errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                    "errorType": "RequestEntityTooLarge",
                },
            )
            outcome = Outcome(body, "Function.ResponseSizeTooLarge", False, elapsed)
        elif action == ERROR:
            error_type = error_type_of(request.header("lambda-runtime-function-error-type"))
            answer, outcome = _accepted(), Outcome(request.body, error_type, False, elapsed)
        else:
            answer, outcome = _accepted(), Outcome(request.body, None, False, elapsed)
        answer.after_sent = lambda: self._finish(call, outcome)
        return answer

    def _park(self) -> Pending:
        parked = Pending()
        self._parked.append(parked)
        return parked

    @staticmethod
    def _elapsed(call: _Call) -> float:
        return (time.perf_counter() - call.start) * 1000.0

    def _settle_init(self, error: InitError | None) -> None:
        if self._init is not None and not self._init.done():
            self._init.set_result(error)

    def _finish(self, call: _Call, outcome: Outcome) -> None:
        self._drain(call)  # what it printed before answering belongs to this invocation
        call.on_done(outcome, None)

    # -- the child's output and exit ---------------------------------------------------

    def _drain(self, call: _Call | None = None) -> None:
        """Copy what the child wrote to our stdout and the running invocation's log
        (``call``: the one that just answered)."""
        fd = self._pipe
        if fd < 0:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                asyncio.get_running_loop().remove_reader(fd)
                os.close(fd)
                self._pipe = -1
                return
            if self.slots == 1:
                log_call = call or self._only_call()
                if log_call is not None:
                    log_call.log.flush()  # its START line first
                    log_call.log.capture(data.decode("utf-8", "backslashreplace"))
            else:
                self._capture_by_request_id(data.decode("utf-8", "backslashreplace"))
            _write_out(data)

    def _only_call(self) -> _Call | None:
        """The invocation the child runs or is about to receive (one slot)."""
        for call in self._calls.values():
            return call
        return self._waiting[0] if self._waiting else None

    def _capture_by_request_id(self, text: str) -> None:
        """Each line to the invocation whose request id it carries (Lambda's log line:
        ``<time>\t<request id>\t<level>\t...``; with several at once, nothing else
        tells whose it is)."""
        for line in text.splitlines(keepends=True):
            fields = line.split("\t", 2)
            call = self._calls.get(fields[1]) if len(fields) > 2 else None
            if call is not None:
                call.log.flush()
                call.log.capture(line)

    def _exited(self) -> None:
        proc = self.proc
        assert proc is not None
        _CHILDREN.discard(proc.pid)
        self._drain()
        status = proc.returncode if proc.returncode is not None else -1
        was, self.phase = self.phase, GONE
        if was == INIT:
            self._settle_init(InitError("Runtime.ExitError", exit_message(None, status)))
            return
        calls = [*self._calls.values(), *self._waiting]
        self._calls.clear()
        self._waiting.clear()
        for call in calls:  # running, or handed to it and not yet taken
            message = exit_message(call.request_id, status)
            call.log.write(f"{message}\n")
            body = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()
            call.on_done(Outcome(body, "Runtime.ExitError", True, self._elapsed(call)), None)
        if calls:
            return
        self._on_gone(f"its runtime process exited ({exit_message(None, status)})")


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process ends, however
    it ends (a kill -9 from the router, an OOM kill): a runtime must not outlive its
    environment (Linux ``PR_SET_PDEATHSIG``; ``ctypes`` is imported only here, at the
    Init of a Runtime API runtime, never on the built-in path). None where unavailable."""
    try:
        import ctypes  # noqa: PLC0415

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call above
            os._exit(1)

    return preexec


def _accepted() -> Response:
    return Response(202, b'{"status":"OK"}')


def _write_out(data: bytes) -> None:
    try:
        os.write(1, data)
    except OSError:  # stdout gone: the tail still has it
        pass


#: Children still running, killed (by PID, their process group) when the environment exits.
_CHILDREN: set[int] = set()


def kill_children() -> None:
    for pid in list(_CHILDREN):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
