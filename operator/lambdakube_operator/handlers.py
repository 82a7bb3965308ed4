"""kopf wiring: which events lead to a reconcile pass, and how its result is written.

- One trigger path: ``on.create``/``on.update``/``on.resume`` of a Function, every
  event of its pods, a quota change and the resync only put the Function into the
  keyed queue (``Nudger``); the queue runs one pass per Function at a time (read it,
  observe, plan, act, one status write). No handler writes status through kopf's
  ``patch``, so there is one writer and no handler-vs-event race to paper over. The
  level-triggered resync is the operator's own loop, not a kopf timer: every resync
  interval it queues each known Function. Why not ``kopf.timer``: kopf keeps a
  deleted object's finalizer until its timers have exited, and a timer that was in the
  middle of a pass when the delete came was re-checked only after
  ``cancellation_polling`` (60 s): in a 50-Function delete on a real node, 15 Functions
  stayed 60 s and ran their cleanup twice (kopf purged the handler's progress and
  started over).
- ``on.delete`` (which makes kopf add our finalizer ``lambdakube.dev/cleanup``) deletes
  the function's pods, then lets the finalizer go (under the Function's lock, so a
  queued pass cannot recreate them).
- Pods labelled ``lambdakube.dev/function``: every event (a pod turned Ready, died,
  was deleted by someone) schedules a prompt pass for its Function, coalesced per
  Function (a rollout produces dozens of pod events). ``on.event`` handlers are never
  retried by kopf, so they only schedule; the pass itself logs its failures and the
  resync is the retry.
- ConcurrencyQuotas: a spec change re-allocates the namespace and nudges its Functions.
- FunctionVersions and FunctionAliases: two kopf indices by (namespace, function) (a
  pass needs no API read for them), and every event of one nudges its Function, whose
  pass keeps the version's provisioned pods and writes the objects' status. Only
  ``on.event`` and indices: kopf writes nothing to these objects (no finalizer, no
  progress annotations), so the operator needs no patch on them.
- Two kopf indices keep the namespace's reservations and quota object in memory, so a
  pass needs no extra API reads for the quota arithmetic.
- The generic pool (``--generic-pool-size`` > 0): a pass per namespace, coalesced like
  the Function passes, after any event of a ``role=generic`` pod, after every Function
  pass in that namespace (a router claim turns a generic pod into a function's pod, so
  the Function's pod event is what announces it), at start-up for the namespaces given
  by name, and every resync interval for every namespace seen so far.

Handlers are registered on a registry built per operator (``build_registry``), so the
resync interval and other settings come from the ``OperatorConfig`` (tests use short
ones) instead of import-time decorators.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import kopf

from lambdakube.kubeclient import authorization
from lambdakube.models import GROUP, QUOTA_OBJECT_NAME, VERSION

from .kube_api import Cruds
from lambdakube.quota import Reservation
from .reconcile import GenericKeeper, Reconciler
from lambdakube.resources import labels
from .settings import OperatorConfig

log = logging.getLogger(__name__)

FUNCTIONS = (GROUP, VERSION, "functions")
QUOTAS = (GROUP, VERSION, "concurrencyquotas")
FUNCTION_VERSIONS = (GROUP, VERSION, "functionversions")
FUNCTION_ALIASES = (GROUP, VERSION, "functionaliases")
PODS = ("", "v1", "pods")


class Loop:
    """One background loop of the operator (a resync), started at most once, cancelled
    with the nudger it feeds when the operator stops."""

    def __init__(self, body: Callable[[], Coroutine[Any, Any, None]], nudger: Nudger) -> None:
        self.body = body
        self.nudger = nudger
        self._task: asyncio.Task | None = None

    def ensure(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.body())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.nudger.close()


class Nudger:
    """The operator's keyed work queue: "reconcile this Function soon". At most one
    pending pass per key, one pass at a time per key; requests arriving while it waits or
    runs lead to exactly one more pass. The pass is told why it runs (the first reason
    asked for since the last pass: the ``trigger`` label of the reconcile metrics)."""

    def __init__(self, delay: float, run: Callable[[str, str, str], Awaitable[None]]) -> None:
        self.delay = delay
        self.run = run
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._again: set[tuple[str, str]] = set()
        self._reasons: dict[tuple[str, str], str] = {}

    def nudge(self, namespace: str, name: str, reason: str = "pod-event") -> None:
        key = (namespace, name)
        self._reasons.setdefault(key, reason)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self._again.add(key)
            return
        self._tasks[key] = asyncio.get_running_loop().create_task(self._loop(key))

    async def _loop(self, key: tuple[str, str]) -> None:
        try:
            while True:
                await asyncio.sleep(self.delay)
                self._again.discard(key)
                reason = self._reasons.pop(key, "pod-event")
                try:
                    await self.run(key[0], key[1], reason)
                except Exception:  # noqa: BLE001 - the resync retries
                    log.exception("reconcile of %s/%s (%s) failed", key[0], key[1], reason)
                if key not in self._again:
                    return
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    async def close(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _reservations(index: kopf.Index, namespace: str) -> list[Reservation]:
    return list(index.get(namespace, ()))


def _published(index: kopf.Index | None, namespace: str, function: str) -> list[Mapping]:
    """A function's FunctionVersions or FunctionAliases as the index holds them (those
    being deleted left out: their pods drain)."""
    if index is None:
        return []
    return [b for b in index.get((namespace, function), ()) if not b["metadata"].get("deletionTimestamp")]


def _published_entry(namespace: str, body: Mapping) -> dict:
    """An index entry of a FunctionVersion or FunctionAlias: what a pass needs of it."""
    meta = body.get("metadata") or {}
    spec = dict(body.get("spec") or {})
    return {
        (namespace, spec.get("function")): {
            "metadata": {
                "name": meta.get("name"),
                "generation": meta.get("generation"),
                "deletionTimestamp": meta.get("deletionTimestamp"),
            },
            "spec": spec,
            "status": dict(body.get("status") or {}),
        }
    }


def _quota(index: kopf.Index, namespace: str) -> Mapping | None:
    for q in index.get(namespace, ()):
        return q
    return None


def connection_info(cfg, default_namespace: str | None) -> kopf.ConnectionInfo:
    """kopf's connection from a kubernetes-client Configuration (kubeconfig or in-cluster).

    The in-cluster token is re-read (``kubeclient.authorization``), so a re-login (kopf
    asks again on a 401) picks up a rotated ServiceAccount token."""
    header = authorization(cfg)
    scheme: str | None
    scheme, _, token = (header or "").partition(" ")
    if header and not token:
        scheme, token = None, header
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        default_namespace=default_namespace,
    )


def build_registry(
    config: OperatorConfig,
    cruds: Cruds,
    reconciler: Reconciler,
    generic: GenericKeeper | None = None,
) -> tuple[kopf.OperatorRegistry, Nudger]:
    registry = kopf.OperatorRegistry()
    if generic is None and config.generic_pool_size > 0:
        generic = GenericKeeper(config, cruds)

    # -- login ---------------------------------------------------------------------------

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs) -> kopf.ConnectionInfo | None:
        """Log kopf in with the same credentials the ``kube_api`` client uses.

        Also in a pod: kopf's own service-account login hard-codes
        ``https://kubernetes.default.svc``, which needs cluster DNS, so an operator in a
        cluster without it reconciled nothing and said nothing. The client's in-cluster
        configuration uses ``KUBERNETES_SERVICE_HOST``/``_PORT`` as client-go does."""
        return connection_info(cruds.client.configuration, config.namespaces[0] if config.namespaces else None)

    # -- indices -------------------------------------------------------------------------

    @kopf.index(*FUNCTIONS, registry=registry, id="fn_reservations")
    def fn_reservations(namespace, name, meta, spec, **_):
        # A Function being deleted keeps an entry (kopf would keep the old value on
        # None) but no longer reserves anything.
        reserved = None if meta.get("deletionTimestamp") else spec.get("reservedConcurrency")
        return {namespace: Reservation(name, meta.get("creationTimestamp") or "", reserved)}

    # Versions and aliases by (namespace, function): a pass reads its function's from
    # here (watch-fed), and any change of one nudges its function (below).
    @kopf.index(*FUNCTION_VERSIONS, registry=registry, id="fn_versions")
    def fn_versions(namespace, body, **_):
        return _published_entry(namespace, body)

    @kopf.index(*FUNCTION_ALIASES, registry=registry, id="fn_aliases")
    def fn_aliases(namespace, body, **_):
        return _published_entry(namespace, body)

    @kopf.index(*QUOTAS, registry=registry, id="quota_objects")
    def quota_objects(namespace, name, body, **_):
        return (
            {namespace: {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}}
            if name == QUOTA_OBJECT_NAME
            else None
        )

    # -- the one pass ----------------------------------------------------------------------
    #
    # Every trigger - a Function created, changed or resumed, a pod event, a quota
    # change, the resync - only asks the queue (``nudger``) for a pass; the queue runs one
    # pass per Function at a time: read the Function, observe its pods, plan, act, and
    # write the status once (``reconcile_by_name``). The kopf indices are the namespace's
    # reservations and quota object, as the last handler saw them (``live``).

    live: dict[str, Any] = {}

    async def reconcile_by_name(namespace: str, name: str, trigger: str = "pod-event") -> None:
        body = await cruds.get_function(namespace, name)
        if body is None:
            return
        patch, changed = await reconciler.reconcile(
            body,
            reservations=_reservations(live["fn"], namespace),
            quota=_quota(live["quota"], namespace),
            trigger=trigger,
            versions=_published(live.get("versions"), namespace, name),
            aliases=_published(live.get("aliases"), namespace, name),
        )
        if patch:
            await cruds.patch_function_status(namespace, name, patch)
        for other in changed:
            nudger.nudge(namespace, other)
        nudge_generic(namespace)

    nudger = Nudger(config.pod_event_delay, reconcile_by_name)

    def remember(kwargs: Mapping[str, Any]) -> None:
        """Keep the indices (live views, the same objects every time) for the passes."""
        live["fn"], live["quota"] = kwargs.get("fn_reservations"), kwargs.get("quota_objects")
        live["versions"], live["aliases"] = kwargs.get("fn_versions"), kwargs.get("fn_aliases")

    @kopf.on.event(*PODS, labels={labels.FUNCTION: kopf.PRESENT}, registry=registry, id="pod-event")
    async def pod_event(namespace, meta, **kwargs):
        remember(kwargs)
        ensure_resync()
        function = (meta.get("labels") or {}).get(labels.FUNCTION)
        if function:
            nudger.nudge(namespace, function)

    # -- the generic pool ------------------------------------------------------------------

    generic_namespaces: set[str] = {ns for ns in config.namespaces if not any(c in ns for c in "*?[!")}

    async def sync_generic(namespace: str, _: str, __: str) -> None:
        assert generic is not None
        await generic.sync(namespace)

    generic_nudger = Nudger(config.pod_event_delay, sync_generic)

    def nudge_generic(namespace: str | None) -> None:
        if generic is None or not namespace:
            return
        generic_namespaces.add(namespace)
        generic_nudger.nudge(namespace, "")

    if generic is not None:

        @kopf.on.event(*PODS, labels={labels.ROLE: labels.ROLE_GENERIC}, registry=registry, id="generic-pod-event")
        async def generic_pod_event(namespace, **_):
            nudge_generic(namespace)

        async def generic_resync() -> None:
            while True:
                for ns in sorted(generic_namespaces):
                    generic_nudger.nudge(ns, "")
                await asyncio.sleep(config.resync_interval)

        generic_loop = Loop(generic_resync, generic_nudger)

        @kopf.on.startup(registry=registry, id="generic-pool")
        async def start_generic(**_):
            generic_loop.ensure()

        @kopf.on.cleanup(registry=registry, id="stop-generic-pool")
        async def stop_generic(**_):
            await generic_loop.stop()

    # -- Functions ---------------------------------------------------------------------

    @kopf.on.resume(*FUNCTIONS, registry=registry, id="reconcile-resume")
    @kopf.on.create(*FUNCTIONS, registry=registry, id="reconcile-create")
    @kopf.on.update(*FUNCTIONS, registry=registry, id="reconcile-update")
    async def function_changed(namespace, name, reason, **kwargs):
        remember(kwargs)
        ensure_resync()
        nudge_generic(namespace)
        nudger.nudge(namespace, name, str(reason))

    # The resync is the level-triggered safety net and the retry of everything above:
    # a pass per known Function every interval, through the same queue (a failed pass is
    # logged there, and the next interval simply tries again).
    async def resync_loop() -> None:
        while True:
            await asyncio.sleep(config.resync_interval)
            index = live.get("fn")
            if index is None:  # no Function handled yet
                continue
            for namespace in sorted(index):
                for r in _reservations(index, namespace):
                    nudger.nudge(namespace, r.name, "timer")

    # Started from the first Function or pod handler, not from ``on.startup``: a task
    # inherits its creator's context, and only a handler's context carries kopf's event
    # poster (``kopf.event`` from the startup context posted nothing). The pass tasks the
    # queue starts inherit it from there.
    resync = Loop(resync_loop, nudger)
    ensure_resync = resync.ensure

    @kopf.on.cleanup(registry=registry, id="stop-resync")
    async def stop_resync(**_):
        await resync.stop()

    @kopf.on.delete(*FUNCTIONS, registry=registry, id="cleanup", retries=60, backoff=1, timeout=300)
    async def function_deleted(body, namespace, name, logger, fn_reservations=None, quota_objects=None, **_):
        left = await reconciler.cleanup(body)
        if left:
            raise kopf.TemporaryError(f"{left} environment pod(s) still not terminating", delay=1)
        # The deleted function no longer reserves anything (its index entry says so).
        # Best effort: the finalizer must not wait on the quota (the namespace may be going).
        try:
            _, changed = await reconciler.quota.sync(
                namespace, _reservations(fn_reservations, namespace), _quota(quota_objects, namespace)
            )
        except Exception as exc:  # noqa: BLE001 - the other functions' timers redo it
            logger.warning("could not re-allocate the namespace quota: %s", exc)
            changed = set()
        for other in changed:
            nudger.nudge(namespace, other)
        logger.info("deleted the environments of %s/%s", namespace, name)

    # -- FunctionVersions and FunctionAliases -------------------------------------------
    #
    # Any event of one (created, its provisionedConcurrency or routing changed, deleted,
    # its status written) is a pass of its Function: the pass keeps the version's pods
    # and writes the objects' status. Our own status writes come back as events too; the
    # pass they cause finds nothing to change and writes nothing.

    @kopf.on.event(*FUNCTION_VERSIONS, registry=registry, id="version-event")
    @kopf.on.event(*FUNCTION_ALIASES, registry=registry, id="alias-event")
    async def published_event(namespace, spec, **kwargs):
        remember(kwargs)
        ensure_resync()
        function = spec.get("function")
        if function:
            nudger.nudge(namespace, function, "version-event")

    # -- ConcurrencyQuota ----------------------------------------------------------------

    @kopf.on.resume(*QUOTAS, registry=registry, id="allocate-resume", field="spec", retries=5, backoff=2, timeout=120)
    @kopf.on.create(*QUOTAS, registry=registry, id="allocate-create", field="spec", retries=5, backoff=2, timeout=120)
    @kopf.on.update(*QUOTAS, registry=registry, id="allocate-update", field="spec", retries=5, backoff=2, timeout=120)
    async def quota_changed(namespace, name, body, fn_reservations=None, **_):
        if name != QUOTA_OBJECT_NAME:
            return
        reservations = _reservations(fn_reservations, namespace)
        await reconciler.quota.sync(namespace, reservations, dict(body))
        for r in reservations:
            nudger.nudge(namespace, r.name)

    return registry, nudger
