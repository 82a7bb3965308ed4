"""Shared fixtures. The control plane is session-scoped: it starts once (a few seconds
from the cached binaries) and every cluster test works in its own namespace."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    from tests.cluster.controlplane import running

    with running(tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


@pytest.fixture
def namespace(control_plane):
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
