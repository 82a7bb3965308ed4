"""The CLI against a real router: ``make_router`` (tests/router) serves on 127.0.0.1 with
real runtime processes, and ``lk`` runs the installed ``lambdakube`` console script as
a subprocess, without blocking the event loop the router runs on."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.router.conftest import make_router  # noqa: F401 - the fixture
from tests.router.test_router_auth_kubernetes import cluster, teams  # noqa: F401 - fixtures (test_cli_kubeconfig)

LAMBDAKUBE = Path(sys.executable).parent / "lambdakube"
#: Every CLI call in these tests ends within this (the router answers in milliseconds).
CALL_TIMEOUT = 60.0


@dataclass
class Run:
    code: int
    out: str
    err: str


async def lk(*args: str, url: str | None = None, env: dict | None = None, stdin: bytes | None = None) -> Run:
    if not LAMBDAKUBE.exists():
        pytest.fail(f"{LAMBDAKUBE} is missing: run `make deps` (pip install -e '.[test]')", pytrace=False)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDAKUBE_")}
    if url is not None:
        environ["LAMBDAKUBE_ROUTER_URL"] = url
    environ.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        str(LAMBDAKUBE),
        *args,
        env=environ,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), CALL_TIMEOUT)
    except TimeoutError:
        proc.kill()  # this one process, by its handle
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def base_url(router) -> str:
    return router.url("/").rstrip("/")


def parse_table(text: str) -> list[dict[str, str]]:
    """A kubectl-style table: columns split on runs of 2+ spaces (cells have none)."""
    import re

    lines = [line for line in text.splitlines() if line.strip()]
    headers = re.split(r"\s{2,}", lines[0].strip())
    rows = []
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(headers), (headers, cells)
        rows.append(dict(zip(headers, cells, strict=True)))
    return rows
