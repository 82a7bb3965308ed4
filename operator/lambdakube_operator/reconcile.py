"""Reconcile phases: observe → plan (pure, ``planning``) → act (``kube_api``) → status.

A pass never writes the Function's own object: it returns the status merge-patch, and
the operator's one work queue (``handlers.Nudger``) writes it before the Function's next
pass starts. So each pass reads (``kube_api.get_function``) the status the previous one
wrote, and computes its transitions (events, sticky Init errors) from that, not from a
memo of its own.

The queue already runs one pass per Function at a time; the per-Function lock is for
the one caller outside it, the delete handler's ``cleanup``: a pass that read the
Function just before its deletion began must not recreate the pods the cleanup deletes.
Pods are listed straight from the API server (not from a cache) for the same reason: a
pass must see what the previous pass created.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from lambdakube.models import LATEST, ConcurrencyQuotaSpec, FunctionSpec

from . import conditions as C
from . import function_events as events
from . import metrics
from .kube_api import Cruds
from .initializer import Initializer
from .planning import FunctionView, Plan, PodView, plan, plan_generic, status_patch
from lambdakube.quota import Allocation, Reservation, allocate
from lambdakube.resources import (
    environment_pod,
    generic_pod,
    labels,
    new_env_id,
    owner_reference,
    runtime_image_hash,
)
from lambdakube.resources.pods import GENERIC_NAME_PREFIX
from lambdakube.resources.podview import is_terminating
from .settings import OperatorConfig
from .versions import (
    Publish,
    Published,
    provisioned_statuses,
    recorded_status,
    to_publish,
    version_body,
    version_specs,
)
from .versions import status_patch as published_status_patch

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _version_of(pod: Mapping) -> str:
    return pod["metadata"]["labels"].get(labels.VERSION, LATEST)


class QuotaKeeper:
    """Per-namespace reservation allocation, published in ``ConcurrencyQuota/default``'s status."""

    def __init__(self, config: OperatorConfig, cruds: Cruds, clock: Clock = utcnow) -> None:
        self.config = config
        self.cruds = cruds
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, Allocation] = {}

    def last(self, namespace: str) -> Allocation | None:
        return self._last.get(namespace)

    async def sync(
        self,
        namespace: str,
        reservations: Iterable[Reservation],
        quota: Mapping | None,
    ) -> tuple[Allocation, set[str]]:
        """Allocate the namespace's reservations and publish the result.

        ``quota`` is the ConcurrencyQuota as last seen (an index entry, may lag; None:
        read it). Returns the allocation and the names whose verdict changed since the
        previous allocation of this namespace.

        ``default`` is created (with the default limits) only when a Function asks for a
        reservation, because only then is there a decision to publish. Creating it for
        every namespace with a Function raced the user's own: ``kubectl apply -f
        examples/`` failed with AlreadyExists on a real node when the operator's quota
        appeared between kubectl's read and its create.
        """
        reservations = list(reservations)
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            if quota is None:
                quota = await self.cruds.get_quota(namespace)
            wants_reservation = any(r.reserved is not None for r in reservations)
            if quota is None and wants_reservation and self.config.create_default_quota:
                try:
                    quota = await self.cruds.create_default_quota(namespace)
                    if quota is None:  # created concurrently by someone else
                        quota = await self.cruds.get_quota(namespace)
                    else:
                        log.info("created ConcurrencyQuota %s/default with default limits", namespace)
                except Exception as exc:  # noqa: BLE001 - e.g. a terminating namespace, RBAC
                    log.warning("cannot create ConcurrencyQuota %s/default (%s); using defaults", namespace, exc)
            try:
                spec = ConcurrencyQuotaSpec.model_validate(dict((quota or {}).get("spec") or {}))
            except ValidationError:
                log.warning("ConcurrencyQuota %s/default has an invalid spec; using defaults", namespace)
                spec = ConcurrencyQuotaSpec()
            alloc = allocate(spec.concurrent_executions, spec.minimum_unreserved, reservations)
            if quota is not None:
                await self._publish(namespace, quota, alloc)
            metrics.QUOTA_REJECTIONS.labels(namespace).set(len(alloc.rejected))
            before = self._last.get(namespace)
            self._last[namespace] = alloc
            changed = set()
            if before is not None:
                names = set(before.granted) | set(alloc.granted)
                changed = {n for n in names if before.verdict(n) != alloc.verdict(n)}
            return alloc, changed

    async def _publish(self, namespace: str, quota: Mapping, alloc: Allocation) -> None:
        current = dict(quota.get("status") or {})
        generation = (quota.get("metadata") or {}).get("generation")
        if alloc.rejected:
            cond = C.Cond(
                "ReservationsFit", "False", "Rejected", "; ".join(f"{n}: {alloc.messages[n]}" for n in alloc.rejected)
            )
        else:
            cond = C.Cond(
                "ReservationsFit", "True", "AllGranted", f"{alloc.reserved} reserved, {alloc.unreserved} unreserved"
            )
        desired: dict[str, Any] = {
            "observedGeneration": generation,
            "reserved": alloc.reserved,
            "unreserved": alloc.unreserved,
            "granted": dict(alloc.granted),
            "rejected": list(alloc.rejected),
            "rejectedReasons": {n: alloc.messages[n] for n in alloc.rejected},
            "conditions": C.merge(current.get("conditions"), [cond], now=self.clock(), generation=generation),
        }
        patch: dict[str, Any] = {k: v for k, v in desired.items() if current.get(k) != v}
        for field_name in ("granted", "rejectedReasons"):
            if field_name in patch:
                # Merge-patch merges maps: names no longer in it must be nulled explicitly.
                for gone in set(current.get(field_name) or {}) - set(desired[field_name]):
                    patch[field_name][gone] = None
        if patch:
            await self.cruds.patch_quota_status(namespace, patch)


class Reconciler:
    def __init__(self, config: OperatorConfig, cruds: Cruds, clock: Clock = utcnow) -> None:
        self.config = config
        self.cruds = cruds
        self.clock = clock
        self.quota = QuotaKeeper(config, cruds, clock)
        self.initializer = Initializer(cruds.patch_pod)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: UIDs of Functions whose deletion began: a queued pass must not recreate pods.
        self._deleted: set[str] = set()

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    # -- the pass ------------------------------------------------------------------------

    async def reconcile(
        self,
        body: Mapping,
        *,
        reservations: Iterable[Reservation],
        quota: Mapping | None,
        trigger: str,
        versions: Iterable[Mapping] = (),
        aliases: Iterable[Mapping] = (),
    ) -> tuple[dict, set[str]]:
        """One pass for the Function ``body``. Returns the status merge-patch (``{}``:
        unchanged) and the names of other Functions whose quota verdict changed.

        ``versions``/``aliases``: the function's FunctionVersions and FunctionAliases
        (the operator's indices): their pods are kept in the same plan, and their
        status is written here."""
        fn = FunctionView.from_body(body)
        published_versions = [Published.version(v) for v in versions]
        published_aliases = [Published.alias(a) for a in aliases]
        if fn.deleting or fn.uid in self._deleted:
            return {}, set()
        started = time.perf_counter()
        metrics.RECONCILES.labels(trigger).inc()
        try:
            async with self.lock(fn.namespace, fn.name):
                if fn.uid in self._deleted:
                    return {}, set()
                alloc, changed = await self.quota.sync(fn.namespace, reservations, quota)
                if len(fn.name) <= 63:
                    pods = await self.cruds.list_pods(fn.namespace, fn.name)
                else:  # not a valid label value: it can have no pods (reported as InvalidSpec)
                    pods = []
                now = self.clock()
                published = await self._publish(body, fn, published_versions) if fn.spec is not None else None
                vspecs = version_specs(fn.spec, published_versions, published_aliases) if fn.spec is not None else {}
                the_plan = plan(
                    fn,
                    [PodView.from_pod(p) for p in pods],
                    now=now,
                    quota_rejection=alloc.verdict(fn.name),
                    timing=self.config.timing,
                    versions=vspecs,
                )
                failed_creates = await self._act(body, fn, the_plan, now, vspecs)
                present = {str((p.get("metadata") or {}).get("name")) for p in pods}
                if fn.spec is not None:
                    self.initializer.sync(fn.namespace, fn.name, fn.spec, the_plan.initialize, present)
                for number, vplan in the_plan.versions.items():
                    self.initializer.sync(fn.namespace, fn.name, vspecs[number], vplan.initialize, present, number)
                await self._write_published_status(fn, the_plan, published_versions, published_aliases, now)
                status = dict(the_plan.status)
                status["starting"] = max(0, status["starting"] - failed_creates)
                status.update(recorded_status(fn.status, published_versions, fn.spec, published))
                for ev in the_plan.events:
                    events.post(body, ev.type, ev.reason, ev.message)
                metrics.observe_conditions(fn.namespace, fn.name, status["conditions"])
                changed.discard(fn.name)
                return status_patch(fn.status, status), changed
        except Exception:
            metrics.RECONCILE_ERRORS.labels(trigger).inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _publish(self, body: Mapping, fn: FunctionView, versions: list[Published]) -> Publish | None:
        """Create the version ``versions.to_publish`` asks for; the ``Publish`` when it
        exists now (created, or already there: a conflict), None when there is nothing
        to publish or the create failed (the next pass tries again)."""
        assert fn.spec is not None
        publish = to_publish(fn.name, fn.spec, fn.status, versions)
        if publish is None:
            return None
        version = version_body(
            namespace=fn.namespace, function=fn.name, function_uid=fn.uid, spec=fn.spec, publish=publish
        )
        try:
            created = await self.cruds.create_function_version(fn.namespace, version)
        except Exception as exc:  # noqa: BLE001 - reported, retried next pass
            log.warning("%s/%s: publishing version %d failed: %s", fn.namespace, fn.name, publish.number, exc)
            events.post(body, "Warning", "PublishFailed", f"version {publish.number}: {getattr(exc, 'reason', exc)}")
            return None
        if created:
            log.info("%s/%s: published version %d (%s)", fn.namespace, fn.name, publish.number, publish.name)
            events.post(body, "Normal", "VersionPublished", f"published version {publish.number} ({publish.name})")
        else:
            log.info("%s/%s: version %d was already published", fn.namespace, fn.name, publish.number)
        return publish

    async def _write_published_status(
        self, fn: FunctionView, p: Plan, versions: list[Published], aliases: list[Published], now: datetime
    ) -> None:
        """Each FunctionVersion's and FunctionAlias's provisioned status, written when it
        changed (a failed write is logged; the next pass writes it)."""
        desired = provisioned_statuses(
            versions=versions,
            aliases=aliases,
            ready={n: v.provisioned_ready for n, v in p.versions.items()},
            failures={n: v.failure for n, v in p.versions.items()},
            now=now,
        )
        current = {("FunctionVersion", o.name): o.status for o in versions}
        current |= {("FunctionAlias", o.name): o.status for o in aliases}
        for (kind, name), status in sorted(desired.items()):
            patch = published_status_patch(current.get((kind, name)) or {}, status)
            if not patch:
                continue
            try:
                await self.cruds.patch_published_status(kind, fn.namespace, name, patch)
            except Exception as exc:  # noqa: BLE001 - the next pass writes it
                log.warning("%s/%s: status of %s %s: %s", fn.namespace, fn.name, kind, name, exc)

    async def _act(
        self, body: Mapping, fn: FunctionView, p: Plan, now: datetime, vspecs: Mapping[str, FunctionSpec]
    ) -> int:
        """Carry out the plan; returns how many pod creations failed (reported, not raised:
        the next pass retries, and the status of this one must still be written)."""
        ns = fn.namespace
        since = C.rfc3339(now)
        errors: list[str] = []

        owner_patch = {"metadata": {"ownerReferences": [owner_reference(fn.name, fn.uid)]}}
        drain_patch = {"metadata": {"labels": {labels.DRAINING: "true"}, "annotations": {labels.DRAINING_SINCE: since}}}
        stamp_patch = {"metadata": {"annotations": {labels.DRAINING_SINCE: since}}}

        async def attempt(coro, what: str):
            try:
                return await coro
            except Exception as exc:  # noqa: BLE001 - reported below, retried next pass
                log.warning("%s/%s: %s failed: %s", ns, fn.name, what, exc)
                errors.append(f"{what}: {getattr(exc, 'reason', None) or exc}")
                return None

        results = await asyncio.gather(
            *(attempt(self.cruds.patch_pod(ns, n, owner_patch), f"adopt {n}") for n in p.adopt),
            *(attempt(self.cruds.patch_pod(ns, n, drain_patch), f"drain {n}") for n in p.drain),
            *(attempt(self.cruds.patch_pod(ns, n, stamp_patch), f"stamp {n}") for n in p.stamp),
        )
        adopted = sum(1 for r in results[: len(p.adopt)] if r)
        drained = sum(1 for r in results[len(p.adopt) : len(p.adopt) + len(p.drain)] if r)

        deleted = await asyncio.gather(
            *(attempt(self.cruds.delete_pod(ns, d.name), f"delete {d.name}") for d in p.deletes)
        )
        done = [d for d, ok in zip(p.deletes, deleted) if ok]

        # Provisioned pods to create: $LATEST's (the Function's spec), each version's.
        wanted: list[tuple[str, FunctionSpec, int]] = []
        if p.create and fn.spec is not None:
            wanted.append((LATEST, fn.spec, p.create))
        wanted += [(n, vspecs[n], v.create) for n, v in sorted(p.versions.items()) if v.create]
        bodies = [
            environment_pod(
                function_name=fn.name,
                namespace=ns,
                function_uid=fn.uid,
                spec=spec,
                env_id=new_env_id(fn.name, labels.ROLE_PROVISIONED),
                role=labels.ROLE_PROVISIONED,
                runtime_image=self.config.runtime_image,
                nodejs_runtime_image=self.config.nodejs_runtime_image,
                endpoint=self.config.function_endpoint,
                version=version,
            )
            for version, spec, count in wanted
            for _ in range(count)
        ]
        ok = await asyncio.gather(
            *(attempt(self.cruds.create_pod(ns, b), f"create {b['metadata']['name']}") for b in bodies)
        )
        created = sum(1 for r in ok if r)
        to_create = sum(count for _, _, count in wanted)

        # Report what actually happened.
        if adopted:
            events.post(
                body,
                "Normal",
                "EnvironmentsAdopted",
                f"adopted {adopted} environment pod(s) without an owner reference",
            )
        if drained:
            metrics.PODS_DRAINED.inc(drained)
            events.post(
                body, "Normal", "EnvironmentsDraining", f"marked {drained} environment(s) of an older spec draining"
            )
        if created:
            metrics.PODS_CREATED.labels(labels.ROLE_PROVISIONED).inc(created)
            which = ", ".join(
                f"{sum(1 for b, r in zip(bodies, ok) if r and _version_of(b) == v)} of "
                + (f"spec {p.spec_hash}" if v == LATEST else f"version {v}")
                for v, _, _ in wanted
            )
            events.post(
                body, "Normal", "ProvisionedEnvironmentsCreated", f"created provisioned environment(s): {which}"
            )
        if done:
            for d in done:
                metrics.PODS_DELETED.labels(d.reason).inc()
            why = ", ".join(f"{n} {r}" for r, n in sorted(Counter(d.reason for d in done).items()))
            events.post(body, "Normal", "EnvironmentsDeleted", f"deleted {len(done)} environment(s): {why}")
        if errors:
            events.post(body, "Warning", "ReconcileError", "; ".join(errors))
        return to_create - created

    # -- deletion ------------------------------------------------------------------------

    async def cleanup(self, body: Mapping) -> int:
        """Delete every pod of a Function being deleted.

        Returns how many of its pods are not yet terminating (0: done)."""
        meta = body.get("metadata") or {}
        ns, name, uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
        self._deleted.add(uid)
        if len(name) > 63:  # not a valid label value: it never had pods
            return 0
        async with self.lock(ns, name):
            await self.cruds.delete_function_pods(ns, name)
            left = [p for p in await self.cruds.list_pods(ns, name) if not is_terminating(p)]
        metrics.forget(ns, name)
        return len(left)


class GenericKeeper:
    """Keeps ``generic_pool_size`` generic runtime pods per namespace (``plan_generic``).

    A generic pod runs the runtime image without a function; a router cold start claims
    one (relabels it ``on-demand`` for its function, with a resourceVersion
    precondition so two claims never win the same pod) and specialises it with
    ``POST /init``. The claimed pod leaves this pool (it is the function's now) and the
    next pass creates a replacement. Generic pods have no owner: they belong to no
    Function and count toward no quota (they run nobody's code).
    """

    def __init__(self, config: OperatorConfig, cruds: Cruds, clock: Clock = utcnow) -> None:
        self.config = config
        self.cruds = cruds
        self.clock = clock
        self.image_hash = runtime_image_hash(config.runtime_image)
        self._locks: dict[str, asyncio.Lock] = {}

    async def sync(self, namespace: str) -> None:
        """One pass for ``namespace``: delete exited/outdated/stuck/surplus generic pods,
        create the missing ones. Errors of single calls are logged; the next pass retries."""
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            pods = await self.cruds.list_generic_pods(namespace)
            the_plan = plan_generic(
                [PodView.from_pod(p) for p in pods],
                want=self.config.generic_pool_size,
                image_hash=self.image_hash,
                now=self.clock(),
                timing=self.config.timing,
            )
            if the_plan.idle:
                return

            async def attempt(coro, what: str) -> bool:
                try:
                    return bool(await coro)
                except Exception as exc:  # noqa: BLE001 - retried next pass
                    log.warning("%s: generic pool: %s failed: %s", namespace, what, exc)
                    return False

            deleted = await asyncio.gather(
                *(attempt(self.cruds.delete_pod(namespace, d.name), f"delete {d.name}") for d in the_plan.deletes)
            )
            bodies = [
                generic_pod(
                    namespace=namespace,
                    env_id=new_env_id(GENERIC_NAME_PREFIX, labels.ROLE_GENERIC),
                    runtime_image=self.config.runtime_image,
                    endpoint=self.config.function_endpoint,
                )
                for _ in range(the_plan.create)
            ]
            created = await asyncio.gather(
                *(attempt(self.cruds.create_pod(namespace, b), f"create {b['metadata']['name']}") for b in bodies)
            )
            for d, ok in zip(the_plan.deletes, deleted):
                if ok:
                    metrics.PODS_DELETED.labels(d.reason).inc()
            if any(created):
                metrics.PODS_CREATED.labels(labels.ROLE_GENERIC).inc(sum(created))
            log.info("%s: generic pool: created %d, deleted %d", namespace, sum(created), sum(deleted))
