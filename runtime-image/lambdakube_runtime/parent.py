"""The two pipes a local parent passes: liveness (``LAMBDAKUBE_PARENT_FD``) and the
listening report (``LAMBDAKUBE_READY_FD``).

Die with the process that started us: the parent-liveness pipe.

Why: a local router (``lambdakube dev``, the tests) starts every environment as its own
child process. When the router is killed (kill -9, an OOM kill, a crash) nobody stops
them: an audit found 66 runtimes still running after a kill -9, reparented to init,
holding ports and temporary files. A pod needs none of this (its container dies with the
pod), so this is only switched on by the variable.

How: the router holds the write end of one pipe (close-on-exec, so no other process
inherits it) and passes the read end to every runtime it starts. Nobody ever writes to
it, so the read end becomes readable exactly when the last write end closes: when the
router process is gone, however it ended. The event loop watches the fd (no thread, no
import beyond what the server already has), and the runtime leaves at once: nobody is
left to receive an answer. Why not ``PR_SET_PDEATHSIG``: it needs ``ctypes`` (import
time is the cold start), a ``preexec_fn`` in the parent (which makes every spawn slower
and is unsafe with threads), and it fires when the spawning *thread* exits, not the
process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

VARIABLE = "LAMBDAKUBE_PARENT_FD"
#: The write end of a pipe on which the runtime reports its port once it listens.
READY_VARIABLE = "LAMBDAKUBE_READY_FD"
#: The one line written there (and to stdout): ``LAMBDAKUBE_LISTENING port=<n>``.
LISTENING_PREFIX = "LAMBDAKUBE_LISTENING port="


def watch(environ: Mapping[str, str], on_gone: Callable[[], None]) -> int | None:
    """Call ``on_gone`` (on the running loop) once the parent is gone; returns the fd
    watched, or None without the variable. A bad value is ignored with no watch: it
    cannot be the router's (it always passes a valid fd)."""
    raw = environ.get(VARIABLE)
    if not raw:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    os.set_inheritable(fd, False)  # the handler's own subprocesses don't keep it open

    def readable() -> None:
        try:
            data = os.read(fd, 1)
        except BlockingIOError:  # a spurious wakeup (someone set O_NONBLOCK): not EOF
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            on_gone()

    asyncio.get_running_loop().add_reader(fd, readable)
    return fd


def report_listening(environ: dict | os._Environ, port: int) -> bool:
    """Write the listening line to ``LAMBDAKUBE_READY_FD`` and close it; True if written.

    Why a pipe and not only stdout: a parent that sends stdout to a file (the local
    router does, see its backend) had to poll that file for the line, with backoffs
    that cost a cold start tens of milliseconds. The parent waits on the pipe's read
    end instead: it wakes up on the line, or on the pipe's end (EOF) if the runtime
    dies first, at once either way. The variable is removed so a handler never sees a
    closed fd's number. A bad value is ignored (the parent then times out, as it would
    for a runtime that never listens)."""
    raw = environ.pop(READY_VARIABLE, None)
    if not raw:
        return False
    try:
        fd = int(raw)
    except ValueError:
        return False
    try:
        os.write(fd, f"{LISTENING_PREFIX}{port}\n".encode())
        return True
    except OSError:  # not a pipe of ours, or the parent stopped waiting
        return False
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
