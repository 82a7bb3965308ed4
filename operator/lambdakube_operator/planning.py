"""Reconcile planning (pure): a Function and the pods observed for it → what to do.

No API calls and no clock: ``now`` is an argument, so every rule is a named row in
``tests/unit/test_operator_planning.py``. ``reconcile.py`` observes, calls ``plan`` and
then carries the plan out; the status in the plan is computed on the *projected* state
(after the plan's deletions and creations), so a pass reports what it just did instead of
lagging one pass behind.

The rules, in the order they are applied:

1. Hygiene: pods whose process ended (phase Failed/Succeeded) are deleted; so are pods
   that have not been Ready for longer than the start deadline (never-ready cold starts,
   stuck image pulls, broken environments). Pods owned by another Function UID (an older
   Function of the same name) are left to the garbage collector; pods of ours that lack
   an owner reference are adopted.
2. Draining: pods labelled ``draining`` are the router's to finish and delete; the
   operator deletes them once ``draining-since`` + the pod's timeout + a grace period
   has passed (backstop for a router that died or missed one).
3. Provisioned count: exactly ``provisionedConcurrency`` non-draining provisioned pods of
   the current spec hash: create the missing ones; of the surplus (not-ready first, then
   the youngest), not-ready pods are deleted and Ready ones marked draining, as in a
   rollout. The router may hold a Ready one and be sending it a request: deleting it
   under the router left that request waiting on a vanished pod until its timeout (seen
   on a real node); draining lets the router finish and delete it.
4. Rollout (surge first): provisioned pods of an older hash keep serving until enough
   new ones are Ready - ``max(0, N - readyNew)`` of them stay, the rest are marked
   draining (not-ready old ones are simply deleted: the router never leases them).
   On-demand pods of an older hash are marked draining at once; the router finishes
   their request and deletes them. Pods without a spec-hash label cannot be classified
   and are left alone (never drained, never counted as provisioned).
5. Code: a provisioned pod of the current spec of an inline-code function, listening
   (it has an address) but not Ready and without an Init error, is sent its function
   (``POST /init``, see ``lambdakube.resources.code``). Listing it again while its Init
   runs is harmless: the executor sends each pod one ``/init``.

Versions: rules 3-5 apply per version, to the pods labelled with it (``$LATEST``: no
label) against that version's own spec (``plan(versions=...)``): a version's pods are
never outdated for ``$LATEST``'s rollout and never count as its provisioned ones, even
with the same hash (a version published from an unchanged head). Rules 1-2 apply to
all. The pods of a version that no longer exists are drained (Ready) or deleted. The
Function's status is ``$LATEST``'s, but for ``ready``/``starting`` (every environment).

Status: ``Ready`` is False with the kubelet's reason (``CreateContainerConfigError``,
``ImagePullBackOff``, ...) and message while a pod of the current spec cannot start its
runtime container (a Secret or ConfigMap it refers to is missing or lacks the key: the
kubelet names the object and key, never a value). Such a pod is replaced at the start
deadline like any never-ready pod, and the reason is kept while its replacement is still
starting, so the condition does not flap with each replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from lambdakube.models import LATEST, FunctionSpec

from . import conditions as C
from lambdakube.resources import labels, needs_init
from lambdakube.resources.podview import PodView, init_error_of
from lambdakube.resources.spec_hash import spec_hash

__all__ = [
    "PodView",
    "init_error_of",
    "plan",
    "plan_generic",
    "status_patch",
    "FunctionView",
    "Plan",
    "VersionPlan",
    "Timing",
    "Delete",
    "Event",
]

READY = "Ready"
#: ``Ready``'s reasons of a pod that cannot start (kept across replacements, see above).
CANNOT_START_REASONS = ("CreateContainerConfigError", "ErrImagePull", "ImagePullBackOff", "InvalidImageName")
QUOTA_EXCEEDED = "QuotaExceeded"
INIT_FAILED = "InitFailed"
PROGRESSING = "Progressing"
CONDITION_TYPES = (READY, QUOTA_EXCEEDED, INIT_FAILED, PROGRESSING)

#: Deletion reasons (also the ``reason`` label of the pods-deleted metric).
EXITED = "exited"
NOT_READY = "not-ready"
SURPLUS = "surplus"
OUTDATED = "outdated"
DRAIN_DEADLINE = "drain-deadline"
VERSION_DELETED = "version-deleted"

#: Operator-owned status fields. busy/idle/coldStarts are the router's: never written.
OWNED_STATUS_FIELDS = (
    "observedGeneration",
    "conditions",
    "ready",
    "starting",
    "provisioned",
    "specHash",
    "initError",
    # Written by the pass from ``versions.recorded_status`` (publishing), not by ``plan``.
    "latestVersion",
    "latestVersionSpecHash",
)


@dataclass(frozen=True)
class Timing:
    #: A pod not Ready for this long (since creation or since it turned unready) is deleted.
    start_deadline: float = 120.0
    #: Draining pods get their function timeout plus this much before the operator deletes them.
    drain_grace: float = 30.0
    #: At most this many pods are created in one pass (the rest in the next passes).
    max_creates: int = 50


@dataclass(frozen=True)
class FunctionView:
    name: str
    namespace: str
    uid: str
    generation: int | None
    spec: FunctionSpec | None
    #: Why ``spec`` is None (the object does not make a runnable function).
    spec_error: str | None = None
    status: Mapping = field(default_factory=dict)
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping) -> FunctionView:
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        spec, error = None, None
        try:
            spec = FunctionSpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
        if spec is not None and len(name) > 63:
            spec, error = None, f"function name {name!r} is longer than 63 characters (it labels pods)"
        return cls(
            name=name,
            namespace=meta.get("namespace", ""),
            uid=meta.get("uid", ""),
            generation=meta.get("generation"),
            spec=spec,
            spec_error=error,
            status=dict(body.get("status") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True)
class Delete:
    name: str
    reason: str
    role: str | None = None


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class VersionPlan:
    """What a pass does for one published version's environments (``Plan.versions``)."""

    #: The hash of the version's config: its pods' ``spec-hash`` label.
    spec_hash: str
    #: Provisioned pods of this version to create.
    create: int = 0
    #: Its provisioned pods waiting for their code (as ``Plan.initialize``).
    initialize: list[tuple[str, str, str]] = field(default_factory=list)
    #: Ready provisioned pods of the version after the plan: what it has allocated.
    provisioned_ready: int = 0
    #: Why its environments cannot start (the first Init error or kubelet reason of a
    #: pod of its spec), or None.
    failure: str | None = None


@dataclass
class Plan:
    spec_hash: str | None = None
    #: Provisioned pods of ``spec_hash`` ($LATEST) to create.
    create: int = 0
    deletes: list[Delete] = field(default_factory=list)
    #: Pods to label draining (with draining-since = now).
    drain: list[str] = field(default_factory=list)
    #: Draining pods without a draining-since annotation: stamp it (starts their deadline).
    stamp: list[str] = field(default_factory=list)
    #: Pods of ours without an owner reference.
    adopt: list[str] = field(default_factory=list)
    #: $LATEST's provisioned pods waiting for their code: (pod name, runtime address, its env token).
    initialize: list[tuple[str, str, str]] = field(default_factory=list)
    #: The published versions' own plans, by number ("1", "2", ...).
    versions: dict[str, VersionPlan] = field(default_factory=dict)
    #: The operator-owned status fields, complete (see ``status_patch``).
    status: dict = field(default_factory=dict)
    #: Condition-transition events; pod create/delete events come from the executor.
    events: list[Event] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (
            self.create
            or self.deletes
            or self.drain
            or self.stamp
            or self.adopt
            or self.initialize
            or any(v.create or v.initialize for v in self.versions.values())
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def plan(
    fn: FunctionView,
    pods: list[PodView],
    *,
    now: datetime,
    quota_rejection: str | None = None,
    timing: Timing = Timing(),
    versions: Mapping[str, FunctionSpec] | None = None,
) -> Plan:
    """What to do for ``fn`` given its observed ``pods`` (any role, any version).

    ``quota_rejection`` is the namespace allocation's verdict for the function (None:
    granted or no reservation). ``versions``: the function's published versions by
    number, each as the spec its environments run (``FunctionSpec.at_version``, with
    its provisioned count from ``provisioning.by_version``). Pods are grouped by their
    version label and each group gets rules 3-5 against its own spec; the pods of a
    version not in ``versions`` (deleted) are drained (Ready) or deleted (not Ready).
    """
    out = Plan()
    spec = fn.spec
    versions = dict(versions or {})
    ours = [p for p in pods if p.owner_uid in (None, fn.uid)]
    alive = [p for p in ours if not p.terminating]
    out.adopt = sorted(p.name for p in alive if p.owner_uid is None)
    deleted: dict[str, Delete] = {}

    def delete(p: PodView, reason: str) -> None:
        deleted.setdefault(p.name, Delete(p.name, reason, p.role))

    # 1. Hygiene.
    for p in alive:
        if p.phase in ("Failed", "Succeeded"):
            delete(p, EXITED)
    deadline = timedelta(seconds=timing.start_deadline)
    for p in alive:
        if p.name in deleted or p.draining or p.ready:
            continue
        if now - (p.unready_since or p.created) > deadline:
            delete(p, NOT_READY)

    # 2. Draining backstop.
    fallback_timeout = spec.timeout_seconds if spec else 900
    for p in alive:
        if p.name in deleted or not p.draining:
            continue
        if p.draining_since is None:
            out.stamp.append(p.name)
            continue
        allowed = timedelta(seconds=(p.timeout_seconds or fallback_timeout) + timing.drain_grace)
        if now - p.draining_since > allowed:
            delete(p, DRAIN_DEADLINE)

    current_hash = spec_hash(spec) if spec is not None else None
    out.spec_hash = current_hash
    remaining = [p for p in alive if p.name not in deleted]
    active = [p for p in remaining if not p.draining]

    # 3.-4. per version: $LATEST (the Function's spec), each published version (its own).
    budget = timing.max_creates
    hashes: dict[str, str | None] = {LATEST: current_hash}
    if spec is not None:
        out.create = _keep(spec, [p for p in active if p.version == LATEST], delete, out.drain, budget)
        budget -= out.create
    for number, vspec in sorted(versions.items(), key=lambda kv: int(kv[0])):
        vplan = out.versions[number] = VersionPlan(spec_hash(vspec))
        hashes[number] = vplan.spec_hash
        vplan.create = _keep(vspec, [p for p in active if p.version == number], delete, out.drain, budget)
        budget -= vplan.create
    for p in active:
        if p.version != LATEST and p.version not in versions:  # its version was deleted
            if p.ready:
                out.drain.append(p.name)
            else:
                delete(p, VERSION_DELETED)
    out.drain.sort()

    out.deletes = sorted(deleted.values(), key=lambda d: d.name)

    # Projected state after the plan.
    after = [p for p in alive if p.name not in deleted]
    draining_after = {p.name for p in after if p.draining} | set(out.drain)
    serving = [p for p in after if p.name not in draining_after]
    creates = out.create + sum(v.create for v in out.versions.values())
    ready = sum(1 for p in serving if p.ready)
    starting = sum(1 for p in serving if not p.ready) + creates
    latest_pods = [p for p in ours if p.version == LATEST]
    latest_serving = [p for p in serving if p.version == LATEST]
    provisioned_ready = _provisioned_ready(latest_serving, current_hash)
    outdated = [
        p
        for p in after
        if p.spec_hash is not None and hashes.get(p.version) is not None and p.spec_hash != hashes[p.version]
    ]

    # 5. Code for provisioned pods that listen and wait for it.
    if spec is not None and needs_init(spec):
        out.initialize = _waiting_for_code(latest_serving, current_hash)
    for number, vplan in out.versions.items():
        mine = [p for p in serving if p.version == number]
        vplan.provisioned_ready = _provisioned_ready(mine, vplan.spec_hash)
        if needs_init(versions[number]):
            vplan.initialize = _waiting_for_code(mine, vplan.spec_hash)
        vplan.failure = _failure([p for p in ours if p.version == number and not p.terminating], vplan.spec_hash)

    out.status, out.events = _status(
        fn,
        now=now,
        current_hash=current_hash,
        pods=latest_pods,
        serving=latest_serving,
        ready=ready,
        starting=starting,
        latest_starting=sum(1 for p in latest_serving if not p.ready) + out.create,
        provisioned_ready=provisioned_ready,
        outdated=len(outdated),
        quota_rejection=quota_rejection,
    )
    return out


def _keep(
    spec: FunctionSpec,
    group: list[PodView],
    delete: Callable[[PodView, str], None],
    drain: list[str],
    budget: int,
) -> int:
    """Rules 3 and 4 for one version's active pods: ``spec.provisioned_environments``
    (ceil(provisionedConcurrency / perEnvironmentConcurrency)) provisioned pods of its
    hash, surge-first rollout of older ones. Deletes and drains through the caller's
    collections; returns how many pods to create."""
    want = spec.provisioned_environments  # ceil(P / perEnvironmentConcurrency)
    current_hash = spec_hash(spec)
    current = [p for p in group if p.role == labels.ROLE_PROVISIONED and p.spec_hash == current_hash]
    # 3. Provisioned count: surplus goes not-ready first, then youngest first.
    if len(current) > want:
        by_expendability = sorted(current, key=lambda p: (p.ready, -p.created.timestamp(), p.name))
        surplus = by_expendability[: len(current) - want]
        for p in surplus:
            if not p.ready:
                delete(p, SURPLUS)
        drain.extend(p.name for p in surplus if p.ready)
        current = [p for p in current if p not in surplus]
    create = min(max(0, want - len(current)), max(0, budget))

    # 4. Rollout.
    ready_new = sum(1 for p in current if p.ready)
    keep_old = max(0, want - ready_new)
    old = [p for p in group if p.spec_hash is not None and p.spec_hash != current_hash]
    old_provisioned = [p for p in old if p.role == labels.ROLE_PROVISIONED]
    for p in old_provisioned:
        if not p.ready:
            delete(p, OUTDATED)
    old_ready = sorted((p for p in old_provisioned if p.ready), key=lambda p: (p.created, p.name))
    drain.extend(p.name for p in old_ready[keep_old:])
    drain.extend(p.name for p in old if p.role != labels.ROLE_PROVISIONED)
    return create


def _provisioned_ready(serving: list[PodView], current_hash: str | None) -> int:
    return sum(1 for p in serving if p.ready and p.role == labels.ROLE_PROVISIONED and p.spec_hash == current_hash)


def _waiting_for_code(serving: list[PodView], current_hash: str | None) -> list[tuple[str, str, str]]:
    return sorted(
        (p.name, p.address, p.token)
        for p in serving
        if p.role == labels.ROLE_PROVISIONED
        and p.spec_hash == current_hash
        and p.address
        and not p.ready
        and not p.init_error
        and p.phase == "Running"
    )


def _failure(pods: list[PodView], current_hash: str) -> str | None:
    """Why a version's environments cannot start, while none of its spec is Ready: the
    first (by pod name) Init error or kubelet reason of a pod of its spec."""
    mine = [p for p in pods if _maybe_current(p, current_hash)]
    if any(p.ready for p in mine):
        return None
    reasons = sorted((p.name, p.init_error or p.start_error) for p in mine if p.init_error or p.start_error)
    return reasons[0][1] if reasons else None


def _maybe_current(p: PodView, current_hash: str | None) -> bool:
    """Of the current spec - or of an unknown one (no hash label): given the benefit of
    the doubt for Init errors and readiness, never counted as provisioned, never drained."""
    return p.spec_hash is None or p.spec_hash == current_hash


def _status(
    fn: FunctionView,
    *,
    now: datetime,
    current_hash: str | None,
    pods: list[PodView],
    serving: list[PodView],
    ready: int,
    starting: int,
    latest_starting: int,
    provisioned_ready: int,
    outdated: int,
    quota_rejection: str | None,
) -> tuple[dict, list[Event]]:
    spec = fn.spec
    old = fn.status.get("conditions") or []
    events: list[Event] = []

    # InitFailed: reported by a pod of the current spec; sticky while no such pod is
    # Ready (failed pods are replaced, and the replacement has not failed *yet*).
    init_error = None
    if current_hash is not None:
        errors = sorted((p.name, p.init_error) for p in pods if _maybe_current(p, current_hash) and p.init_error)
        init_error = errors[0][1] if errors else None
        any_ready = any(p.ready and _maybe_current(p, current_hash) for p in serving)
        if init_error is None and not any_ready and fn.status.get("specHash") == current_hash:
            init_error = fn.status.get("initError")
    if init_error:
        init = C.Cond(INIT_FAILED, "True", "InitError", init_error)
    elif current_hash is not None and any(p.ready and _maybe_current(p, current_hash) for p in serving):
        init = C.Cond(INIT_FAILED, "False", "Initialized", "an environment of the current spec initialised")
    else:
        init = C.Cond(INIT_FAILED, "False", "NoInitError", "")

    if quota_rejection:
        quota = C.Cond(QUOTA_EXCEEDED, "True", "ReservationRejected", quota_rejection)
    elif spec is not None and spec.reserved_concurrency is not None:
        quota = C.Cond(
            QUOTA_EXCEEDED, "False", "ReservationGranted", f"reservedConcurrency {spec.reserved_concurrency} granted"
        )
    else:
        quota = C.Cond(QUOTA_EXCEEDED, "False", "NoReservation", "")

    if outdated:
        progressing = C.Cond(
            PROGRESSING,
            "True",
            "RollingOut",
            f"{_plural(outdated, 'environment')} of an older spec draining or being replaced",
        )
    else:
        progressing = C.Cond(
            PROGRESSING, "False", "UpToDate", f"all environments run spec {current_hash}" if current_hash else ""
        )

    cannot_start = _cannot_start(fn, current_hash, pods, old, starting=latest_starting)

    want = spec.provisioned_environments if spec is not None else 0
    if spec is None:
        ready_cond = C.Cond(READY, "False", "InvalidSpec", fn.spec_error or "invalid spec")
    elif quota_rejection:
        ready_cond = C.Cond(READY, "False", "QuotaExceeded", quota_rejection)
    elif init_error:
        ready_cond = C.Cond(READY, "False", "InitFailed", init_error)
    elif cannot_start is not None:
        ready_cond = C.Cond(READY, "False", *cannot_start)
    elif provisioned_ready < want:
        ready_cond = C.Cond(
            READY, "False", "Provisioning", f"{provisioned_ready}/{want} provisioned environments ready"
        )
    elif want:
        ready_cond = C.Cond(READY, "True", "Ready", f"{provisioned_ready}/{want} provisioned environments ready")
    else:
        ready_cond = C.Cond(READY, "True", "Ready", "no provisioned concurrency: environments start on demand")

    # Events on transitions (and on a changed message for the warnings).
    def flipped_to_true(cond: C.Cond) -> bool:
        before = C.find(old, cond.type)
        return cond.status == "True" and (
            before is None or before.get("status") != "True" or before.get("message") != cond.message
        )

    if flipped_to_true(init):
        events.append(Event("Warning", "InitFailed", init.message))
    before_ready = C.find(old, READY) or {}
    if cannot_start is not None and (before_ready.get("reason"), before_ready.get("message")) != cannot_start:
        events.append(Event("Warning", cannot_start[0], cannot_start[1]))
    if flipped_to_true(quota):
        events.append(Event("Warning", "QuotaExceeded", quota.message))
    elif C.is_true(old, QUOTA_EXCEEDED) and quota.status == "False":
        events.append(Event("Normal", "ReservationGranted", quota.message or "reservation removed"))
    if progressing.status == "True" and not C.is_true(old, PROGRESSING):
        events.append(Event("Normal", "RolloutStarted", f"rolling out spec {current_hash}: {progressing.message}"))
    elif progressing.status == "False" and C.is_true(old, PROGRESSING):
        events.append(Event("Normal", "RolloutFinished", f"all environments run spec {current_hash}"))

    status = {
        "observedGeneration": fn.generation,
        "conditions": C.merge(old, [ready_cond, quota, init, progressing], now=now, generation=fn.generation),
        "ready": ready,
        "starting": starting,
        "provisioned": provisioned_ready,
        "specHash": current_hash,
        "initError": init_error,
    }
    return status, events


def _cannot_start(
    fn: FunctionView, current_hash: str | None, pods: list[PodView], old: list[dict], *, starting: int
) -> tuple[str, str] | None:
    """(reason, message) of ``Ready`` when an environment of the current spec cannot
    start its runtime container, or None. The first such pod by name decides; without
    one, the previous condition's reason stays while no pod of the spec is Ready and one
    is still starting (``starting``, the plan's projection: a replacement the kubelet has
    not reported on yet, or one this pass creates)."""
    if current_hash is None:
        return None
    mine = [p for p in pods if _maybe_current(p, current_hash) and not p.terminating]
    failing = sorted((p.name, p.start_error) for p in mine if p.start_error)
    if failing:
        name, error = failing[0]
        reason, _, message = error.partition(": ")
        if reason not in CANNOT_START_REASONS:  # an unexpected shape: keep it whole
            reason, message = "CannotStart", error
        return reason, f"environment pod {name} cannot start: {message}"
    before = C.find(old, READY) or {}
    if (
        before.get("status") == "False"
        and before.get("reason") in CANNOT_START_REASONS
        and fn.status.get("specHash") == current_hash
        and starting
        and not any(p.ready for p in mine)
    ):
        return before["reason"], before.get("message") or ""
    return None


def status_patch(current: Mapping, desired: Mapping) -> dict:
    """The merge-patch for ``status`` that turns ``current`` into ``desired`` for the
    operator's fields only; ``{}`` when nothing changed (no write at all)."""
    patch: dict = {}
    for key in OWNED_STATUS_FIELDS:
        want = desired.get(key)
        have = current.get(key)
        if want is None:
            if have is not None:
                patch[key] = None
        elif want != have:
            patch[key] = want
    return patch


@dataclass
class GenericPlan:
    """What to do with a namespace's pool of generic pods (``plan_generic``)."""

    create: int = 0
    deletes: list[Delete] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (self.create or self.deletes)


def plan_generic(
    pods: list[PodView],
    *,
    want: int,
    image_hash: str,
    now: datetime,
    timing: Timing = Timing(),
) -> GenericPlan:
    """Keep ``want`` generic pods of the runtime image ``image_hash`` in a namespace.

    ``pods`` are the namespace's pods labelled ``role=generic`` (a router's claim
    relabels a pod ``on-demand``, so claimed pods are not here any more: the pool is
    refilled). Rules: exited pods, pods of another runtime image and pods not Ready for
    longer than the start deadline are deleted; then surplus pods are deleted (not-ready
    first, then youngest) or missing ones created (at most ``max_creates`` per pass).
    """
    out = GenericPlan()
    deleted: dict[str, Delete] = {}
    alive = [p for p in pods if not p.terminating]
    deadline = timedelta(seconds=timing.start_deadline)
    for p in alive:
        if p.phase in ("Failed", "Succeeded"):
            deleted[p.name] = Delete(p.name, EXITED, p.role)
        elif p.image_hash != image_hash:
            deleted[p.name] = Delete(p.name, OUTDATED, p.role)
        elif not p.ready and now - (p.unready_since or p.created) > deadline:
            deleted[p.name] = Delete(p.name, NOT_READY, p.role)
    keep = [p for p in alive if p.name not in deleted]
    if len(keep) > want:
        by_expendability = sorted(keep, key=lambda p: (p.ready, -p.created.timestamp(), p.name))
        for p in by_expendability[: len(keep) - want]:
            deleted[p.name] = Delete(p.name, SURPLUS, p.role)
    out.create = min(max(0, want - len(keep)), timing.max_creates)
    out.deletes = sorted(deleted.values(), key=lambda d: d.name)
    return out
