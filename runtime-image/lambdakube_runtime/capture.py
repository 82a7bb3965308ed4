"""Capturing one invocation's log for ``X-Log-Type: Tail``.

The handler's ``print()``, writes to ``sys.stderr`` and ``logging`` records must still
reach the process's stdout/stderr (that is the pod log, read line by line by the log
pipeline) *and* be kept so the caller can get the last 4 KiB back, like Lambda's
``LogResult``. Swapping ``sys.stdout``/``sys.stderr`` for a tee during the invocation is
safe here because an environment runs exactly one invocation at a time; the runtime's own
START/END/REPORT lines are written through the same ``InvocationLog`` so the tail
contains them too.

Only the last ``limit`` bytes are kept, so a chatty handler cannot grow memory.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import TextIO

from .report import iso_time

TAIL_BYTES = 4096


class InvocationLog:
    """The tail of one invocation's log, plus write-through to the real stdout."""

    def __init__(self, stream: TextIO, limit: int = TAIL_BYTES):
        self.stream = stream
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()  # the worker and the server thread both write
        #: Lines in the tail already but not yet on the stream (``defer``).
        self.deferred = ""

    def capture(self, text: str) -> None:
        data = text.encode("utf-8", "backslashreplace")
        with self._lock:
            self._buf += data
            if len(self._buf) > 2 * self._limit:  # trim occasionally, not on every write
                del self._buf[: -self._limit]

    def write(self, text: str) -> None:
        """A line of the runtime's own (START/END/REPORT, errors): to stdout and the tail
        (after any deferred lines, which are in the tail already)."""
        self.capture(text)
        if self.deferred:
            text, self.deferred = self.deferred + text, ""
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout gone; the tail still has it

    def defer(self, text: str) -> None:
        """A runtime line for the tail now and the stream later (``flush``): a Runtime
        API invocation writes START only before its runtime's first output, or with END
        and REPORT after the answer, so no log write is on the invocation's path."""
        self.capture(text)
        self.deferred += text

    def flush(self) -> None:
        text, self.deferred = self.deferred, ""
        if text:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._buf[-self._limit :])


class Tee(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: writes through, and captures what was written.

    ``Capture`` keeps one per stream and re-targets it for each invocation: destroying
    an ``io.TextIOBase`` runs its finaliser (``closed`` lookup, ``close()``, ``flush()``),
    which costs more than everything else the tee does per invocation. Between
    invocations ``log`` is None and writes (from a reference a function kept) only pass
    through.
    """

    def __init__(self, stream: TextIO, log: InvocationLog | None):
        self._stream = stream
        self._log = log

    def retarget(self, stream: TextIO, log: InvocationLog | None) -> None:
        self._stream = stream
        self._log = log

    def write(self, text: str) -> int:
        written = self._stream.write(text)  # raises for non-str exactly like the real stream
        log = self._log
        if log is not None:
            log.capture(text)
        return written if written is not None else len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        """A function closing sys.stdout must not close the pod's log stream (nor this
        tee, which later invocations reuse): flush only."""
        self.flush()

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self._stream, "errors", "strict")

    def __getattr__(self, name: str):  # buffer, line_buffering, reconfigure, ...
        return getattr(self._stream, name)


class CaptureHandler(logging.Handler):
    """Root-logger handler for the duration of an invocation, in Lambda's line format:
    ``[LEVEL]\\t<ISO time>\\t<request id>\\t<message>``.

    If the function configured its own root handlers, they already put the record in the
    pod log, so this handler only adds it to the tail (no duplicate lines on stdout).

    One instance serves every invocation (``bind`` points it at the current one):
    constructing a ``logging.Handler`` takes the logging module lock, creates an RLock and
    registers a weakref, which is a noticeable share of a warm invocation's cost.
    """

    def __init__(self) -> None:
        super().__init__()
        self._log: InvocationLog | None = None
        self._request_id = ""

    def bind(self, log: InvocationLog, request_id: str) -> None:
        self._log = log
        self._request_id = request_id

    def format(self, record: logging.LogRecord) -> str:
        text = f"[{record.levelname}]\t{iso_time(record.created)}\t{self._request_id}\t{record.getMessage()}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        return text + "\n"

    def emit(self, record: logging.LogRecord) -> None:
        log = self._log
        if log is None:
            return
        try:
            text = self.format(record)
            if any(h is not self for h in logging.getLogger().handlers):
                log.capture(text)
            else:
                log.write(text)
        except Exception:
            self.handleError(record)


class Capture:
    """Context manager: tee stdout/stderr and hook the root logger into one invocation's log.

    Reusable (``capture(log, request_id)`` re-targets it, then ``with``); an environment
    runs one invocation at a time, so the worker thread keeps a single instance.
    """

    def __init__(self) -> None:
        self._handler = CaptureHandler()
        self._log: InvocationLog | None = None
        self._saved: tuple[TextIO, TextIO] | None = None
        self._tees: list[Tee | None] = [None, None]  # for stdout, stderr

    def __call__(self, log: InvocationLog, request_id: str) -> Capture:
        self._log = log
        self._handler.bind(log, request_id)
        return self

    def __enter__(self) -> Capture:
        assert self._log is not None, "call capture(log, request_id) first"
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = self._tee(0, sys.stdout, self._log)
        sys.stderr = self._tee(1, sys.stderr, self._log)
        logging.getLogger().addHandler(self._handler)
        return self

    def _tee(self, index: int, stream: TextIO, log: InvocationLog) -> Tee:
        tee = self._tees[index]
        if tee is None:
            tee = self._tees[index] = Tee(stream, log)
        else:
            tee.retarget(stream, log)
        return tee

    def __exit__(self, *exc_info) -> None:
        logging.getLogger().removeHandler(self._handler)
        # Records logged later (a background thread of the function) are not ours to keep.
        self._handler.bind(None, "")  # type: ignore[arg-type]
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        for tee, stream in zip(self._tees, (sys.stdout, sys.stderr)):
            if tee is not None:
                tee.retarget(stream, None)
        self._log = None
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
