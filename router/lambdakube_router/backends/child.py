"""A child process started off the event loop and watched without a thread.

Why not ``asyncio.create_subprocess_exec``: it runs ``fork``/``exec`` on the loop's
thread and then blocks there until the child has called ``exec`` (subprocess reads its
error pipe to learn whether ``exec`` worked). Measured in a storm of cold starts, that
was 37% of the router's main-thread time: every request, probe and answer waited behind
other environments' spawns. Here ``subprocess.Popen`` runs on a small thread pool, so
the loop only hears about a process once it runs. The default asyncio loop then also
started one thread per child to wait for its exit (``ThreadedChildWatcher``); a pidfd
(Linux 5.3+) becomes readable when the process ends, so the loop watches it like any
other file and reaps the child with one non-blocking ``waitpid`` (``Popen.poll``).
Without pidfds a daemon thread per child waits instead.

Signals go through the pidfd too: once reaped, a pid can belong to another process, a
pidfd cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading


class Child:
    """``returncode``, ``wait()``, ``send_signal()`` and ``kill()``, as an
    ``asyncio.subprocess.Process`` has them. Create it on the loop that watches it."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._loop = asyncio.get_running_loop()
        self._exited = asyncio.Event()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfds here: one thread waits for this child
            threading.Thread(target=self._wait_blocking, name=f"wait-{self.pid}", daemon=True).start()
        else:
            self._loop.add_reader(self._pidfd, self._readable)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def _readable(self) -> None:
        if self.popen.poll() is None:  # not ended after all (the pidfd says it has)
            return
        self._close_pidfd()
        self._exited.set()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def _wait_blocking(self) -> None:
        self.popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._exited.set)

    async def wait(self) -> int:
        await self._exited.wait()
        code = self.popen.returncode
        assert code is not None
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the process unless it has ended; ProcessLookupError if it just did."""
        if self.popen.returncode is not None:
            return
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)
        else:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def forget(self) -> None:
        """Stop watching (the loop is closing); the process is not signalled."""
        if self._pidfd is not None:
            self._close_pidfd()
