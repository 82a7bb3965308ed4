"""A burst of 50 Functions with provisionedConcurrency 1, then deleting all 50 at once:
every Function becomes Ready from its own Ready pod, the router reports no start failure
for a pod that was still progressing, the kubelet reports no failed mount (the code
used to be a ConfigMap volume, which the Node authorizer's graph raced under this very
burst), and the delete removes every pod with no ERROR in the operator's log. The times
are printed; nothing here asserts a time.
"""

from __future__ import annotations

import time

import pytest

from lambdakube.resources import labels
from tests.e2e.cluster import RELEASE, Cluster, function_manifest, wait_for

N = 50


def _ready_functions(c: Cluster, ns: str) -> int:
    items = c.get("functions", namespace=ns)["items"]
    return sum(
        1
        for f in items
        if (f.get("status") or {}).get("provisioned") == 1
        and any(x["type"] == "Ready" and x["status"] == "True" for x in f["status"].get("conditions", []))
    )


@pytest.mark.timeout(600)
def test_fifty_provisioned_functions_come_up_and_go_cleanly(release: Cluster, ns: str):
    router_log_before = release.logs(f"deploy/{RELEASE}-lambdakube-router", tail=100000)
    names = [f"burst-{i:02d}" for i in range(N)]
    start = time.monotonic()
    release.apply(
        [
            function_manifest(n, f"def handler(e, c):\n    return {{'fn': '{n}'}}\n", provisionedConcurrency=1)
            for n in names
        ],
        ns,
    )
    wait_for(lambda: _ready_functions(release, ns) == N, 300, f"{N} Functions Ready", interval=0.5)
    print(f"\n[e2e] {N} Functions with provisionedConcurrency 1 Ready after {time.monotonic() - start:.1f} s")
    pods = release.pods(ns, role=labels.ROLE_PROVISIONED)
    assert sorted(p["metadata"]["labels"][labels.FUNCTION] for p in pods) == names

    events = release.get("events", namespace=ns)["items"]
    mounts = [e["message"] for e in events if e.get("reason") == "FailedMount"]
    assert not mounts, f"the kubelet could not mount volumes: {mounts[:3]}"
    new_log = release.logs(f"deploy/{RELEASE}-lambdakube-router", tail=100000)[len(router_log_before) :]
    failures = [line for line in new_log.splitlines() if "failed to start" in line and ns in line]
    assert not failures, f"start failures reported for pods that became Ready: {failures[:3]}"

    operator_log_before = release.logs(f"deploy/{RELEASE}-lambdakube-operator", tail=100000)
    start = time.monotonic()
    release.kubectl("delete", "functions", "--all", "-n", ns, "--wait=false")
    sel = labels.FUNCTION
    wait_for(
        lambda: (
            not release.get("functions", namespace=ns)["items"]
            and not release.get("pods", namespace=ns, selector=sel)["items"]
        ),
        300,
        f"{N} Functions and their pods gone",
        interval=0.5,
    )
    print(f"[e2e] {N} Functions deleted (pods gone) after {time.monotonic() - start:.1f} s")
    log = release.logs(f"deploy/{RELEASE}-lambdakube-operator", tail=100000)[len(operator_log_before) :]
    errors = [line for line in log.splitlines() if " ERROR " in line and ns in line]
    assert not errors, f"the operator logged errors while deleting: {errors[:3]}"
    # Each cleanup ran once: a kopf timer caught mid-pass by the delete used to hold the
    # finalizer for kopf's 60 s cancellation polling, then the cleanup ran again.
    cleanups = [line for line in log.splitlines() if "deleted the environments" in line and ns in line]
    twice = sorted(n for n in names if sum(line.rstrip().endswith(f"of {ns}/{n}") for line in cleanups) > 1)
    assert not twice, f"the cleanup handler ran more than once for {len(twice)} of {N}: {twice[:5]}"
    assert len(cleanups) == N
