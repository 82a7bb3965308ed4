"""Process handling every test layer shares."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def stop_process(proc: subprocess.Popen, timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds: the one way tests end a process
    they started (by its own handle, never by name)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def kill_and_wait_dead(pid: int) -> None:
    """SIGKILL, then wait (blocking, bounded) until the kernel has ended the process and
    closed its files (its sockets), without letting an event loop run meanwhile. Why the
    files too: the leader of a threaded process is a zombie before its other threads
    have exited, and the files close with the last of them."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X") and not os.listdir(f"/proc/{pid}/fd"):
                return
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} still running 5 s after SIGKILL")
