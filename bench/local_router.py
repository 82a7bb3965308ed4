"""The benchmarks' router and runtime processes on 127.0.0.1, started one way.

Why one module: ``cold_start.py`` and ``router_overhead.py`` each started the router
with their own copy of the command line and environment, and a flag added to one was
missing from the other's numbers. The scripts import it as a sibling (``python
bench/<name>.py`` puts ``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def process_env() -> dict:
    """This environment, with the repository's packages importable and unbuffered output."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "router", "runtime-image")),
        "PYTHONUNBUFFERED": "1",
    }


def start_router(functions: Path, state: Path, *extra: str, stderr: Any = None) -> tuple[subprocess.Popen, int]:
    """A router on the local backend serving ``functions``, on a free port: (process, port).
    ``extra``: more command-line flags (``--generic-pool-size 4``, ``--no-uvloop``);
    ``stderr``: where its log goes (default: this process's stderr)."""
    cmd = [
        sys.executable,
        "-m",
        "lambdakube_router",
        "--functions",
        str(functions),
        "--backend",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--state-dir",
        str(state),
        "--log-level",
        "WARNING",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=process_env(), stdout=subprocess.PIPE, stderr=stderr or sys.stderr)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("LAMBDAKUBE_ROUTER_LISTENING "), line
    return proc, int(line.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate ``proc`` (by its own handle, never by name); kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
