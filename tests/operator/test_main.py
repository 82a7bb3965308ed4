"""``python -m lambdakube_operator`` as a process: flags, liveness, metrics, and it works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.controlplane import free_port
from tests.operator.conftest import eventually, function

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError as exc:
        raise AssertionError(f"{url}: {exc}") from None


def test_the_operator_process_serves_liveness_metrics_and_functions(kube, tmp_path):
    metrics, liveness = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "operator")])}
    log = open(tmp_path / "operator.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lambdakube_operator",
            "--namespace",
            kube.ns,
            "--kubeconfig",
            str(kube.cp.kubeconfig),
            "--metrics-port",
            str(metrics),
            "--liveness-port",
            str(liveness),
            "--resync-interval",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        eventually(lambda: get(f"http://127.0.0.1:{liveness}/healthz")[0] == 200, timeout=30)
        kube.apply(function("hello", provisionedConcurrency=1))
        eventually(lambda: len(kube.provisioned("hello")) == 1)
        body = eventually(
            lambda: (
                'lambdakube_operator_pods_created_total{role="provisioned"} 1.0'
                in get(f"http://127.0.0.1:{metrics}/metrics")[1]
                and get(f"http://127.0.0.1:{metrics}/metrics")[1]
            )
        )
        assert "lambdakube_operator_reconcile_duration_seconds_bucket" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # The process is gone: release our finalizer so the namespace can go.
        kube.cp.kubectl(
            "patch", "fn", "hello", "-n", kube.ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    assert proc.returncode == 0, (tmp_path / "operator.log").read_text()[-3000:]
