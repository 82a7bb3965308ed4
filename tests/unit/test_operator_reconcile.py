"""The act phase and quota publishing against an in-memory fake of ``kube_api.Cruds``
(the real API server is exercised in tests/operator/)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from lambdakube_operator.handlers import Nudger
from lambdakube.quota import Reservation
from lambdakube_operator.reconcile import Reconciler
from lambdakube.resources import labels
from lambdakube_operator.settings import OperatorConfig

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class FakeCruds:
    def __init__(self, *, fail_creates: int = 0, quota: dict | None = None):
        self.pods: dict[str, dict] = {}
        self.quota = quota
        self.quota_patches: list[dict] = []
        self.fail_creates = fail_creates

    async def list_pods(self, ns, fn):
        return [p for p in self.pods.values() if p["metadata"]["labels"][labels.FUNCTION] == fn]

    async def create_pod(self, ns, body):
        if self.fail_creates:
            self.fail_creates -= 1
            raise RuntimeError("exceeded quota: compute-resources")
        body = {**body, "metadata": {**body["metadata"], "creationTimestamp": "2026-01-01T12:00:00Z"}}
        self.pods[body["metadata"]["name"]] = body
        return True

    async def delete_pod(self, ns, name):
        return self.pods.pop(name, None) is not None

    async def patch_pod(self, ns, name, patch):
        return name in self.pods

    async def get_quota(self, ns):
        return self.quota

    async def create_default_quota(self, ns):
        self.quota = {"metadata": {"name": "default", "generation": 1}, "spec": {}, "status": {}}
        return self.quota

    async def patch_quota_status(self, ns, status):
        self.quota_patches.append(status)
        return True


def function(**spec) -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {
            "name": "hello",
            "namespace": "ns",
            "uid": "u1",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"handler": "index.handler", "code": {"inline": {"source": "x = 1"}}, **spec},
    }


def reconciler(cruds) -> Reconciler:
    return Reconciler(OperatorConfig(namespaces=("ns",)), cruds, clock=lambda: NOW)


async def test_a_pass_creates_pods_then_is_idempotent():
    cruds = FakeCruds()
    r = reconciler(cruds)
    patch, _ = await r.reconcile(function(provisionedConcurrency=2), reservations=[], quota=None, trigger="t")
    assert len(cruds.pods) == 2
    assert patch["starting"] == 2
    assert cruds.quota is None  # no reservation asked for: no quota object to race the user's
    again, _ = await r.reconcile(
        {**function(provisionedConcurrency=2), "status": patch}, reservations=[], quota=cruds.quota, trigger="t"
    )
    assert len(cruds.pods) == 2 and again == {}


async def test_a_reservation_gets_the_namespace_its_default_quota_once():
    cruds = FakeCruds()
    r = reconciler(cruds)
    await r.quota.sync("ns", [Reservation("other", "t0", None)], None)
    assert cruds.quota is None
    alloc, _ = await r.quota.sync("ns", [Reservation("hello", "t1", 20)], None)
    assert cruds.quota is not None and cruds.quota["metadata"]["name"] == "default"
    assert alloc.granted == {"hello": 20}
    assert cruds.quota_patches[-1]["granted"] == {"hello": 20}


async def test_failed_creations_are_reported_not_counted():
    cruds = FakeCruds(fail_creates=1)
    patch, _ = await reconciler(cruds).reconcile(
        function(provisionedConcurrency=3), reservations=[], quota=None, trigger="t"
    )
    assert len(cruds.pods) == 2
    assert patch["starting"] == 2


async def test_a_deleting_function_is_not_reconciled():
    cruds = FakeCruds()
    body = function(provisionedConcurrency=2)
    body["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    patch, _ = await reconciler(cruds).reconcile(body, reservations=[], quota=None, trigger="t")
    assert patch == {} and cruds.pods == {}


async def test_quota_status_drops_functions_that_are_gone():
    quota = {
        "metadata": {"name": "default", "generation": 2},
        "spec": {"concurrentExecutions": 100, "minimumUnreserved": 10},
        "status": {"granted": {"gone": 5, "hello": 20}, "reserved": 25},
    }
    cruds = FakeCruds(quota=quota)
    r = reconciler(cruds)
    alloc, _ = await r.quota.sync("ns", [Reservation("hello", "t1", 20)], quota)
    assert alloc.granted == {"hello": 20}
    (patch,) = cruds.quota_patches
    assert patch["granted"] == {"hello": 20, "gone": None}  # merge-patch: null removes
    assert patch["reserved"] == 20 and patch["unreserved"] == 80
    assert patch["conditions"][0]["type"] == "ReservationsFit"


async def test_quota_reports_whose_verdict_changed():
    quota = {
        "metadata": {"name": "default"},
        "spec": {"concurrentExecutions": 100, "minimumUnreserved": 10},
        "status": {},
    }
    r = reconciler(FakeCruds(quota=quota))
    await r.quota.sync("ns", [Reservation("a", "t1", 50), Reservation("b", "t2", 40)], quota)
    _, changed = await r.quota.sync("ns", [Reservation("a", "t1", 60), Reservation("b", "t2", 40)], quota)
    assert changed == {"b"}


async def test_nudges_coalesce_into_one_more_pass():
    runs: list[tuple[str, str]] = []
    gate = asyncio.Event()

    reasons: list[str] = []

    async def run(ns, name, reason):
        runs.append((ns, name))
        reasons.append(reason)
        await gate.wait()

    n = Nudger(0, run)
    n.nudge("ns", "a", "create")
    await asyncio.sleep(0.01)  # first pass is running (blocked on the gate)
    for _ in range(10):
        n.nudge("ns", "a", "timer")
    n.nudge("ns", "b")
    gate.set()
    for _ in range(100):
        await asyncio.sleep(0.001)
    assert runs.count(("ns", "a")) == 2 and runs.count(("ns", "b")) == 1
    # Each pass is told the first reason asked for since the previous pass.
    assert sorted(reasons) == ["create", "pod-event", "timer"]
    await n.close()


async def test_a_pass_reads_its_transitions_from_the_status_the_last_pass_wrote(monkeypatch):
    """No memo: the queue writes each pass's patch before the next pass GETs the Function,
    so a transition event is posted once, and a pass over the unwritten status repeats it
    (the write failed: nothing recorded the transition yet)."""
    posted: list[str] = []
    monkeypatch.setattr("lambdakube_operator.function_events.post", lambda body, t, reason, msg: posted.append(reason))
    cruds = FakeCruds()
    r = reconciler(cruds)
    body = function(provisionedConcurrency=1)
    await r.reconcile(body, reservations=[], quota=None, trigger="t")
    (pod,) = cruds.pods.values()
    pod["metadata"]["annotations"][labels.INIT_ERROR] = "Runtime.HandlerNotFound: nope"
    first, _ = await r.reconcile(body, reservations=[], quota=cruds.quota, trigger="t")
    assert first["initError"] == "Runtime.HandlerNotFound: nope"
    assert posted.count("InitFailed") == 1
    written = {**body, "status": {**(body.get("status") or {}), **first}}
    again, _ = await r.reconcile(written, reservations=[], quota=cruds.quota, trigger="t")
    assert posted.count("InitFailed") == 1 and "initError" not in again
    await r.reconcile(body, reservations=[], quota=cruds.quota, trigger="t")
    assert posted.count("InitFailed") == 2
