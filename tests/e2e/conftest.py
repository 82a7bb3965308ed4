"""The e2e suite's session: one cluster (this machine's real node, or the cluster named
by ``LAMBDAKUBE_E2E_KUBECONFIG``), one ``helm install --wait`` of the chart, and a fresh
namespace per scenario module. The modules are numbered in the order they run: the
install is checked first and ``helm uninstall`` last.

A node that cannot come up is a test error with the component's log tail, never a skip.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.cluster import RELEASE, Cluster, install_release, open_cluster


@pytest.fixture(scope="session")
def e2e_cluster():
    with open_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def release(e2e_cluster: Cluster):
    """The chart installed once for the session (``install_release``). Its ``helm
    uninstall`` is a scenario of its own, the last module."""
    install_release(e2e_cluster)
    yield e2e_cluster
    e2e_cluster.close()


@pytest.fixture(scope="module")
def ns(release: Cluster):
    """A namespace of the scenario module's own (its own quota, pods and queues)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    release.kubectl("create", "namespace", name)
    yield name
    release.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_runtest_makereport(item, call):
    """On a failed scenario, show what the cluster saw: pods, events, component logs."""
    if call.when != "call" or call.excinfo is None:
        return
    cluster = item.funcargs.get("release") or item.funcargs.get("e2e_cluster")
    if not isinstance(cluster, Cluster):
        return
    parts = [
        cluster.kubectl("get", "pods,functions", "-A", "-o", "wide", check=False).stdout,
        cluster.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout[-3000:],
    ]
    for comp in ("router", "operator"):
        parts.append(f"--- {comp} log ---\n" + cluster.logs(f"deploy/{RELEASE}-lambdakube-{comp}", tail=60))
    item.add_report_section("call", "cluster", "\n".join(parts))
