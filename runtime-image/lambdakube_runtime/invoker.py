"""One invocation, run on the worker thread: call the handler, shape the result.

Everything here turns into an ``Outcome`` - this function never raises - because the
server must answer every invocation that ran, success or not, and account for it in
the REPORT line. The handler's result is serialised here too (not on the server loop):
it is part of the invocation's duration, and a 6 MB response should not stall probes.

``async def`` handlers (or handlers returning any awaitable) run to completion on this
thread's own event loop, created on first use and kept, so that loop-bound resources
created in one invocation (an aiohttp session, say) are usable in the next - the asyncio
equivalent of module-level state surviving between calls.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .capture import Capture, InvocationLog
from .context import LambdaContext
from .errors import format_stack, log_text


@dataclass
class Outcome:
    body: bytes
    #: None on success; the ``errorType`` of a function error otherwise.
    error_type: str | None
    #: The handler called sys.exit(): the environment must be recycled.
    exited: bool
    duration_ms: float


_loop: asyncio.AbstractEventLoop | None = None  # the worker thread's own loop
_capture = Capture()  # reused: invocations run one at a time, all on the worker thread


def _run_awaitable(awaitable: Any) -> Any:
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)  # for handlers that call get_event_loop()
    return _loop.run_until_complete(awaitable)


def _error_body(error_type: str, message: str, request_id: str, stack: list[str]) -> bytes:
    return json.dumps(
        {"errorType": error_type, "errorMessage": message, "requestId": request_id, "stackTrace": stack}
    ).encode()


def invoke(handler: Callable, event: Any, context: LambdaContext, log: InvocationLog) -> Outcome:
    request_id = context.aws_request_id
    error: tuple[str, str, list[str]] | None = None
    exited = False
    body = b""
    start = time.perf_counter()
    with _capture(log, request_id):
        try:
            result = handler(event, context)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
            try:
                body = json.dumps(result, allow_nan=False).encode()
            except Exception as exc:
                error = ("Runtime.MarshalError", f"Unable to marshal response: {exc}", [])
        except SystemExit as exc:
            exited = True
            status = 0 if exc.code is None else exc.code
            error = (
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}",
                format_stack(exc.__traceback__),
            )
        except BaseException as exc:  # the handler's own failure, whatever it raised
            error = (type(exc).__name__, str(exc), format_stack(exc.__traceback__))
        if error is not None:
            log.write(log_text(*error))
            body = _error_body(error[0], error[1], request_id, error[2])
    duration_ms = (time.perf_counter() - start) * 1000.0
    return Outcome(body, error[0] if error else None, exited, duration_ms)
