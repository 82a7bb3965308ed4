"""A code change rolls out: new pods serve, old ones drain and go, and once the new pods
are Ready no request answers with the old code."""

from __future__ import annotations

import threading
import time

import pytest

from lambdakube.resources import labels
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for


@pytest.mark.timeout(600)
def test_changed_code_rolls_out_without_old_answers(release: Cluster, ns: str):
    release.apply(function_manifest("roll", recording_handler("v1"), provisionedConcurrency=2), ns)
    old = wait_for(
        lambda: len(p := release.pods(ns, "roll", labels.ROLE_PROVISIONED)) == 2 and all(_ready(x) for x in p) and p,
        120,
        "2 provisioned v1 pods Ready",
    )
    old_names = {p["metadata"]["name"] for p in old}
    old_hash = old[0]["metadata"]["labels"][labels.SPEC_HASH]
    assert release.invoke("roll", {}, ns).json()["version"] == "v1"

    answers: list[tuple[float, int, str | None]] = []  # (sent at, status, version)
    stop = threading.Event()

    def caller():
        deadline = time.monotonic() + 180
        while not stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            r = release.invoke("roll", {}, ns, timeout=30)
            answers.append((sent, r.status, r.json().get("version") if r.status == 200 else None))

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        release.apply(function_manifest("roll", recording_handler("v2"), provisionedConcurrency=2), ns)

        def new_ready():
            pods = release.pods(ns, "roll", labels.ROLE_PROVISIONED)
            new = [p for p in pods if p["metadata"]["labels"][labels.SPEC_HASH] != old_hash and _ready(p)]
            return len(new) == 2

        wait_for(new_ready, 120, "2 provisioned v2 pods Ready")
        ready_at = time.monotonic()
        wait_for(
            lambda: not old_names & {p["metadata"]["name"] for p in release.pods(ns, "roll", live_only=False)},
            120,
            "the old pods to drain and be deleted",
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    after = [a for a in answers if a[0] > ready_at]
    assert after, "requests were sent after the new pods were Ready"
    assert {s for _, s, _ in answers} == {200}, [a for a in answers if a[1] != 200]
    assert {v for _, _, v in after} == {"v2"}, "an old-code answer after the new pods were Ready"
    assert "v1" in {v for _, _, v in answers if v}


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
