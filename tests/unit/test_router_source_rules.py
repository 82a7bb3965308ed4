"""The Kubernetes source's rules, without a cluster: each watched object's event updates
only that object's parsed entry (``sources.ParsedObjects``), and says whether the
Snapshot changed, i.e. whether the router must apply a new one.

A row: the objects already seen (``before``, in order), one event (an object, or None
for its deletion), whether it changed the Snapshot, the error lines it logged, and the
Snapshot afterwards (functions with their timeout, quotas, published reservations).
"""

from __future__ import annotations

import copy

import pytest

from lambdakube_router.sources import ParsedObjects, quota_status_of
from lambdakube_router.snapshot import FUNCTION_KIND, QUOTA_KIND

NS = "team-a"
API = "lambdakube.dev/v1alpha1"
CODE = {"inline": {"source": "def handler(e, c):\n    return e\n"}}


def fn(
    name: str = "hello",
    *,
    ns: str | None = NS,
    uid: str = "uid-1",
    rv: str = "1",
    generation: int = 1,
    status: dict | None = None,
    labels: dict | None = None,
    api: str = API,
    **spec,
) -> tuple[str, dict]:
    meta: dict = {"name": name, "uid": uid, "resourceVersion": rv, "generation": generation}
    if ns is not None:
        meta["namespace"] = ns
    if labels:
        meta["labels"] = labels
    obj = {
        "apiVersion": api,
        "kind": FUNCTION_KIND,
        "metadata": meta,
        "spec": {"handler": "index.handler", "code": CODE, **spec},
    }
    if status is not None:
        obj["status"] = status
    return FUNCTION_KIND, obj


def cq(*, name: str = "default", ns: str = NS, rv: str = "1", status: dict | None = None, **spec) -> tuple[str, dict]:
    obj = {
        "apiVersion": API,
        "kind": QUOTA_KIND,
        "metadata": {"name": name, "namespace": ns, "uid": "cq-uid", "resourceVersion": rv},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return QUOTA_KIND, obj


def gone(event: tuple[str, dict]) -> tuple[str, dict, None]:
    """The deletion of ``event``'s object."""
    return event[0], event[1], None


def decision(**granted: int) -> dict:
    return {"reserved": sum(granted.values()), "unreserved": 10 - sum(granted.values()), "granted": granted}


def summary(objects: ParsedObjects) -> dict:
    snap = objects.snapshot()
    assert snap.quota_status is not None  # the operator decides, whatever it published
    return {
        "functions": {k: e.spec.timeout_seconds for k, e in snap.functions.items()},
        "quotas": {ns: q.concurrent_executions for ns, q in snap.quotas.items()},
        "granted": {ns: s.granted for ns, s in snap.quota_status.items()},
    }


def want(functions: dict | None = None, quotas: dict | None = None, granted: dict | None = None) -> dict:
    return {"functions": functions or {}, "quotas": quotas or {}, "granted": granted or {}}


HELLO = {(NS, "hello"): 3}
BAD_SPEC = {"timeoutSeconds": 0}  # below the model's minimum (a CRD/model drift)

CASES = [
    # (case, before, event, changed, error substrings, snapshot after)
    ("a new Function is added", [], fn(), True, [], want(HELLO)),
    (
        "a status-only change is no change (the router's own status writes)",
        [fn()],
        fn(rv="2", status={"busy": 3, "coldStarts": 7}),
        False,
        [],
        want(HELLO),
    ),
    ("a label or annotation change is no change", [fn()], fn(rv="2", labels={"team": "x"}), False, [], want(HELLO)),
    ("a relist replaying the same object is no change", [fn()], fn(), False, [], want(HELLO)),
    (
        "a spec change is applied",
        [fn()],
        fn(rv="2", generation=2, timeoutSeconds=9),
        True,
        [],
        want({(NS, "hello"): 9}),
    ),
    (
        "a spec change that parses the same (a default made explicit) is no change",
        [fn()],
        fn(rv="2", generation=2, timeoutSeconds=3),
        False,
        [],
        want(HELLO),
    ),
    (
        "a recreated Function (new uid) is a change: owner references follow the uid",
        [fn()],
        fn(uid="uid-2", rv="5"),
        True,
        [],
        want(HELLO),
    ),
    (
        "without a namespace, the default (first watched) namespace",
        [],
        fn(ns=None),
        True,
        [],
        want({("default", "hello"): 3}),
    ),
    (
        "an invalid new object is skipped with an error",
        [],
        fn(**BAD_SPEC),
        False,
        ["skipping invalid object: kubernetes: Function 'hello': spec.timeoutSeconds"],
        want(),
    ),
    (
        "a wrong apiVersion is skipped with an error",
        [],
        fn(api="lambdakube.dev/v0"),
        False,
        ["apiVersion must be"],
        want(),
    ),
    (
        "a valid Function turning invalid is dropped (as if invalid from the start)",
        [fn()],
        fn(rv="2", generation=2, **BAD_SPEC),
        True,
        ["skipping invalid object"],
        want(),
    ),
    (
        "the same invalid object again (a status write) is not logged again",
        [fn(**BAD_SPEC)],
        fn(rv="2", status={"busy": 1}, **BAD_SPEC),
        False,
        [],
        want(),
    ),
    ("an invalid Function fixed is added", [fn(**BAD_SPEC)], fn(rv="2", generation=2), True, [], want(HELLO)),
    ("a deleted Function is removed", [fn(), fn("other")], gone(fn()), True, [], want({(NS, "other"): 3})),
    ("deleting an invalid object is no change", [fn(**BAD_SPEC)], gone(fn()), False, [], want()),
    ("deleting an unknown object is no change", [], gone(fn()), False, [], want()),
    ("a new quota is added", [], cq(concurrentExecutions=10, minimumUnreserved=2), True, [], want(quotas={NS: 10})),
    (
        "a quota spec change is applied",
        [cq(concurrentExecutions=10, minimumUnreserved=2)],
        cq(rv="2", concurrentExecutions=20, minimumUnreserved=2),
        True,
        [],
        want(quotas={NS: 20}),
    ),
    ("a quota without status has no decision (reservations pending)", [], cq(), True, [], want(quotas={NS: 1000})),
    (
        "the operator's first decision is a change",
        [cq()],
        cq(rv="2", status=decision(hello=1)),
        True,
        [],
        want(quotas={NS: 1000}, granted={NS: {"hello": 1}}),
    ),
    (
        "a changed decision is a change: quota status matters",
        [cq(status=decision(hello=1))],
        cq(rv="2", status=decision(hello=2)),
        True,
        [],
        want(quotas={NS: 1000}, granted={NS: {"hello": 2}}),
    ),
    (
        "an unreadable first decision: logged, reservations stay pending",
        [cq()],
        cq(rv="2", status={"reserved": -1}),
        False,
        ["unreadable status, reservations stay pending"],
        want(quotas={NS: 1000}),
    ),
    (
        "a decision turning unreadable is withdrawn",
        [cq(status=decision(hello=1))],
        cq(rv="2", status={"granted": "all"}),
        True,
        ["unreadable status"],
        want(quotas={NS: 1000}),
    ),
    (
        "a quota not named default is skipped, its status too",
        [],
        cq(name="extra", status=decision(hello=1)),
        False,
        ["must be named 'default'"],
        want(),
    ),
    (
        "an invalid quota spec is skipped but its decision still counts (as the operator's)",
        [],
        cq(concurrentExecutions=-1, status=decision(hello=1)),
        True,
        ["skipping invalid object"],
        want(granted={NS: {"hello": 1}}),
    ),
    (
        "a deleted quota takes its decision along",
        [cq(status=decision(hello=1)), fn()],
        gone(cq()),
        True,
        [],
        want(HELLO),
    ),
]


@pytest.mark.parametrize("case,before,event,changed,errors,after", CASES, ids=[c[0] for c in CASES])
def test_an_event_updates_only_its_object(case, before, event, changed, errors, after):
    objects = ParsedObjects("default" if event[1]["metadata"].get("namespace") is None else NS)
    for kind, obj in before:
        objects.update(kind, key(obj), copy.deepcopy(obj))
    kind, obj, *deleted = event
    change = objects.update(kind, key(obj), None if deleted else copy.deepcopy(obj))
    assert change.changed is changed
    assert len(change.errors) == len(errors), change.errors
    for line, wanted in zip(change.errors, errors):
        assert wanted in line, (line, wanted)
    assert summary(objects) == after


def key(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def test_an_empty_registry_still_has_a_decision_map():
    """The Kubernetes source always says the operator decides (a map, maybe empty), so
    the router never allocates reservations itself there."""
    assert ParsedObjects("default").snapshot().quota_status == {}


STATUS = [
    # (case, object, readable decision?, error?)
    ("no status yet", cq()[1], False, False),
    ("an empty status", cq(status={})[1], False, False),
    ("a decision", cq(status=decision(a=1))[1], True, False),
    ("an unreadable decision", cq(status={"reserved": "many"})[1], False, True),
    ("not the namespace's quota", cq(name="other", status=decision(a=1))[1], False, False),
]


@pytest.mark.parametrize("case,obj,readable,error", STATUS, ids=[c[0] for c in STATUS])
def test_quota_status_of(case, obj, readable, error):
    status, why = quota_status_of(obj)
    assert (status is not None, why is not None) == (readable, error)
