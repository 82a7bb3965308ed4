"""Reconcile planning: named cases of (Function, observed pods, now) → plan and status.

Times are offsets from a fixed NOW; no test sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from lambdakube.models import FunctionSpec
from lambdakube_operator import conditions as C
from lambdakube_operator.planning import (
    DRAIN_DEADLINE,
    EXITED,
    NOT_READY,
    OUTDATED,
    SURPLUS,
    VERSION_DELETED,
    FunctionView,
    PodView,
    Timing,
    init_error_of,
    plan,
    status_patch,
)
from lambdakube.resources import labels, spec_hash

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
INLINE = {"inline": {"source": "def handler(event, context):\n    return event\n"}}
UID = "fn-uid"
TIMING = Timing(start_deadline=120, drain_grace=30, max_creates=50)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", "code": INLINE, **kw})


NEW = spec(provisionedConcurrency=2)
NODE5x2 = spec(provisionedConcurrency=5, perEnvironmentConcurrency=2, runtime="nodejs20.x")
OLD = spec(provisionedConcurrency=2, env={"V": "1"})
H, OLD_H = spec_hash(NEW), spec_hash(OLD)


def fn(s: FunctionSpec | None = NEW, status: dict | None = None, **kw) -> FunctionView:
    return FunctionView(
        name="hello",
        namespace="ns",
        uid=UID,
        generation=3,
        spec=s,
        spec_error=None if s else "spec: bad",
        status=status or {},
        **kw,
    )


def pod(
    name: str, *, age: float = 10, ready: bool = True, role: str = labels.ROLE_PROVISIONED, h: str | None = H, **kw
) -> PodView:
    kw.setdefault("phase", "Running" if ready else "Pending")
    kw.setdefault("owner_uid", UID)
    return PodView(
        name=name,
        created=ago(age),
        role=role,
        spec_hash=h,
        ready=ready,
        unready_since=None if ready else ago(age),
        **kw,
    )


def cond(p, type_: str) -> dict:
    c = C.find(p.status["conditions"], type_)
    assert c is not None
    return c


def deletes(p) -> dict[str, str]:
    return {d.name: d.reason for d in p.deletes}


# Each case: (function, pods, keyword overrides for plan(), expectations).
# Expectations: create, deletes {name: reason}, drain, stamp, adopt, initialize [(name,
# address)], status fields, conditions {type: (status, reason)}, events [reason, ...].
IMAGE = FunctionSpec.model_validate(
    {"handler": "app.handler", "image": "registry.local/fn:1", "provisionedConcurrency": 1}
)
NO_SECRET = 'CreateContainerConfigError: secret "db" not found'
CANNOT_START = {
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "CreateContainerConfigError",
            "message": 'environment pod a cannot start: secret "db" not found',
            "lastTransitionTime": "2026-01-01T11:00:00Z",
        }
    ],
    "specHash": H,
}
CASES = {
    # Status: a pod that cannot start its runtime container (a missing Secret).
    "a provisioned pod waiting on a missing Secret: Ready=False with the kubelet's reason": (
        fn(),
        [pod("a", ready=False, start_error=NO_SECRET), pod("b")],
        {},
        dict(
            create=0,
            deletes={},
            conditions={"Ready": ("False", "CreateContainerConfigError"), "InitFailed": ("False", "Initialized")},
            events=["CreateContainerConfigError"],
        ),
    ),
    "an on-demand pod waiting on a missing Secret counts too": (
        fn(spec()),
        [pod("d", role=labels.ROLE_ON_DEMAND, ready=False, start_error=NO_SECRET)],
        {},
        dict(conditions={"Ready": ("False", "CreateContainerConfigError")}),
    ),
    "the same reason again: no second event": (
        fn(status=CANNOT_START),
        [pod("a", ready=False, start_error=NO_SECRET), pod("b", ready=False)],
        {},
        dict(conditions={"Ready": ("False", "CreateContainerConfigError")}, events=[]),
    ),
    "the failing pod replaced at its deadline: the reason stays while the new one starts": (
        fn(status=CANNOT_START),
        [pod("a", ready=False, age=121, start_error=NO_SECRET), pod("b", ready=False, age=5)],
        {},
        dict(deletes={"a": NOT_READY}, create=1, conditions={"Ready": ("False", "CreateContainerConfigError")}),
    ),
    "the replacement not reported on yet: the reason stays": (
        fn(status=CANNOT_START),
        [pod("b", ready=False, age=1), pod("c", ready=False, age=1)],
        {},
        dict(conditions={"Ready": ("False", "CreateContainerConfigError")}, events=[]),
    ),
    "the Secret is back and a pod turned Ready: Ready is about provisioning again": (
        fn(status=CANNOT_START),
        [pod("b"), pod("c", ready=False)],
        {},
        dict(conditions={"Ready": ("False", "Provisioning")}, events=[]),
    ),
    "no pod left to start (no provisioned concurrency): the reason is not kept": (
        fn(spec(), status=CANNOT_START),
        [],
        {},
        dict(conditions={"Ready": ("True", "Ready")}),
    ),
    "a reason of an older spec is not kept": (
        fn(status={**CANNOT_START, "specHash": OLD_H}),
        [pod("b", ready=False), pod("c", ready=False)],
        {},
        dict(conditions={"Ready": ("False", "Provisioning")}),
    ),
    "a pod of an older spec that cannot start says nothing of the current one": (
        fn(),
        [pod("a"), pod("b"), replace(pod("o", ready=False, h=OLD_H), start_error=NO_SECRET)],
        {},
        dict(deletes={"o": OUTDATED}, conditions={"Ready": ("True", "Ready")}),
    ),
    # 5. Code through POST /init.
    "a listening provisioned pod without its code is sent it, with its own token": (
        fn(),
        [
            pod("a", ready=False, phase="Running", address="10.244.0.7:8080", token="tok-a"),
            pod("b", ready=False, phase="Pending"),
        ],
        {},
        dict(create=0, initialize=[("a", "10.244.0.7:8080", "tok-a")]),
    ),
    "a Ready pod has its code": (
        fn(),
        [pod("a", address="10.244.0.7:8080"), pod("b", address="10.244.0.8:8080")],
        {},
        dict(initialize=[]),
    ),
    "a pod that reported an Init error is not sent its code again": (
        fn(),
        [pod("a", ready=False, phase="Running", address="10.244.0.7:8080", init_error="boom"), pod("b")],
        {},
        dict(initialize=[]),
    ),
    "pods of an older spec, draining or on-demand pods are not the operator's to initialise": (
        fn(),
        [
            pod("a"),
            pod("b"),
            pod("old", ready=False, phase="Running", h=OLD_H, address="10.244.0.9:8080"),
            pod("drn", ready=False, phase="Running", draining=True, address="10.244.0.10:8080"),
            pod("od", ready=False, phase="Running", role=labels.ROLE_ON_DEMAND, address="10.244.0.11:8080"),
        ],
        {},
        dict(initialize=[]),
    ),
    "code in the image: the runtime initialises itself": (
        fn(IMAGE),
        [pod("a", ready=False, phase="Running", h=spec_hash(IMAGE), address="10.244.0.7:8080")],
        {},
        dict(create=0, initialize=[]),
    ),
    "a pod about to be deleted is not initialised": (
        fn(),
        [pod("a"), pod("b"), pod("c", ready=False, phase="Running", age=500, address="10.244.0.7:8080")],
        {},
        dict(deletes={"c": "not-ready"}, initialize=[]),
    ),
    "new function creates the provisioned pods": (
        fn(),
        [],
        {},
        dict(
            create=2,
            deletes={},
            status=dict(ready=0, starting=2, provisioned=0, specHash=H),
            conditions={"Ready": ("False", "Provisioning"), "Progressing": ("False", "UpToDate")},
        ),
    ),
    "no provisioned concurrency: nothing to do and Ready": (
        fn(spec()),
        [],
        {},
        dict(
            create=0,
            deletes={},
            status=dict(ready=0, starting=0, provisioned=0),
            conditions={"Ready": ("True", "Ready"), "QuotaExceeded": ("False", "NoReservation")},
        ),
    ),
    "all provisioned ready": (
        fn(),
        [pod("a"), pod("b")],
        {},
        dict(
            create=0,
            deletes={},
            status=dict(ready=2, starting=0, provisioned=2),
            conditions={"Ready": ("True", "Ready"), "InitFailed": ("False", "Initialized")},
        ),
    ),
    "one of two ready: still provisioning": (
        fn(),
        [pod("a"), pod("b", ready=False)],
        {},
        dict(
            create=0, status=dict(ready=1, starting=1, provisioned=1), conditions={"Ready": ("False", "Provisioning")}
        ),
    ),
    "scale up creates only the missing ones": (
        fn(spec(provisionedConcurrency=3)),
        [pod("a")],
        {},
        dict(create=2, status=dict(ready=1, starting=2, provisioned=1)),
    ),
    "perEnvironmentConcurrency: ceil(P / N) pods (5 invocations, 2 per environment: 3 pods)": (
        fn(NODE5x2),
        [pod("a", h=spec_hash(NODE5x2))],
        {},
        dict(
            create=2, status=dict(ready=1, starting=2, provisioned=1), conditions={"Ready": ("False", "Provisioning")}
        ),
    ),
    "perEnvironmentConcurrency: ceil(P / N) Ready pods are Ready, none is surplus": (
        fn(NODE5x2),
        [pod(n, h=spec_hash(NODE5x2)) for n in ("a", "b", "c")],
        {},
        dict(create=0, drain=[], conditions={"Ready": ("True", "Ready")}),
    ),
    "creations per pass are capped": (
        fn(spec(provisionedConcurrency=500)),
        [],
        {"timing": replace(TIMING, max_creates=50)},
        dict(create=50, status=dict(starting=50)),
    ),
    "scale down takes not-ready first (deleted), then the youngest (drained: the router may hold it)": (
        fn(spec(provisionedConcurrency=1, reservedConcurrency=5)),
        [pod("old", age=100), pod("young", age=5), pod("cold", age=50, ready=False)],
        {},
        dict(create=0, deletes={"cold": SURPLUS}, drain=["young"], status=dict(ready=1, provisioned=1)),
    ),
    "scale to zero drains every Ready provisioned pod": (
        fn(spec()),
        [pod("a"), pod("b")],
        {},
        dict(
            create=0,
            deletes={},
            drain=["a", "b"],
            status=dict(ready=0, provisioned=0),
            conditions={"Ready": ("True", "Ready")},
        ),
    ),
    "on-demand pods of the current spec are the router's": (
        fn(spec()),
        [pod("d1", role=labels.ROLE_ON_DEMAND), pod("d2", role=labels.ROLE_ON_DEMAND, ready=False)],
        {},
        dict(create=0, deletes={}, drain=[], status=dict(ready=1, starting=1, provisioned=0)),
    ),
    "an exited pod is deleted and replaced": (
        fn(),
        [pod("a"), replace(pod("dead", ready=False), phase="Failed")],
        {},
        dict(create=1, deletes={"dead": EXITED}, status=dict(ready=1, starting=1)),
    ),
    "a pod not ready within the start deadline is deleted": (
        fn(spec()),
        [
            pod("stuck", role=labels.ROLE_ON_DEMAND, ready=False, age=121),
            pod("booting", role=labels.ROLE_ON_DEMAND, ready=False, age=119),
        ],
        {},
        dict(deletes={"stuck": NOT_READY}, status=dict(starting=1)),
    ),
    "unready time counts from the Ready condition's transition": (
        fn(spec()),
        [replace(pod("flapped", role=labels.ROLE_ON_DEMAND, ready=False, age=1000), unready_since=ago(10))],
        {},
        dict(deletes={}),
    ),
    "rollout: new pods first, old ones keep serving": (
        fn(),
        [pod("o1", h=OLD_H, age=500), pod("o2", h=OLD_H, age=400)],
        {},
        dict(
            create=2,
            deletes={},
            drain=[],
            status=dict(ready=2, starting=2, provisioned=0),
            conditions={"Progressing": ("True", "RollingOut"), "Ready": ("False", "Provisioning")},
            events=["RolloutStarted"],
        ),
    ),
    "rollout: one new pod ready drains one old pod": (
        fn(
            status={
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "RollingOut",
                        "lastTransitionTime": "2026-01-01T11:00:00Z",
                    }
                ]
            }
        ),
        [pod("o1", h=OLD_H, age=500), pod("o2", h=OLD_H, age=400), pod("n1"), pod("n2", ready=False)],
        {},
        dict(
            create=0,
            deletes={},
            drain=["o2"],
            status=dict(ready=2, starting=1, provisioned=1),
            conditions={"Progressing": ("True", "RollingOut")},
            events=[],
        ),
    ),
    "rollout: all new ready drains every old pod": (
        fn(),
        [pod("o1", h=OLD_H), pod("o2", h=OLD_H), pod("n1"), pod("n2")],
        {},
        dict(
            create=0,
            drain=["o1", "o2"],
            status=dict(ready=2, provisioned=2),
            conditions={"Ready": ("True", "Ready"), "Progressing": ("True", "RollingOut")},
        ),
    ),
    "rollout: old not-ready provisioned pods are deleted outright": (
        fn(),
        [pod("o1", h=OLD_H, ready=False), pod("n1"), pod("n2")],
        {},
        dict(deletes={"o1": OUTDATED}, drain=[], conditions={"Progressing": ("False", "UpToDate")}),
    ),
    "rollout: old on-demand pods drain at once": (
        fn(spec()),
        [pod("d1", role=labels.ROLE_ON_DEMAND, h=OLD_H), pod("d2", role=labels.ROLE_ON_DEMAND, h=OLD_H, ready=False)],
        {},
        dict(deletes={}, drain=["d1", "d2"], status=dict(ready=0, starting=0)),
    ),
    "rollout finished when the last old pod is gone": (
        fn(
            status={
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "RollingOut",
                        "lastTransitionTime": "2026-01-01T11:00:00Z",
                    }
                ]
            }
        ),
        [pod("n1"), pod("n2")],
        {},
        dict(conditions={"Progressing": ("False", "UpToDate")}, events=["RolloutFinished"]),
    ),
    "draining pod without a timestamp gets one": (
        fn(),
        [pod("n1"), pod("n2"), pod("o1", h=OLD_H, draining=True)],
        {},
        dict(stamp=["o1"], deletes={}, drain=[], status=dict(ready=2)),
    ),
    "draining pod within timeout + grace is left to the router": (
        fn(),
        [pod("n1"), pod("n2"), pod("o1", h=OLD_H, draining=True, draining_since=ago(32), timeout_seconds=3)],
        {},
        dict(deletes={}, stamp=[]),
    ),
    "draining pod past timeout + grace is deleted": (
        fn(),
        [pod("n1"), pod("n2"), pod("o1", h=OLD_H, draining=True, draining_since=ago(34), timeout_seconds=3)],
        {},
        dict(deletes={"o1": DRAIN_DEADLINE}),
    ),
    "draining deadline falls back to the function timeout": (
        fn(spec(provisionedConcurrency=2, timeoutSeconds=600)),
        [pod("o1", h=OLD_H, draining=True, draining_since=ago(300))],
        {},
        dict(deletes={}),
    ),
    "an on-demand pod without owner is adopted": (
        fn(spec()),
        [pod("d1", role=labels.ROLE_ON_DEMAND, owner_uid=None)],
        {},
        dict(adopt=["d1"], deletes={}, status=dict(ready=1)),
    ),
    "pods of another Function UID are left to the GC": (
        fn(),
        [pod("x1", owner_uid="older-uid"), pod("x2", owner_uid="older-uid", phase="Failed")],
        {},
        dict(create=2, deletes={}, adopt=[], status=dict(ready=0, starting=2)),
    ),
    "terminating pods do not count": (
        fn(),
        [pod("a"), pod("gone", terminating=True)],
        {},
        dict(create=1, deletes={}, status=dict(ready=1, starting=1)),
    ),
    "invalid spec: no pod work, Ready False": (
        fn(None),
        [pod("a", h="whatever")],
        {},
        dict(
            create=0,
            deletes={},
            drain=[],
            status=dict(ready=1, specHash=None),
            conditions={"Ready": ("False", "InvalidSpec")},
        ),
    ),
    "reservation rejected: QuotaExceeded and not Ready": (
        fn(spec(reservedConcurrency=600)),
        [],
        {"quota_rejection": "reservedConcurrency 600 does not fit"},
        dict(
            conditions={"QuotaExceeded": ("True", "ReservationRejected"), "Ready": ("False", "QuotaExceeded")},
            events=["QuotaExceeded"],
        ),
    ),
    "reservation granted": (
        fn(spec(reservedConcurrency=5)),
        [],
        {},
        dict(conditions={"QuotaExceeded": ("False", "ReservationGranted"), "Ready": ("True", "Ready")}),
    ),
    "rejection lifted": (
        fn(
            spec(reservedConcurrency=5),
            status={
                "conditions": [
                    {
                        "type": "QuotaExceeded",
                        "status": "True",
                        "reason": "ReservationRejected",
                        "message": "x",
                        "lastTransitionTime": "2026-01-01T11:00:00Z",
                    }
                ]
            },
        ),
        [],
        {},
        dict(conditions={"QuotaExceeded": ("False", "ReservationGranted")}, events=["ReservationGranted"]),
    ),
    "init error reported by a pod": (
        fn(),
        [pod("a", ready=False, init_error="Runtime.ImportModuleError: no module 'index'")],
        {},
        dict(
            status=dict(initError="Runtime.ImportModuleError: no module 'index'"),
            conditions={"InitFailed": ("True", "InitError"), "Ready": ("False", "InitFailed")},
            events=["InitFailed"],
        ),
    ),
    "init error of an older spec is not this spec's": (
        fn(),
        [pod("n1"), pod("n2"), pod("o1", h=OLD_H, ready=False, init_error="boom")],
        {},
        dict(status=dict(initError=None), conditions={"InitFailed": ("False", "Initialized")}),
    ),
    "init error is sticky while the failed pod is replaced": (
        fn(
            status={
                "specHash": H,
                "initError": "boom",
                "conditions": [
                    {
                        "type": "InitFailed",
                        "status": "True",
                        "reason": "InitError",
                        "message": "boom",
                        "lastTransitionTime": "2026-01-01T11:00:00Z",
                    }
                ],
            }
        ),
        [pod("replacement", ready=False, age=1)],
        {},
        dict(status=dict(initError="boom"), conditions={"InitFailed": ("True", "InitError")}, events=[]),
    ),
    "init error clears once an environment initialises": (
        fn(
            status={
                "specHash": H,
                "initError": "boom",
                "conditions": [
                    {
                        "type": "InitFailed",
                        "status": "True",
                        "reason": "InitError",
                        "message": "boom",
                        "lastTransitionTime": "2026-01-01T11:00:00Z",
                    }
                ],
            }
        ),
        [pod("a"), pod("b")],
        {},
        dict(
            status=dict(initError=None), conditions={"InitFailed": ("False", "Initialized"), "Ready": ("True", "Ready")}
        ),
    ),
    "pods without a spec-hash label are left alone": (
        fn(spec()),
        [pod("r1", role=labels.ROLE_ON_DEMAND, h=None), pod("r2", role=labels.ROLE_PROVISIONED, h=None)],
        {},
        dict(
            create=0,
            deletes={},
            drain=[],
            status=dict(ready=2, provisioned=0),
            conditions={"Progressing": ("False", "UpToDate")},
        ),
    ),
    "init error of a pod without a spec-hash label counts": (
        fn(spec()),
        [pod("r1", role=labels.ROLE_ON_DEMAND, h=None, ready=False, init_error="boom")],
        {},
        dict(status=dict(initError="boom"), conditions={"InitFailed": ("True", "InitError")}),
    ),
    "init error clears with a new spec": (
        fn(status={"specHash": OLD_H, "initError": "boom"}),
        [],
        {},
        dict(create=2, status=dict(initError=None), conditions={"InitFailed": ("False", "NoInitError")}),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case):
    function, pods, kwargs, want = case
    p = plan(function, pods, now=NOW, **{"timing": TIMING, **kwargs})
    if "create" in want:
        assert p.create == want["create"]
    if "deletes" in want:
        assert deletes(p) == want["deletes"]
    for key in ("drain", "stamp", "adopt", "initialize"):
        if key in want:
            assert getattr(p, key) == want[key], key
    for key, value in want.get("status", {}).items():
        assert p.status[key] == value, key
    for type_, (status, reason) in want.get("conditions", {}).items():
        c = cond(p, type_)
        assert (c["status"], c["reason"]) == (status, reason), (type_, c)
    if "events" in want:
        assert [e.reason for e in p.events] == want["events"]


def test_a_pod_that_cannot_start_is_named_with_the_kubelets_message_and_no_value():
    p = plan(fn(), [pod("b", ready=False, start_error=NO_SECRET), pod("a")], now=NOW, timing=TIMING)
    ready = cond(p, "Ready")
    assert ready["message"] == 'environment pod b cannot start: secret "db" not found'
    assert [(e.type, e.reason, e.message) for e in p.events] == [
        ("Warning", "CreateContainerConfigError", ready["message"])
    ]
    image = plan(fn(), [pod("a", ready=False, start_error="ImagePullBackOff: Back-off pulling image")], now=NOW)
    assert (cond(image, "Ready")["reason"], cond(image, "Ready")["message"]) == (
        "ImagePullBackOff",
        "environment pod a cannot start: Back-off pulling image",
    )


def test_pod_view_reads_a_container_that_cannot_start():
    waiting = {"reason": "CreateContainerConfigError", "message": "couldn't find key password in Secret ns/db"}
    body = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"state": {"waiting": waiting}}]}}
    assert (
        PodView.from_pod(body).start_error == "CreateContainerConfigError: couldn't find key password in Secret ns/db"
    )
    body["status"]["containerStatuses"][0]["state"]["waiting"] = {"reason": "ContainerCreating"}
    assert PodView.from_pod(body).start_error is None


def test_status_never_carries_the_routers_fields():
    p = plan(fn(), [pod("a")], now=NOW, timing=TIMING)
    assert not {"busy", "idle", "coldStarts"} & set(p.status)
    assert p.status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in p.status["conditions"])


def test_transition_time_moves_only_when_the_status_flips():
    first = plan(fn(), [], now=NOW, timing=TIMING)
    later = NOW + timedelta(minutes=5)
    same = plan(fn(status=first.status), [pod("a", ready=False)], now=later, timing=TIMING)
    assert cond(same, "Ready")["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert cond(same, "Ready")["message"] == "0/2 provisioned environments ready"
    flipped = plan(fn(status=first.status), [pod("a"), pod("b")], now=later, timing=TIMING)
    assert cond(flipped, "Ready")["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert cond(flipped, "QuotaExceeded")["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_foreign_conditions_are_kept():
    other = {"type": "RouterSynced", "status": "True", "reason": "Synced", "lastTransitionTime": "x"}
    p = plan(fn(status={"conditions": [other]}), [], now=NOW, timing=TIMING)
    assert p.status["conditions"][-1] == other
    assert [c["type"] for c in p.status["conditions"][:4]] == ["Ready", "QuotaExceeded", "InitFailed", "Progressing"]


def test_same_warning_is_not_repeated_every_pass():
    first = plan(fn(spec(reservedConcurrency=9)), [], now=NOW, timing=TIMING, quota_rejection="no room")
    again = plan(
        fn(spec(reservedConcurrency=9), status=first.status), [], now=NOW, timing=TIMING, quota_rejection="no room"
    )
    assert [e.reason for e in first.events] == ["QuotaExceeded"]
    assert again.events == []


def test_status_patch_writes_only_changes_and_clears_with_null():
    p = plan(fn(), [pod("a"), pod("b")], now=NOW, timing=TIMING)
    assert status_patch(p.status, p.status) == {}
    current = {**p.status, "ready": 1, "initError": "old", "busy": 4, "coldStarts": 9}
    assert status_patch(current, p.status) == {"ready": 2, "initError": None}


@pytest.mark.parametrize(
    "pod_body, expected",
    [
        (
            {"metadata": {"annotations": {labels.INIT_ERROR: "Runtime.HandlerNotFound: x"}}},
            "Runtime.HandlerNotFound: x",
        ),
        ({"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": "boom\n"}}}]}}, "boom"),
        ({"status": {"containerStatuses": [{"lastState": {"terminated": {"exitCode": 2, "message": "bad"}}}]}}, "bad"),
        ({"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": "done"}}}]}}, None),
        ({"status": {"containerStatuses": [{"state": {"running": {}}}]}}, None),
    ],
    ids=["annotation", "terminated", "last-state", "clean-exit", "running"],
)
def test_init_error_channels(pod_body, expected):
    assert init_error_of(pod_body) == expected


def test_pod_view_from_a_real_pod_body():
    body = {
        "metadata": {
            "name": "hello-p1",
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "labels": {labels.ROLE: "provisioned", labels.SPEC_HASH: H, labels.DRAINING: "true"},
            "annotations": {labels.DRAINING_SINCE: "2026-01-01T11:59:00Z", labels.TIMEOUT_SECONDS: "7"},
            "ownerReferences": [{"apiVersion": "lambdakube.dev/v1alpha1", "kind": "Function", "uid": UID}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T11:30:00Z"}],
        },
    }
    v = PodView.from_pod(body)
    assert (v.name, v.role, v.spec_hash, v.ready, v.draining, v.owner_uid, v.timeout_seconds, v.address) == (
        "hello-p1",
        "provisioned",
        H,
        False,
        True,
        UID,
        7,
        "10.244.0.5:8080",
    )
    body["metadata"]["annotations"][labels.ADDRESS] = "127.0.0.1:4321"  # tests without a kubelet
    assert PodView.from_pod(body).address == "127.0.0.1:4321"
    assert v.unready_since == datetime(2026, 1, 1, 11, 30, tzinfo=timezone.utc)
    assert v.draining_since == datetime(2026, 1, 1, 11, 59, tzinfo=timezone.utc)


def test_function_view_reports_an_unparseable_spec():
    v = FunctionView.from_body({"metadata": {"name": "x", "uid": "u"}, "spec": {"handler": "index.h"}})
    assert v.spec is None and "image" in v.spec_error
    long = FunctionView.from_body({"metadata": {"name": "f" * 64}, "spec": {"handler": "a.b", "image": "i"}})
    assert long.spec is None and "63" in long.spec_error


# -- versions: each published version's pods are kept against its own spec -------------

#: Version 1 runs an older config than the head; version 2 was published from the
#: unchanged head, so its pods have $LATEST's hash: only their version label differs.
V1 = OLD.model_copy(update={"provisioned_concurrency": 2})
V2 = NEW.model_copy(update={"provisioned_concurrency": 1})
HEAD0 = spec(provisionedConcurrency=0)


def vpod(name: str, version: str, **kw) -> PodView:
    return pod(name, version=version, **kw)


def version_expect(p, want: dict) -> None:
    for number, expected in want.items():
        v = p.versions[number]
        for key, value in expected.items():
            assert getattr(v, key) == value, (number, key)


VERSION_CASES = {
    "a version's missing provisioned pods are created for it, not for $LATEST": (
        fn(HEAD0),
        [],
        {"1": V1},
        dict(create=0, versions={"1": dict(create=2, spec_hash=OLD_H, provisioned_ready=0)}),
    ),
    "a version's pods of another hash than the head's are not outdated for the head's rollout": (
        fn(HEAD0),
        [vpod("a", "1", h=OLD_H), vpod("b", "1", h=OLD_H)],
        {"1": V1},
        dict(
            create=0,
            drain=[],
            deletes={},
            versions={"1": dict(create=0, provisioned_ready=2)},
            conditions={"Progressing": ("False", "UpToDate")},
        ),
    ),
    "a version published from the unchanged head: same hash, kept apart by the label": (
        fn(),  # $LATEST keeps 2 of H, version 2 keeps 1 of H
        [pod("l1"), pod("l2"), vpod("v", "2")],
        {"2": V2},
        dict(create=0, drain=[], status=dict(provisioned=2), versions={"2": dict(create=0, provisioned_ready=1)}),
    ),
    "$LATEST's pods never count for a version of the same hash": (
        fn(HEAD0),
        [pod("l1")],
        {"2": V2},
        dict(create=0, versions={"2": dict(create=1, provisioned_ready=0)}),
    ),
    "a lowered version count drains its Ready surplus (youngest first)": (
        fn(HEAD0),
        [vpod("old", "1", h=OLD_H, age=100), vpod("young", "1", h=OLD_H, age=5), vpod("x", "1", h=OLD_H, age=50)],
        {"1": V1},
        dict(drain=["young"], deletes={}, versions={"1": dict(create=0, provisioned_ready=2)}),
    ),
    "a version without provisioned concurrency keeps its on-demand pods": (
        fn(HEAD0),
        [vpod("od", "1", h=OLD_H, role=labels.ROLE_ON_DEMAND)],
        {"1": OLD.model_copy(update={"provisioned_concurrency": 0})},
        dict(drain=[], deletes={}, versions={"1": dict(create=0)}),
    ),
    "a deleted version's pods drain (Ready) or go (not Ready)": (
        fn(HEAD0),
        [
            vpod("up", "3", h=OLD_H),
            vpod("od", "3", h=OLD_H, role=labels.ROLE_ON_DEMAND),
            vpod("down", "3", h=OLD_H, ready=False, age=5),
        ],
        {},
        dict(drain=["od", "up"], deletes={"down": VERSION_DELETED}, versions={}),
    ),
    "hygiene applies to version pods too": (
        fn(HEAD0),
        [vpod("dead", "1", h=OLD_H, phase="Failed"), vpod("stuck", "1", h=OLD_H, ready=False, age=500)],
        {"1": V1},
        dict(deletes={"dead": EXITED, "stuck": NOT_READY}, versions={"1": dict(create=2)}),
    ),
    "a version's pods waiting for their code are initialised with the version's spec": (
        fn(HEAD0),
        [vpod("w", "1", h=OLD_H, ready=False, age=1, phase="Running", address="10.0.0.9:8080", token="t")],
        {"1": V1},
        dict(versions={"1": dict(create=1, initialize=[("w", "10.0.0.9:8080", "t")])}),
    ),
    "an Init error of a version's pod is the version's failure, not the Function's": (
        fn(HEAD0),
        [vpod("bad", "1", h=OLD_H, ready=False, age=1, init_error="ZeroDivisionError")],
        {"1": V1},
        dict(
            versions={"1": dict(failure="ZeroDivisionError", provisioned_ready=0)},
            conditions={"InitFailed": ("False", "NoInitError"), "Ready": ("True", "Ready")},
        ),
    ),
    "creates share the per-pass cap across versions": (
        fn(spec(provisionedConcurrency=40)),
        [],
        {"1": OLD.model_copy(update={"provisioned_concurrency": 30})},
        dict(create=40, versions={"1": dict(create=10)}, status=dict(starting=50)),
    ),
}


@pytest.mark.parametrize("case", VERSION_CASES.values(), ids=VERSION_CASES.keys())
def test_plan_versions(case):
    function, pods, versions, want = case
    p = plan(function, pods, now=NOW, timing=TIMING, versions=versions)
    if "create" in want:
        assert p.create == want["create"]
    if "deletes" in want:
        assert deletes(p) == want["deletes"]
    for key in ("drain", "initialize"):
        if key in want:
            assert getattr(p, key) == want[key], key
    for key, value in want.get("status", {}).items():
        assert p.status[key] == value, key
    for type_, (status, reason) in want.get("conditions", {}).items():
        c = cond(p, type_)
        assert (c["status"], c["reason"]) == (status, reason), (type_, c)
    if "versions" in want:
        assert set(p.versions) == set(want["versions"])
        version_expect(p, want["versions"])
