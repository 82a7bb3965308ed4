"""The generic pool's planning (pure): a namespace's ``role=generic`` pods → what to
create and delete. One named row per rule; ``now`` is fixed, nothing sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lambdakube.resources import generic_pod, labels, runtime_image_hash
from lambdakube_operator.planning import (
    EXITED,
    NOT_READY,
    OUTDATED,
    SURPLUS,
    PodView,
    Timing,
    plan_generic,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
IMAGE = "lambdakube/runtime-python:test"
HASH = runtime_image_hash(IMAGE)
TIMING = Timing(start_deadline=60, max_creates=3)


def gp(
    name: str,
    *,
    age: float = 10,
    ready: bool = True,
    image_hash: str = HASH,
    phase: str = "Running",
    terminating: bool = False,
) -> PodView:
    created = NOW - timedelta(seconds=age)
    return PodView(
        name=name,
        created=created,
        role=labels.ROLE_GENERIC,
        ready=ready,
        unready_since=None if ready else created,
        phase=phase,
        terminating=terminating,
        owner_uid=None,
        image_hash=image_hash,
    )


CASES = [
    # (name, pods, want, creates, {deleted: reason})
    ("empty pool is filled", [], 2, 2, {}),
    ("disabled pool creates nothing", [], 0, 0, {}),
    ("full pool is left alone", [gp("a"), gp("b")], 2, 0, {}),
    ("starting pods count (no double creates)", [gp("a", ready=False)], 2, 1, {}),
    ("creates are capped per pass", [], 10, 3, {}),
    ("exited pods are replaced", [gp("a", phase="Failed"), gp("b")], 2, 1, {"a": EXITED}),
    ("another runtime image is replaced", [gp("a", image_hash="0000000000"), gp("b")], 2, 1, {"a": OUTDATED}),
    ("pods never Ready are replaced after the deadline", [gp("a", ready=False, age=61)], 1, 1, {"a": NOT_READY}),
    ("terminating pods are ignored", [gp("a", terminating=True)], 1, 1, {}),
    (
        "surplus goes not-ready first, then youngest",
        [gp("old", age=30), gp("young", age=5), gp("unready", ready=False, age=40)],
        1,
        0,
        {"unready": SURPLUS, "young": SURPLUS},
    ),
    ("pool size lowered to zero", [gp("a"), gp("b")], 0, 0, {"a": SURPLUS, "b": SURPLUS}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plan_generic(case):
    _, pods, want, creates, deleted = case
    p = plan_generic(pods, want=want, image_hash=HASH, now=NOW, timing=TIMING)
    assert p.create == creates
    assert {d.name: d.reason for d in p.deletes} == deleted
    assert p.idle == (not creates and not deleted)


def test_pod_view_reads_the_builders_generic_pod():
    body = generic_pod(namespace="ns", env_id="lk-generic-g00000000", runtime_image=IMAGE)
    body["metadata"]["creationTimestamp"] = "2026-01-01T11:59:00Z"
    view = PodView.from_pod(body)
    assert (view.role, view.image_hash, view.owner_uid, view.ready) == (labels.ROLE_GENERIC, HASH, None, False)
    assert plan_generic([view], want=1, image_hash=HASH, now=NOW, timing=TIMING).idle
