"""Deleting a Function removes its pods; a bad manifest is refused by
`kubectl apply` with the CEL rule's message."""

from __future__ import annotations

import time

from lambdakube.resources import labels
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for


def test_deleting_a_function_removes_its_pods(release: Cluster, ns: str):
    release.apply(function_manifest("gone", recording_handler(), provisionedConcurrency=2), ns)
    wait_for(lambda: len(release.pods(ns, "gone")) == 2, 120, "2 provisioned pods")
    assert release.invoke("gone", {}, ns).status == 200
    sel = f"{labels.FUNCTION}=gone"

    start = time.monotonic()
    release.kubectl("delete", "function", "gone", "-n", ns, "--wait=false")
    wait_for(
        lambda: (
            not release.get("pods", namespace=ns, selector=sel)["items"]
            and not release.kubectl("get", "function", "gone", "-n", ns, check=False).stdout
        ),
        60,
        "the Function and its pods to be gone",
    )
    print(f"\n[e2e] Function delete took {time.monotonic() - start:.1f} s")
    assert release.invoke("gone", {}, ns).status == 404


def test_a_bad_manifest_is_rejected_with_the_cel_message(release: Cluster, ns: str):
    import yaml  # noqa: PLC0415

    bad = function_manifest("bad", recording_handler(), provisionedConcurrency=3, reservedConcurrency=1)
    out = release.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0
    assert "provisionedConcurrency must not exceed reservedConcurrency" in out.stderr, out.stderr
    assert not release.kubectl("get", "function", "bad", "-n", ns, check=False).stdout
