"""Where the real Runtime API clients of the conformance tests are, and code directories
that run them as a function's ``bootstrap``.

Built tools are located with ``hack/build-tools.sh --check`` (the one place that knows
the cache layout). A missing one fails the test naming the make target that builds it:
a test never builds a tool (that would run into its timeout), and never skips silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent / "clients"
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"


def tool_root(name: str) -> Path:
    """``~/.cache/lambdakube/tools/<name>-<version>``, or the test fails with the hint."""
    done = subprocess.run(["bash", str(BUILD_TOOLS), "--check", name], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"{name} is not built: {done.stderr.strip()}", pytrace=False)
    link = Path(done.stdout.strip()) / name
    return link.resolve().parent.parent


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: `apt-get install nodejs` (Debian's, v18+)", pytrace=False)
    return node


def awslambdaric_dir(tmp_path: Path) -> Path:
    """A code directory: ``app.py`` and a ``bootstrap`` that execs awslambdaric (PyPI,
    built beside aws-lambda-rie by ``make rie``) with this interpreter."""
    site = tool_root("rie") / "python"
    code = tmp_path / "awslambdaric"
    code.mkdir()
    shutil.copy(CLIENTS / "python" / "app.py", code / "app.py")
    bootstrap = code / "bootstrap"
    bootstrap.write_text(
        f'#!/bin/sh\nexport PYTHONPATH="{site}"\nexec "{sys.executable}" -m awslambdaric "$_HANDLER"\n'
    )
    bootstrap.chmod(0o755)
    return code


def lambda_go_dir(tmp_path: Path) -> Path:
    """A code directory whose ``bootstrap`` is the aws-lambda-go function (``make lambda-go``)."""
    binary = tool_root("lambdago") / "bin" / "lambdago"
    code = tmp_path / "lambdago"
    code.mkdir()
    os.symlink(binary, code / "bootstrap")
    return code


def node_ric_index() -> str:
    """aws-lambda-ric's entry point (npm, ``make node-ric``), for ``LAMBDAKUBE_NODE_RIC``."""
    node_binary()
    return str(tool_root("noderic") / "node_modules" / "aws-lambda-ric" / "index.mjs")
