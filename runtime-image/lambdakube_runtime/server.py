"""Routes, the environment's lifecycle, and the one-request-at-a-time guard.

An execution environment moves through::

    generic --POST /init--> initializing --> ready --(timeout / sys.exit)--> unhealthy -> exit
              (or straight to initializing at start)  \\--> init_failed

The router relies on three properties, all enforced here on the event-loop thread:

* **Single flight** (or ``maxConcurrency`` flights, ``perEnvironmentConcurrency``, for a
  Runtime API runtime). ``/invoke`` while the environment runs as many invocations as it
  may is answered 409 at once, never queued. The guard is a plain attribute checked and set
  with no ``await`` in between, so two requests cannot both pass it. It is released when
  the worker reports the handler finished, not when the answer is sent, so a client that
  hangs up early cannot free the environment while its handler still runs.
* **The environment it was meant for.** ``/invoke`` naming another environment
  (``X-Env-Id``) is answered 421 before anything runs: an address outlives its
  environment (a dead runtime's port, a deleted pod's IP, taken by the next one), and
  the router then sends the request where it belongs.
* **Only its router.** With a token (``LAMBDAKUBE_ENV_TOKEN``, set by whoever created
  the environment), ``/init`` and ``/invoke`` without that ``X-Env-Token`` are answered
  401 before anything else: the runtime listens on an address that other pods and
  processes (another function's handler) can reach. The probes stay open, and so does
  the handler's credentials route (``credentials``), which has its own secret and
  answers loopback clients only.
* **Init once.** Init runs on the worker thread before the first invocation; its
  duration is reported once, on the first invocation (the cold start).
* **Timeouts recycle the environment.** A Python thread cannot be killed, so after a
  timeout (or ``sys.exit()`` in a handler) the environment reports itself unhealthy and
  the process exits as soon as that answer is flushed (exit code 0); Kubernetes / the
  operator replaces it, as Lambda resets a sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import signal
import sys
import time
from _operator import _compare_digest as compare_digest  # hmac's, without importing hashlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from . import invoker, loader, parent, report, runtimes
from .capture import InvocationLog
from .config import ConfigError, FunctionConfig, from_init_body
from .context import LambdaContext
from .credentials import PATH as CREDENTIALS_PATH
from .credentials import Credentials
from .errors import log_text
from .http import HTTPServer, Pending, Request, Response, error_response, internal_error, json_response
from .worker import Worker

GENERIC = "generic"
INITIALIZING = "initializing"
READY = "ready"
INIT_FAILED = "init_failed"
UNHEALTHY = "unhealthy"

#: After reporting unhealthy, exit at the latest this long after the answer was due,
#: even if the client never read it.
EXIT_SAFETY_SECONDS = 5.0


def new_request_id() -> str:
    """A random UUID4 string (cheaper to start than importing ``uuid``)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class BadInvokeRequest(ValueError):
    pass


def _parse_event(body: bytes) -> Any:
    if not body:
        return {}  # Lambda's Python runtime treats an empty payload as {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadInvokeRequest(f"Could not parse request body into json: {exc}") from None


#: The ARN the caller invoked, qualifier included (``context.invoked_function_arn``); the
#: router's ``names.INVOKED_ARN_HEADER`` (tests/runtime checks the two agree).
INVOKED_ARN_HEADER = "x-invoked-function-arn"
#: ``true`` from the router when this environment is a provisioned one: its Init ran
#: before any invocation, so (as Lambda reports provisioned concurrency) no invocation's
#: REPORT carries an Init Duration. The router's ``names.PROVISIONED_HEADER``.
PROVISIONED_HEADER = "x-provisioned"


def _parse_client_context(value: str | None) -> dict | None:
    if value is None:
        return None
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        decoded = None
    if not isinstance(decoded, dict):
        raise BadInvokeRequest("X-Client-Context must be a valid Base64-encoded JSON object")
    return decoded


def _parse_deadline(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        deadline = float(value)
    except ValueError:
        deadline = float("nan")
    if not deadline == deadline or deadline in (float("inf"), float("-inf")):
        raise BadInvokeRequest("X-Deadline-Ms must be an absolute deadline in epoch milliseconds")
    return deadline


class _Invocation:
    """One running invocation, as the loop thread tracks it."""

    __slots__ = ("request_id", "start", "budget", "log", "headers", "init_ms", "tail", "answer", "timer")

    def __init__(self, request_id, start, budget, log, headers, init_ms, tail, answer):
        self.request_id: str = request_id
        self.start: float = start  # time.monotonic()
        self.budget: float = budget  # seconds
        self.log: InvocationLog = log
        self.headers: list[tuple[str, str]] = headers
        self.init_ms: float | None = init_ms  # only on the cold start
        self.tail: bool = tail
        self.answer: Pending = answer
        self.timer: asyncio.TimerHandle | None = None


#: The header and variable of ``lambdakube.resources.env_token`` (stdlib only here: this
#: package cannot import that one; a test checks that the names agree).
TOKEN_HEADER = "x-env-token"
TOKEN_VARIABLE = "LAMBDAKUBE_ENV_TOKEN"
_GUARDED = ("/init", "/invoke")


class Runtime:
    def __init__(self, *, env_id: str, exit_delay_seconds: float = 0.0, token: str = ""):
        self.env_id = env_id
        self.token = token.encode()
        self.state = GENERIC
        self.config: FunctionConfig | None = None
        self.handler: Callable | None = None
        self.init_error: loader.InitError | None = None
        self.init_duration_ms: float | None = None
        self.worker = Worker()
        #: The child and its Runtime API, for a Runtime API runtime (``runtime_api``).
        self.api: Any = None
        self._cold = False  # the next invocation is the first after Init
        #: Invocations in progress by request id (the run, once it started).
        self._running: dict[str, _Invocation | None] = {}
        #: How many may be in progress at once (the config's ``max_concurrency``).
        self._slots = 1
        self._exit_delay = exit_delay_seconds
        self._unhealthy_reason = ""
        self._init_task: asyncio.Future | None = None
        self.routes: dict[str, dict[str, Callable]] = {
            "/healthz": {"GET": self.healthz},
            "/readyz": {"GET": self.readyz},
            "/init": {"POST": self.init},
            "/invoke": {"POST": self.invoke},
        }

    # -- routing -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Pending | Awaitable[Response]:
        """Route ``request``. Probes and the warm invoke path answer without a coroutine
        (a task per request would cost loop iterations); only ``/init`` is one."""
        if self.token and request.path in _GUARDED:
            shown = (request.header(TOKEN_HEADER) or "").encode()
            if not compare_digest(shown, self.token):
                return error_response(
                    401,
                    "Unauthorized",
                    f"{request.path} of this environment takes only its router's requests (X-Env-Token)",
                )
        methods = self.routes.get(request.path)
        if methods is None:
            return error_response(404, "NotFound", f"no route for {request.path}")
        route = methods.get(request.method)
        if route is None:
            allow = ", ".join(methods)
            return error_response(
                405,
                "MethodNotAllowed",
                f"{request.method} is not allowed on {request.path} (allowed: {allow})",
                headers=[("Allow", allow)],
            )
        return route(request)

    # -- Init ----------------------------------------------------------------------------

    def begin_init(self, config: FunctionConfig) -> None:
        """Start Init now (state flips synchronously) and finish it in the background."""
        self._enter_init(config)
        self._init_task = asyncio.ensure_future(self._run_init())

    def _enter_init(self, config: FunctionConfig) -> None:
        self.config = config
        self._slots = config.max_concurrency
        self.state = INITIALIZING

    async def _run_init(self) -> None:
        config = self.config
        assert config is not None
        if runtimes.is_builtin(config.runtime):
            os.environ.update(self._lambda_variables(config, config.code_dir or os.getcwd(), None))
            handler, error, duration_ms = await self.worker.submit(loader.timed_load, config)
        else:
            handler, (error, duration_ms) = None, await self._start_child(config)
        self.init_duration_ms = round(duration_ms, 3)
        if error is not None:
            self.init_error = error
            self.state = INIT_FAILED
            _write_stdout(log_text(error.error_type, error.message, error.stack_trace))
        else:
            self.handler = handler
            self._cold = True
            self.state = READY

    def _lambda_variables(self, config: FunctionConfig, task_root: str, api_address: str | None) -> dict:
        return runtimes.lambda_variables(
            runtime=config.runtime,
            function_name=config.function_name,
            function_version=config.function_version,
            memory_mb=config.memory_mb,
            namespace=config.namespace,
            handler=config.handler,
            task_root=task_root,
            env_id=self.env_id,
            api_address=api_address,
            environ=dict(os.environ),
            now=time.time(),
            max_concurrency=config.max_concurrency,
        )

    async def _start_child(self, config: FunctionConfig) -> tuple[loader.InitError | None, float]:
        """Init of a Runtime API runtime: its code in place, the child started, until its
        first ``/next`` (``runtime_api``; imported only here: the built-in path never pays)."""
        from .runtime_api import RuntimeApi  # noqa: PLC0415

        task_root = config.code_dir or os.getcwd()
        if config.inline_code:
            filename = runtimes.inline_filename(config.runtime, config.inline_module, config.inline_filename)
            try:
                task_root = loader.write_inline_file(config, filename)
            except OSError as exc:
                return loader.InitError("Runtime.InvalidInlineCode", f"cannot write {filename}: {exc}"), 0.0
        self.api = RuntimeApi(
            runtime=config.runtime,
            task_root=task_root,
            variables=lambda address: self._lambda_variables(config, task_root, address),
            on_gone=self._runtime_gone,
            slots=config.max_concurrency,
        )
        return await self.api.start()

    def _runtime_gone(self, reason: str) -> None:
        """The child exited between invocations: nothing can run here any more."""
        if self.state == UNHEALTHY:
            return
        self._mark_unhealthy(reason)
        self._exit()

    async def init(self, request: Request) -> Response:
        if self.state != GENERIC:
            name = self.config.function_name if self.config else "?"
            return error_response(
                409,
                "EnvironmentAlreadyInitialized",
                f"this environment is already specialised for function '{name}' (state: {self.state})",
            )
        try:
            config, env = from_init_body(json.loads(request.body or b"null"))
        except (ValueError, RecursionError) as exc:  # ConfigError is a ValueError too
            detail = str(exc) if isinstance(exc, ConfigError) else f"Could not parse request body into json: {exc}"
            return error_response(400, "InvalidRequestContentException", detail)
        # No await since the state check: a concurrent /init sees INITIALIZING -> 409.
        self._enter_init(config)
        os.environ.update(env)
        config.export(os.environ)
        await self._run_init()
        if self.state == READY:
            return json_response(200, self._ready_body())
        assert self.init_error is not None
        return json_response(500, {"ready": False, "error": self.init_error.to_dict()})

    # -- probes ----------------------------------------------------------------------------

    def _ready_body(self) -> dict:
        assert self.config is not None
        return {
            "ready": True,
            "initDurationMs": self.init_duration_ms,
            "function": self.config.function_name,
            "envId": self.env_id,
        }

    def healthz(self, request: Request) -> Response:
        return json_response(
            200,
            {"status": "ok", "state": self.state, "envId": self.env_id, "initDurationMs": self.init_duration_ms},
        )

    def readyz(self, request: Request) -> Response:
        if self.state == READY:
            return json_response(200, self._ready_body())
        # envId: whoever found this address some other way than the pod's status (the
        # router after an announce) checks that it reached the environment it expects.
        body: dict = {"ready": False, "state": self.state, "envId": self.env_id}
        if self.state == INIT_FAILED and self.init_error is not None:
            body["error"] = self.init_error.to_dict()
        return json_response(503, body)

    # -- Invoke ----------------------------------------------------------------------------

    def invoke(self, request: Request) -> Response | Pending:
        request_id = request.header("x-request-id") or new_request_id()
        headers = [("X-Request-Id", request_id), ("X-Env-Id", self.env_id)]
        meant_for = request.header("x-env-id")
        if meant_for and meant_for != self.env_id:
            return error_response(
                421,
                "WrongEnvironment",
                f"this is environment {self.env_id}, not {meant_for} (its address was reused)",
                headers=headers,
            )

        if self.state in (GENERIC, INITIALIZING):
            return error_response(
                503, "EnvironmentNotReady", f"this environment is not ready (state: {self.state})", headers=headers
            )
        if self.state == INIT_FAILED:
            assert self.init_error is not None
            error = self.init_error
            return json_response(
                502,
                {
                    "errorType": "Runtime.InitError",
                    "errorMessage": f"{error.error_type}: {error.message}",
                    "initError": error.to_dict(),
                },
                headers,
            )
        if self.state == UNHEALTHY:
            return error_response(
                503,
                "EnvironmentUnhealthy",
                f"this environment is unhealthy ({self._unhealthy_reason}) and is being recycled",
                headers=headers,
            )
        if len(self._running) >= self._slots:
            running = ", ".join(self._running)
            at_once = "one request" if self._slots == 1 else f"{self._slots} requests"
            return error_response(
                409,
                "EnvironmentBusy",
                f"this environment is already running request {running}; an environment serves {at_once} at a time",
                headers=headers,
            )
        try:
            client_context = _parse_client_context(request.header("x-client-context"))
            invoked_arn = request.header(INVOKED_ARN_HEADER)
            deadline_ms = _parse_deadline(request.header("x-deadline-ms"))
            # A Runtime API runtime gets the payload as sent (its client parses it).
            event = (request.body or b"{}") if self.api is not None else _parse_event(request.body)
        except BadInvokeRequest as exc:
            return error_response(400, "InvalidRequestContentException", str(exc), headers=headers)
        # Nothing runs between the busy check above and this line (no await, one thread).
        self._running[request_id] = None
        tail = (request.header("x-log-type") or "").lower() == "tail"
        provisioned = request.header(PROVISIONED_HEADER) == "true"
        return self._run(request_id, event, client_context, deadline_ms, tail, headers, invoked_arn, provisioned)

    def _run(
        self,
        request_id: str,
        event: Any,
        client_context: dict | None,
        deadline_ms: float | None,
        tail: bool,
        headers: list[tuple[str, str]],
        invoked_arn: str | None = None,
        provisioned: bool = False,
    ) -> Response | Pending:
        """Start the invocation on the worker; the answer is resolved when the handler
        finishes or its time is up, whichever comes first."""
        config = self.config
        assert config is not None and (self.handler is not None or self.api is not None)
        start = time.monotonic()
        budget = config.timeout_seconds
        if deadline_ms is not None:
            budget = min(budget, deadline_ms / 1000.0 - time.time())
        if budget <= 0:
            # The router's deadline passed before we started: refuse without running,
            # so the environment stays healthy (nothing is stuck on the worker).
            self._running.pop(request_id, None)
            message = report.timeout_line(request_id, 0.0) + " (the deadline passed before the invocation started)"
            headers.append(("X-Function-Error", "Unhandled"))
            return error_response(200, "Sandbox.Timedout", message, headers=headers)

        init_ms, self._cold = (self.init_duration_ms if self._cold and not provisioned else None), False
        log = InvocationLog(sys.stdout)
        if self.api is None:
            log.write(report.start_line(request_id, config.function_version))
        else:  # written before the runtime's first output, or with END (runtime_api)
            log.defer(report.start_line(request_id, config.function_version))
        loop = asyncio.get_running_loop()
        run = _Invocation(request_id, start, budget, log, headers, init_ms, tail, Pending())
        self._running[request_id] = run
        # The watchdog: a timer, not a task; cancelled when the handler finishes in time.
        run.timer = loop.call_later(budget, self._timed_out, run)
        if self.api is not None:  # the child's /next answer (runtime_api)
            arn = invoked_arn or f"lambdakube:{config.namespace}:function:{config.function_name}"
            next_headers = self.api.next_headers(request_id, time.time() + budget, arn, client_context)
            self.api.invoke(request_id, event, next_headers, log, partial(self._finished, run))
            return run.answer
        context = LambdaContext(
            request_id=request_id,
            function_name=config.function_name,
            function_version=config.function_version,
            memory_mb=config.memory_mb,
            namespace=config.namespace,
            env_id=self.env_id,
            timeout_seconds=config.timeout_seconds,
            deadline_monotonic=start + budget,
            client_context=client_context,
            invoked_function_arn=invoked_arn,
        )
        # Last, so the worker wakes when this loop iteration has little left to do.
        self.worker.call(invoker.invoke, (self.handler, event, context, log), partial(self._finished, run))
        return run.answer

    def _finished(self, run: _Invocation, outcome: invoker.Outcome | None, exc: BaseException | None) -> None:
        """On the loop, when the worker is done with ``run`` (in time or not)."""
        self._release(run.request_id)
        if run.answer.done:  # already answered: it timed out
            return
        if run.timer is not None:
            run.timer.cancel()
        if exc is not None or outcome is None:  # invoker.invoke does not raise; be safe
            run.answer.resolve(internal_error(exc or RuntimeError("the invocation produced no outcome")))
            return
        headers = run.headers
        response = Response(200, outcome.body, headers)
        if outcome.error_type is not None:
            headers.append(("X-Function-Error", "Unhandled"))
        if outcome.exited:
            self._mark_unhealthy("the handler called sys.exit()")
            headers.append(("X-Env-Unhealthy", "true"))
            response.close, response.after_sent = True, self._exit_after_response
        self._report(run, outcome.duration_ms, response)
        run.answer.resolve(response)
        run.log.flush()

    def _timed_out(self, run: _Invocation) -> None:
        """The watchdog fired before the worker finished: answer now, then recycle."""
        if run.answer.done:
            return
        duration_ms = (time.monotonic() - run.start) * 1000.0
        message = report.timeout_line(run.request_id, run.budget)
        run.log.write(message + "\n")
        body = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode()
        self._mark_unhealthy(f"request {run.request_id} timed out")
        after = self._exit_after_response
        if self.api is not None:
            after = self._recycled_under(run)
            self.api.kill()  # Lambda stops the runtime; this environment is recycled
        run.headers += [("X-Function-Error", "Unhandled"), ("X-Env-Unhealthy", "true")]
        response = Response(200, body, run.headers, close=True, after_sent=after)
        self._report(run, duration_ms, response)
        run.answer.resolve(response)
        run.log.flush()

    def _countdown(self, n: int) -> Callable[[], None]:
        """``_exit_after_response`` once it has been called ``n`` times."""
        left = [n]

        def sent() -> None:
            left[0] -= 1
            if left[0] == 0:
                self._exit_after_response()

        return sent

    def _recycled_under(self, timed_out: _Invocation) -> Callable[[], None]:
        """The other invocations of a recycled environment (``maxConcurrency`` > 1): one
        timed out, and the runtime's process (all of them share it: one Node.js event
        loop) is killed with it. Each is answered now with ``Sandbox.Recycled``, naming
        the invocation that timed out, as a function error on an unhealthy environment
        (``X-Env-Recycled``: the router counts them), never left to hang or to a bare
        ``Runtime.ExitError``. Each is sent with close; returns the timed-out answer's
        ``after_sent``: the process exits once all of them are out, not after the first."""
        stopped = [
            (request_id, run)
            for request_id, run in self._running.items()
            if run is not None and run is not timed_out and not run.answer.done
        ]
        after = self._countdown(len(stopped) + 1)
        for request_id, run in stopped:
            if run.timer is not None:
                run.timer.cancel()
            duration_ms = (time.monotonic() - run.start) * 1000.0
            message = (
                f"RequestId: {request_id} Error: the environment was recycled because request"
                f" {timed_out.request_id} timed out after {timed_out.budget:.2f} seconds; this invocation was stopped"
            )
            run.log.write(message + "\n")
            body = json.dumps({"errorType": "Sandbox.Recycled", "errorMessage": message}).encode()
            run.headers += [
                ("X-Function-Error", "Unhandled"),
                ("X-Env-Unhealthy", "true"),
                ("X-Env-Recycled", timed_out.request_id),
            ]
            response = Response(200, body, run.headers, close=True, after_sent=after)
            self._report(run, duration_ms, response)
            run.answer.resolve(response)
            run.log.flush()
        return after

    def _report(self, run: _Invocation, duration_ms: float, response: Response) -> None:
        """END + REPORT lines (in the tail now, on stdout in one write after the answer,
        with ``log.flush``: no log write is on the answer's path; the handler has finished,
        so nothing of its output can come after them), and the metrics headers of an
        invocation that ran."""
        config = self.config
        assert config is not None
        max_memory = report.max_memory_used_mb() if self.api is None else self.api.max_memory_mb()
        run.log.defer(
            report.end_line(run.request_id)
            + report.report_line(run.request_id, duration_ms, config.memory_mb, max_memory, run.init_ms)
        )
        response.headers += [
            ("X-Run-Duration-Ms", f"{duration_ms:.3f}"),
            ("X-Billed-Duration-Ms", str(report.billed_ms(duration_ms))),
            ("X-Max-Memory-Used-Mb", str(max_memory)),
            ("X-Memory-Size-Mb", str(config.memory_mb)),
            ("X-Executed-Version", config.function_version),
        ]
        if run.init_ms is not None:
            response.headers.append(("X-Init-Duration-Ms", f"{run.init_ms:.3f}"))
        if run.tail:
            response.headers.append(("X-Log-Result", base64.b64encode(run.log.tail()).decode()))

    def _release(self, request_id: str) -> None:
        if self.state != UNHEALTHY:
            self._running.pop(request_id, None)

    # -- recycling -------------------------------------------------------------------------

    def _mark_unhealthy(self, reason: str) -> None:
        self.state = UNHEALTHY
        self._unhealthy_reason = reason
        # Safety net: exit even if the answer is never flushed (client gone, stuck socket).
        asyncio.get_running_loop().call_later(self._exit_delay + EXIT_SAFETY_SECONDS, self._exit)

    def _exit_after_response(self) -> None:
        asyncio.get_running_loop().call_later(self._exit_delay, self._exit)

    def _exit(self) -> None:
        reason = self._unhealthy_reason
        _write_stderr(f"lambdakube-runtime: environment {self.env_id} is unhealthy ({reason}); exiting\n")
        shutdown_process(0)


def _write(stream, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (AttributeError, OSError, ValueError):  # no stream (None), closed, broken pipe
        pass


def _write_stdout(text: str) -> None:
    _write(sys.__stdout__, text)


def _write_stderr(text: str) -> None:
    _write(sys.__stderr__, text)


def _parent_gone() -> None:
    """The router that started this environment is gone (``parent``): leave now."""
    _write_stderr("lambdakube-runtime: the router that started this environment is gone; exiting\n")
    shutdown_process(0)


def shutdown_process(code: int) -> None:
    """Flush the log streams and leave without joining threads: a handler thread may be
    stuck forever, and interpreter shutdown would wait on (or crash against) it."""
    for stream in (sys.__stdout__, sys.__stderr__):
        _write(stream, "")
    loader.remove_inline_dirs()
    children = sys.modules.get(__package__ + ".runtime_api")
    if children is not None:
        children.kill_children()
    os._exit(code)


async def serve(host: str, port: int, config: FunctionConfig | None, env_id: str, exit_delay_seconds: float) -> int:
    # The token is the runtime's alone: a handler's subprocesses do not inherit it.
    token = os.environ.pop(TOKEN_VARIABLE, "")
    runtime = Runtime(env_id=env_id, exit_delay_seconds=exit_delay_seconds, token=token)
    server = HTTPServer(runtime.handle)
    bound = await server.start(host, port)
    # Before Init: a handler module may build its SDK clients at import.
    credentials = Credentials.install(os.environ, bound)
    if credentials is not None:
        runtime.routes[CREDENTIALS_PATH] = {"GET": credentials.answer}
    # Listen first, then Init, so probes can observe "initializing".
    if config is not None:
        config.export(os.environ)
        runtime.begin_init(config)
    _write_stdout(f"{parent.LISTENING_PREFIX}{bound}\n")
    parent.report_listening(os.environ, bound)
    announcing = None
    url, pod_ip = os.environ.get("LAMBDAKUBE_ANNOUNCE_URL"), os.environ.get("LAMBDAKUBE_POD_IP")
    if url and pod_ip:
        from .announce import announce  # noqa: PLC0415 - only pods a router waits for

        address = f"[{pod_ip}]:{bound}" if ":" in pod_ip else f"{pod_ip}:{bound}"
        announcing = asyncio.ensure_future(
            announce(url, env_id, address, os.environ.get("LAMBDAKUBE_ANNOUNCE_TOKEN", ""))
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    parent.watch(os.environ, _parent_gone)
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform / thread
            pass
    await stop.wait()
    if announcing is not None:
        announcing.cancel()
    # Graceful: stop accepting, let an invocation in flight finish (it cannot outlive
    # its timeout - then the environment exits by itself anyway).
    grace = (runtime.config.timeout_seconds if runtime.config else 0.0) + 2.0
    await server.shutdown(grace)
    return 0
