"""Die with the process that started us: the parent-liveness pipe (``LAMBDAKUBE_PARENT_FD``).

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
