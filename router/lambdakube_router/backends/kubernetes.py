"""Environments as pods: created, or claimed, through the Kubernetes API.

Where an environment comes from (who owns which pod is the design's rule: the operator
owns provisioned pods and the generic pool, the router its on-demand cold starts):

- **provisioned** (``start(provisioned=True)``): the router creates nothing. It waits
  for, and *claims*, a Ready pod the operator created with ``function=<fn>``,
  ``role=provisioned``, ``spec-hash=<current hash>``, not draining, not claimed yet by
  this router (a set of claimed names: the router runs as one replica). ``stop`` deletes
  the pod (a retired environment is gone; the operator creates the replacement).
- **generic** (an on-demand cold start of a function that a generic pod fits, see
  ``lambdakube.resources.fits_generic``): the router claims a Ready pod of the
  operator's generic pool by relabelling it ``role=on-demand, function=<fn>,
  spec-hash=<hash>`` and adding the owner reference, **with a resourceVersion
  precondition** (a 409 means someone else changed it first: try the next one), then
  sends it the function with ``POST /init`` (the same body as the local backend's
  generic environments) and reports that Init's duration.
- **fresh**: otherwise (or when no generic pod is available) the router creates an
  on-demand pod with ``lambdakube.resources.environment_pod`` (the operator's builder:
  same labels, spec hash, security context). A pod of an inline-code function starts
  its runtime without the function; once it listens the router sends it the same
  ``POST /init`` as a claimed generic pod (``lambdakube.resources.code``).

What the router knows of pods comes from ``PodCache`` (one list + watch of the pods
labelled ``lambdakube.dev/role`` per served namespace): claims read it, and a claim
waiting for a provisioned pod wakes on the cache's next change, not on a poll.

Draining: the operator labels pods of an older spec ``lambdakube.dev/draining=true``;
``is_draining(handle)`` reads that label from the cache; the pool stops leasing those
environments and stops them once idle.

Announces (fresh pods): the kubelet writes a new pod's IP into its status only at its
next PLEG relist (every second) after the container started, so the router also gives
each pod it creates a random token and its own address (``announce_url``); the
runtime, once listening, posts its envId, address and that token
(``lambdakube_runtime.announce``). ``announced()`` accepts it only for a pod this
router is starting, with the right token, from a connection whose peer is the announced
IP; the start then probes that address, and uses it only if ``/readyz`` answers with the
pod's own envId. Without an accepted announce the start follows the pod's status alone.

Rollouts (surge first): after a spec change the pool ``release``s its provisioned pods
of the old spec instead of stopping them. The router never deletes a provisioned pod the
operator still counts on: it forgets the claim and remembers the pod as *released*; the
operator creates the new pods, and labels the old ones draining once enough new ones are
Ready. A released pod seen draining is deleted by the router at once (nobody here uses
it; draining pods are the router's to delete, the operator's deadline is a backstop).

Why the synchronous ``kubernetes`` client in a thread for writes (create, patch, delete):
``kubernetes_asyncio`` is not a dependency, and a cold start makes one or two of them;
every read is the cache or a watch.

A claimed pod is ready for the router when its ``Ready`` condition is true; requests go
to ``lambdakube.resources.pod_address`` (``status.podIP:8080``, or the
``lambdakube.dev/address`` annotation of tests without a kubelet). A fresh pod is
followed through its watch events and the runtime's own ``/readyz``, so an Init failure
is reported at once with the runtime's error; the error is also written to the pod as
``lambdakube.dev/init-error`` (the operator's InitFailed condition reads it).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

from lambdakube.models import DEFAULT_RUNTIME_IMAGE, GROUP, VERSION, FunctionSpec
from lambdakube.resources import (
    environment_pod,
    fits_generic,
    init_body,
    labels,
    new_env_id,
    owner_reference,
    pod_address,
    runtime_image_hash,
    spec_hash,
)
from lambdakube.resources.code import init_error_message
from lambdakube.resources.podview import is_ready, terminated_reason
from lambdakube.resources.code import needs_fresh_process
from lambdakube.resources.code import runtime_answer
from lambdakube_router.backends.base import (
    SOURCE_FRESH,
    SOURCE_GENERIC,
    SOURCE_PROVISIONED,
    Backend,
    EnvironmentHandle,
    EnvironmentStartError,
    FunctionRef,
)
from lambdakube_router.backends.pod_cache import PodCache
from lambdakube_router.backends.podwatch import PodWatcher, WatchedPod

log = logging.getLogger(__name__)

#: /init waits for the function's Init; the pool's init timeout bounds it (cancellation).
_INIT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=2)


@dataclass
class PodEnv:
    """``EnvironmentHandle.private`` of a pod environment."""

    namespace: str
    name: str
    role: str
    #: ``fresh``, ``generic`` or ``provisioned`` (``X-Environment-Source`` of cold starts).
    source: str

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass
class _Pending:
    """A fresh pod this router waits for: its announce token and what was announced."""

    token: str
    address: str | None = None
    view: WatchedPod | None = None


def _announced_ip(address: str) -> str | None:
    """The IP of an announced ``host:port`` (``[v6]:port`` too), None if malformed."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _same_ip(a: str, b: str) -> bool:
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    # An IPv4 peer may show up as an IPv4-mapped IPv6 address on a dual-stack socket.
    x = getattr(x, "ipv4_mapped", None) or x
    y = getattr(y, "ipv4_mapped", None) or y
    return x == y


def _meta(pod: dict) -> dict:
    return pod.get("metadata") or {}


def _draining(pod: dict | None) -> bool:
    return pod is not None and (_meta(pod).get("labels") or {}).get(labels.DRAINING) == "true"


def _oldest_first(pods: list[dict]) -> list[dict]:
    return sorted(pods, key=lambda p: (_meta(p).get("creationTimestamp") or "", _meta(p).get("name")))


def _init_seconds(info: dict) -> float:
    try:
        return float(info.get("initDurationMs") or 0) / 1000
    except (TypeError, ValueError):
        return 0.0


class KubernetesBackend(Backend):
    def __init__(self, *, kubeconfig: str | None = None, image: str = DEFAULT_RUNTIME_IMAGE,
                 api_client=None, poll_interval: float = 0.05, max_poll_interval: float = 0.5,
                 delete_grace_seconds: int | None = 0, claim_generic: bool = True,
                 announce_url: str | None = None, namespaces: Iterable[str] = ()) -> None:
        from kubernetes import client  # noqa: PLC0415

        from lambdakube import kubeclient  # noqa: PLC0415

        if api_client is None:
            api_client = kubeclient.api_client(kubeconfig)
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.image = image
        self.image_hash = runtime_image_hash(image)
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._pod_watch = PodWatcher(api_client.configuration)
        #: The served namespaces' environment pods (empty ``namespaces``: cluster-wide).
        self.cache = PodCache(self._pod_watch._http, api_client.configuration, namespaces)
        self.delete_grace_seconds = delete_grace_seconds
        self.claim_generic = claim_generic
        #: Where fresh pods' runtimes announce themselves (None: they don't).
        self.announce_url = announce_url
        #: Fresh pods being started, by name (= env id): see ``announced``.
        self._pending: dict[str, _Pending] = {}
        #: Announces accepted / refused (introspection, metrics, tests).
        self._announce_counts = {"accepted": 0, "refused": 0}
        self.announces = self._announce_counts
        self._uids: dict[tuple[str, str], str | None] = {}
        #: env id (= pod name) -> the pod of every environment this router holds.
        self._pods: dict[str, PodEnv] = {}
        #: Pods this router claimed (provisioned or generic): never claimed twice.
        self._claimed: set[tuple[str, str]] = set()
        #: Provisioned pods given back (``release``) while the router runs: deleted once
        #: the operator labels them draining (``_released_loop``).
        self._released: set[tuple[str, str]] = set()
        self._released_task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        #: Cold starts served by claiming a generic pod (introspection, tests).
        self.generic_claims = 0

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def _function_uid(self, fn: FunctionRef) -> str | None:
        if fn.uid:
            return fn.uid
        key = (fn.namespace, fn.name)
        if key not in self._uids:
            from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

            try:
                obj = await self._call(self.custom.get_namespaced_custom_object,
                                       GROUP, VERSION, fn.namespace, "functions", fn.name)
                self._uids[key] = obj["metadata"]["uid"]
            except ApiException as exc:
                if exc.status != 404:
                    raise
                log.warning("%s: no Function object: pods get no owner reference", fn)
                self._uids[key] = None
        return self._uids[key]

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self._session

    # -- the Backend interface ------------------------------------------------------------

    async def start(self, fn: FunctionRef, spec: FunctionSpec, env_id: str,
                    provisioned: bool) -> EnvironmentHandle:
        """``env_id`` is only a hint: the environment's id is its pod's name."""
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        self._ensure_released_loop()
        await self.cache.synced()
        try:
            uid = await self._function_uid(fn)
        except ApiException as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot read the Function: {exc.status} {exc.reason}",
                error_type="PodCreateError") from None
        if provisioned:
            return await self._claim_provisioned(fn, spec)
        if self.claim_generic and uid and fits_generic(spec) and not needs_fresh_process(spec):
            handle = await self._start_generic(fn, spec, uid)
            if handle is not None:
                return handle
        return await self._start_fresh(fn, spec, uid)

    def is_draining(self, handle: EnvironmentHandle) -> bool:
        """True when the operator labelled this environment's pod draining (as last seen)."""
        where = self._pods.get(handle.env_id) or handle.private
        return isinstance(where, PodEnv) and _draining(self.cache.get(*where.key))

    async def stop(self, handle: EnvironmentHandle) -> None:
        where = self._pods.pop(handle.env_id, None) or handle.private
        if isinstance(where, PodEnv):
            await self._delete(where.namespace, where.name)

    async def release(self, handle: EnvironmentHandle) -> None:
        """Give a claimed provisioned pod back without deleting it (router shutdown or
        function removal: the operator owns it, and a next router claims it again)."""
        where = self._pods.pop(handle.env_id, None) or handle.private
        if not isinstance(where, PodEnv):
            return
        if where.role == labels.ROLE_PROVISIONED:
            self._claimed.discard(where.key)
            self._released.add(where.key)  # the drain loop runs: ``start`` claimed it
        else:  # only provisioned pods are kept by someone else
            await self._delete(where.namespace, where.name)

    async def close(self) -> None:
        if self._released_task is not None:
            self._released_task.cancel()
            await asyncio.gather(self._released_task, return_exceptions=True)
            self._released_task = None
        await self.cache.close()
        owned = [p for p in self._pods.values() if p.role != labels.ROLE_PROVISIONED]
        await asyncio.gather(*(self._delete(p.namespace, p.name) for p in owned),
                             return_exceptions=True)
        self._pods.clear()
        self._released.clear()
        if self._session is not None:
            await self._session.close()
        await self._pod_watch.close()
        await self._call(self.api.close)

    # -- provisioned: claim the operator's pods -------------------------------------------

    async def _claim_provisioned(self, fn: FunctionRef, spec: FunctionSpec) -> EnvironmentHandle:
        """Wait for and claim a Ready provisioned pod of the current spec (the pool's
        init timeout bounds the wait). An Init error of such a pod fails the start."""
        wanted = {labels.FUNCTION: fn.name, labels.ROLE: labels.ROLE_PROVISIONED,
                  labels.SPEC_HASH: spec_hash(spec)}
        while True:
            seen = self.cache.version
            pods = [p for p in self.cache.select(fn.namespace, **wanted) if not _draining(p)]
            init_error = None
            for pod in _oldest_first(pods):
                meta = _meta(pod)
                key = (fn.namespace, meta["name"])
                if key in self._claimed or meta.get("deletionTimestamp"):
                    continue
                error = (meta.get("annotations") or {}).get(labels.INIT_ERROR)
                address = pod_address(pod)
                if error:
                    init_error = init_error or error
                    continue
                if address is None:
                    continue
                if not is_ready(pod):
                    # Nobody else reads a provisioned pod's /readyz: report its Init error.
                    status, info = await self._readyz(address)
                    if info.get("state") == "init_failed":
                        message = init_error_message(str(fn), info)
                        await self._annotate_init_error(fn.namespace, meta["name"], message)
                        init_error = init_error or message
                    continue
                self._claimed.add(key)
                try:
                    status, info = await self._readyz(address)
                except BaseException:
                    self._claimed.discard(key)
                    raise
                if status != 200:
                    self._claimed.discard(key)
                    continue
                where = PodEnv(fn.namespace, meta["name"], labels.ROLE_PROVISIONED, SOURCE_PROVISIONED)
                self._pods[where.name] = where
                return EnvironmentHandle(address=address, env_id=where.name,
                                         init_duration=_init_seconds(info), private=where)
            if init_error:
                raise EnvironmentStartError(
                    init_error if init_error.startswith(f"{fn}:") else f"{fn}: Init failed: {init_error}")
            if self.cache.error:
                raise EnvironmentStartError(f"{fn}: {self.cache.error}")
            # The next pod change; a Ready pod whose runtime did not answer yet is probed
            # again after max_poll_interval even without one.
            await self.cache.next_change(seen, self.max_poll_interval)

    # -- generic: claim a pod of the operator's generic pool and specialise it ------------

    async def _start_generic(self, fn: FunctionRef, spec: FunctionSpec, uid: str) -> EnvironmentHandle | None:
        """A cold start on a claimed generic pod; None when none could be used."""
        pods = self.cache.select(fn.namespace, **{labels.ROLE: labels.ROLE_GENERIC,
                                                  labels.RUNTIME_IMAGE_HASH: self.image_hash,
                                                  labels.FUNCTION: None})
        for pod in _oldest_first(pods):
            meta = _meta(pod)
            address = pod_address(pod)
            if (meta.get("deletionTimestamp") or not is_ready(pod) or address is None
                    or (fn.namespace, meta["name"]) in self._claimed):
                continue
            if not await self.claim_generic_pod(fn, spec, uid, pod):
                continue
            handle = await self._specialise(fn, spec, meta["name"], address)
            if handle is not None:
                self.generic_claims += 1
                return handle
        return None

    async def claim_generic_pod(self, fn: FunctionRef, spec: FunctionSpec, uid: str, pod: dict) -> bool:
        """Relabel the generic ``pod`` (as listed: its resourceVersion is the
        precondition) as an on-demand environment of ``fn``. False when someone else
        changed it first (409) or it is gone (404)."""
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        meta = _meta(pod)
        key = (fn.namespace, meta["name"])
        if key in self._claimed:
            return False
        self._claimed.add(key)
        patch = {"metadata": {
            "resourceVersion": meta["resourceVersion"],
            "labels": {labels.ROLE: labels.ROLE_ON_DEMAND, labels.FUNCTION: fn.name,
                       labels.SPEC_HASH: spec_hash(spec), labels.MANAGED_BY: labels.ROUTER_NAME},
            "annotations": {labels.TIMEOUT_SECONDS: str(spec.timeout_seconds)},
            "ownerReferences": [owner_reference(fn.name, uid)],
        }}
        try:
            await self._call(self.core.patch_namespaced_pod, meta["name"], fn.namespace, patch,
                             _preload_content=False)
        except ApiException as exc:
            self._claimed.discard(key)  # not ours: it may be claimable again later (a 409
            # also follows any status update of the pod since it was listed)
            if exc.status in (404, 409):
                log.debug("%s: claim of generic pod %s lost: %s", fn, meta["name"], exc.status)
                return False
            log.warning("%s: claim of generic pod %s failed: %s %s", fn, meta["name"], exc.status, exc.reason)
            return False
        except BaseException:
            self._claimed.discard(key)
            raise
        return True

    async def _specialise(self, fn: FunctionRef, spec: FunctionSpec, name: str,
                          address: str) -> EnvironmentHandle | None:
        """``POST /init`` on a claimed generic pod. The pod is deleted unless this
        succeeds; None when the pod was unusable (the caller tries another, or a fresh
        pod)."""
        where = PodEnv(fn.namespace, name, labels.ROLE_ON_DEMAND, SOURCE_GENERIC)
        self._pods[name] = where
        ok = False
        try:
            init, unusable = await self._init(fn, spec, name, address)
            if unusable:
                log.warning("%s: generic pod %s %s; trying another", fn, name, unusable)
                return None
            ok = True
            return EnvironmentHandle(address=address, env_id=name, init_duration=init, private=where)
        finally:
            if not ok:
                self._pods.pop(name, None)
                await self._delete(fn.namespace, name)

    async def _init(self, fn: FunctionRef, spec: FunctionSpec, name: str,
                    address: str) -> tuple[float, str | None]:
        """Send the function to the runtime at ``address`` (``POST /init``). Returns
        Init's duration, or why the pod cannot be used (it failed or refused before
        Init ran). An Init error of the function raises ``EnvironmentStartError`` (and is
        written to the pod for the operator's InitFailed)."""
        try:
            async with self._http().post(f"http://{address}/init",
                                         json=init_body(fn.name, fn.namespace, spec),
                                         timeout=_INIT_TIMEOUT) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 0.0, f"failed during /init ({type(exc).__name__}: {exc})"
        if status == 200:
            return _init_seconds(runtime_answer(body)), None
        info = runtime_answer(body)
        if status == 500 and "error" in info:
            message = init_error_message(str(fn), info)
            await self._annotate_init_error(fn.namespace, name, message)
            raise EnvironmentStartError(message)
        return 0.0, f"refused /init with {status}: {body[:500].decode(errors='replace')}"

    # -- fresh: create an on-demand pod ---------------------------------------------------

    async def _start_fresh(self, fn: FunctionRef, spec: FunctionSpec, uid: str | None) -> EnvironmentHandle:
        name = new_env_id(fn.name, labels.ROLE_ON_DEMAND)
        pending = self._pending[name] = _Pending(secrets.token_urlsafe(24))
        try:
            return await self._create_fresh(fn, spec, uid, name, pending)
        finally:
            self._pending.pop(name, None)

    async def _create_fresh(self, fn: FunctionRef, spec: FunctionSpec, uid: str | None, name: str,
                            pending: _Pending) -> EnvironmentHandle:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        announce = (self.announce_url, pending.token) if self.announce_url else None
        body = environment_pod(function_name=fn.name, namespace=fn.namespace, function_uid=uid or "",
                               spec=spec, env_id=name, role=labels.ROLE_ON_DEMAND,
                               runtime_image=self.image, managed_by=labels.ROUTER_NAME,
                               announce=announce)
        if not uid:
            body["metadata"].pop("ownerReferences", None)
        try:
            await self._call(self.core.create_namespaced_pod, fn.namespace, body,
                             _preload_content=False)
        except ApiException as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot create the environment pod: {exc.status} {exc.reason}: {exc.body}",
                error_type="PodCreateError") from None
        where = PodEnv(fn.namespace, name, labels.ROLE_ON_DEMAND, SOURCE_FRESH)
        self._pods[name] = where
        try:
            address, init = await self._wait_ready(fn, name, pending)
            if init is None:  # listening, waiting for its code
                init, unusable = await self._init(fn, spec, name, address)
                if unusable:
                    raise EnvironmentStartError(f"{fn}: environment pod {name} {unusable}")
        except BaseException:
            self._pods.pop(name, None)
            await self._delete(fn.namespace, name)
            raise
        return EnvironmentHandle(address=address, env_id=name, init_duration=init, private=where)

    async def _wait_ready(self, fn: FunctionRef, name: str,
                          pending: _Pending | None = None) -> tuple[str, float | None]:
        """Follow the new pod's watch events until its runtime answers ``/readyz``:
        with its Init's duration when it initialised itself (code in the image), with
        None when it listens and waits for ``/init``.

        The runtime's own ``/readyz`` decides, as soon as the pod has an address: waiting
        for the kubelet's Ready condition as well added up to a readiness-probe period
        to every cold start, for an answer the router gets itself. Between events the
        address is probed every ``poll_interval`` (a cheap local request)."""
        async with self._pod_watch.watch(fn.namespace, name) as view:
            if pending is not None:
                pending.view = view
            while True:
                seen, pod = view.version, view.pod
                if view.error:
                    raise EnvironmentStartError(f"{fn}: {view.error}")
                if view.gone:
                    raise EnvironmentStartError(f"{fn}: environment pod {name} was deleted while starting")
                address = None
                if pod is not None:
                    annotations = _meta(pod).get("annotations") or {}
                    if annotations.get(labels.INIT_ERROR):
                        raise EnvironmentStartError(f"{fn}: Init failed: {annotations[labels.INIT_ERROR]}")
                    reason = terminated_reason(pod)
                    if reason:
                        raise EnvironmentStartError(f"{fn}: {reason}")
                    address = pod_address(pod)
                via_announce = False
                if address is None and pending is not None and pending.address is not None:
                    address, via_announce = pending.address, True
                if address is None:
                    await view.next_change(seen, self.max_poll_interval)
                    continue
                status, info = await self._readyz(address)
                if via_announce and info.get("envId") != name:
                    # Not this pod's runtime (or not up): trust only the pod's status now.
                    log.warning("%s: the address announced for %s answered as %r; ignored",
                                fn, name, info.get("envId"))
                    assert pending is not None
                    pending.address = None
                    continue
                if info.get("state") == "init_failed":
                    message = init_error_message(str(fn), info)
                    await self._annotate_init_error(fn.namespace, name, message)
                    raise EnvironmentStartError(message)
                if status == 200:
                    return address, _init_seconds(info)
                if info.get("state") == "generic":
                    return address, None
                await view.next_change(seen, self.poll_interval)

    # -- announces ------------------------------------------------------------------------

    def announced(self, env_id: str, address: str, token: str, peer: str | None) -> bool:
        """A fresh pod's runtime says it listens at ``address`` (see the module's
        docstring). True when accepted: a pod this router starts, its token, and a
        connection from the announced IP."""
        pending = self._pending.get(env_id)
        ip = _announced_ip(address)
        ok = (pending is not None and ip is not None and peer is not None
              and hmac.compare_digest(pending.token.encode(), token.encode())
              and _same_ip(ip, peer))
        self._announce_counts["accepted" if ok else "refused"] += 1
        if not ok:
            log.warning("refused an announce for %r at %r from %r", env_id, address, peer)
            return False
        assert pending is not None
        pending.address = address
        if pending.view is not None:
            asyncio.get_running_loop().create_task(pending.view.poke())
        return True

    # -- draining -------------------------------------------------------------------------

    def _ensure_released_loop(self) -> None:
        if self._released_task is None or self._released_task.done():
            self._released_task = asyncio.get_running_loop().create_task(
                self._released_loop(), name="kubernetes-backend-released")

    async def _released_loop(self) -> None:
        """Delete released provisioned pods once the operator labels them draining
        (nobody here uses them; the operator's deadline is a backstop); forget those that
        are gone. Runs on the cache's changes."""
        while True:
            seen = self.cache.version
            await self._delete_released()
            await self.cache.next_change(seen, 30.0)

    async def _delete_released(self) -> None:
        if not self._released:
            return
        gone = {k for k in self._released if self.cache.get(*k) is None}
        done = {k for k in self._released - gone if _draining(self.cache.get(*k))}
        self._released -= gone | done
        for ns, name in sorted(done):
            if (ns, name) not in self._claimed:  # never a pod this router uses
                await self._delete(ns, name)

    # -- helpers ------------------------------------------------------------------------

    async def _readyz(self, address: str) -> tuple[int, dict]:
        try:
            async with self._http().get(f"http://{address}/readyz") as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, {}
        return status, runtime_answer(body)

    async def _annotate_init_error(self, namespace: str, name: str, message: str) -> None:
        patch = {"metadata": {"annotations": {labels.INIT_ERROR: message[:4000]}}}
        try:
            await self._call(self.core.patch_namespaced_pod, name, namespace, patch,
                             _preload_content=False)
        except Exception as exc:  # best effort: the error is reported to the caller anyway
            log.debug("cannot annotate pod %s/%s: %s", namespace, name, exc)

    async def _delete(self, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        kwargs = {}
        if self.delete_grace_seconds is not None:
            kwargs["grace_period_seconds"] = self.delete_grace_seconds
        try:
            await self._call(self.core.delete_namespaced_pod, name, namespace,
                             _preload_content=False, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("deleting pod %s/%s failed: %s %s", namespace, name, exc.status, exc.reason)
