"""The ``lambdakube`` CLI against the installed router on the real node, as a user of
the cluster runs it: a ServiceAccount token (audience lambdakube) bound to
``lambdakube-admin``, the router through its Service. ``invoke`` runs the function and
prints its REPORT line, ``get functions`` and ``describe`` show its environment, and
``logs`` (the router keeps no pod output) reads the pods' logs with the caller's own
kubeconfig through kubectl, prefixed by pod."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.cluster import Cluster, function_manifest, wait_for

LAMBDAKUBE = Path(sys.executable).parent / "lambdakube"

HANDLER = """
def handler(event, context):
    print("hello from", context.aws_request_id)
    return {"got": event}
"""


def test_the_cli_against_the_installed_router(release: Cluster, ns: str, tmp_path):
    assert LAMBDAKUBE.exists(), f"{LAMBDAKUBE} is missing: run `make deps`"
    release.kubectl("create", "serviceaccount", "user", "-n", ns)
    release.kubectl(
        "create", "rolebinding", "user-admin", "-n", ns, "--clusterrole=lambdakube-admin", f"--serviceaccount={ns}:user"
    )  # fmt: skip
    release.apply([function_manifest("greeter", HANDLER)], ns)
    wait_for(lambda: release.router_function("greeter", ns), 60, "the router to see the Function")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LAMBDAKUBE_ROUTER_URL": release.router_url,
        "LAMBDAKUBE_TOKEN": release.create_token("user", ns),
        "LAMBDAKUBE_NAMESPACE": ns,
        "KUBECONFIG": str(release.kubeconfig),
    }

    def lk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(LAMBDAKUBE), *args], env=env, capture_output=True, text=True, timeout=120)

    def invoked():
        out = lk("invoke", "greeter", "--payload", '{"n": 1}', "--log-tail", "-o", "json")
        return out if out.returncode == 0 else None

    out = wait_for(invoked, 60, "the RoleBinding to let the CLI invoke", interval=1)
    shown = json.loads(out.stdout)
    assert shown["result"] == {"got": {"n": 1}} and shown["coldStart"] is True, shown
    assert shown["report"].startswith("REPORT RequestId:"), shown
    environment = shown["environmentId"]

    got = lk("get", "functions", "-o", "json")
    assert got.returncode == 0, got.stderr
    [row] = [f for f in json.loads(got.stdout)["functions"] if f["name"] == "greeter"]
    assert row["ready"] == 1 and row["coldStarts"] == 1, row
    assert [e["id"] for e in row["environments"]] == [environment]

    described = lk("describe", "greeter")
    assert described.returncode == 0 and environment in described.stdout, described

    # The router learns a fresh pod listens from the pod itself, before the kubelet reports
    # the container Running; until then the API server refuses its log ("waiting to
    # start"), which the CLI prints in line (exit 0) instead of failing the command.
    def logged():
        out = lk("logs", "greeter", "--kubectl", str(release.kubectl_bin))
        assert out.returncode == 0, out.stderr
        return out if "hello from" in out.stdout else None

    logs = wait_for(logged, 60, "the environment's output in its pod's log", interval=1)
    lines = [line for line in logs.stdout.splitlines() if "hello from" in line]
    assert all(line.startswith(f"[pod/{environment}/") for line in lines), logs.stdout

    missing = lk("invoke", "nope")
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr
