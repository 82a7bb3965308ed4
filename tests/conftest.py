"""Shared fixtures. The control plane is session-scoped: it starts once (a few seconds
from the cached binaries) and every cluster test works in its own namespace.

Tests never build a tool: the make targets do, before pytest starts (`make test`,
`make test-fast`), because a build inside a test runs into its timeout on a fresh
machine. The tests only locate what is built, and a missing tool fails the test with
the make target that builds it.
"""

from __future__ import annotations

import os
import uuid

import pytest

# Whatever the suite runs, the hack/build-*.sh scripts only look and never build: also
# when a helper calls one without --check (tests/e2e/node.py, for CoreDNS and the images).
os.environ["LAMBDAKUBE_NO_BUILD"] = "1"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    from tests.cluster.controlplane import ToolMissing, locate_controlplane, running

    missing = None
    try:
        locate_controlplane()
    except ToolMissing as exc:
        missing = str(exc)
    if missing:  # a failure, never a skip, naming `make controlplane`; unchained
        pytest.fail(missing, pytrace=False)
    with running(tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


@pytest.fixture
def namespace(control_plane):
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
