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

Lost environments: a pod that ends under the router (deleted or evicted from outside,
its runtime crashed: ``restartPolicy: Never``) is seen in the cache, reported to its
pool (``lost_listener``) and retired, idle or as soon as its request is done; ``is_lost``
answers the same from the cache at every hand-out (``claims.lost_environments``).

Announces (fresh pods): the kubelet writes a new pod's IP into its status only at its
next PLEG relist (every second) after the container started, so the router also gives
each pod it creates a random token and its own address (``announce_url``); the
runtime, once listening, posts its envId, address and that token
(``lambdakube_runtime.announce``). ``announced()`` accepts it only for a pod this
router is starting, with the right token, from a connection whose peer is the announced
IP; the start then probes that address, and uses it only if ``/readyz`` answers with the
pod's own envId. Without an accepted announce the start follows the pod's status alone.
An accepted announce pokes the pod cache, so the waiting start looks at once.

Rollouts (surge first): after a spec change the pool ``release``s its provisioned pods
of the old spec instead of stopping them. The router never deletes a provisioned pod the
operator still counts on: it forgets the claim and remembers the pod as *released*; the
operator creates the new pods, and labels the old ones draining once enough new ones are
Ready. A released pod seen draining is deleted by the router at once (nobody here uses
it; draining pods are the router's to delete, the operator's deadline is a backstop).

Writes (create, patch, delete) go through ``kube_api.KubeApi`` on the event loop, not
the synchronous client in threads: a burst of cold starts no longer queues behind the
default executor's few workers, and a cancelled start cancels its request. Every pod
read is the cache.

A claimed pod is ready for the router when its ``Ready`` condition is true; requests go
to ``lambdakube.resources.pod_address`` (``status.podIP:8080``, or the
``lambdakube.dev/address`` annotation of tests without a kubelet). A fresh pod is
followed through the same cache (it is labelled ``lambdakube.dev/role`` like every
environment pod: no watch of its own) and the runtime's own ``/readyz``, so an Init
failure is reported at once with the runtime's error; the error is also written to the
pod as ``lambdakube.dev/init-error`` (the operator's InitFailed condition reads it).

Decisions and bookkeeping live in ``claims`` (pure rules, and ``Ownership``, the one
writer of what this router holds); this module executes them: API writes, ``/readyz``,
``/init``, and waiting for the cache's next change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable, Mapping

import aiohttp

from lambdakube.models import DEFAULT_NODEJS_RUNTIME_IMAGE, DEFAULT_RUNTIME_IMAGE, FunctionSpec
from lambdakube.resources import (
    env_token,
    environment_pod,
    fits_generic,
    init_body,
    labels,
    new_env_id,
    owner_reference,
    runtime_image_hash,
    spec_hash,
)
from lambdakube.resources.env_token import token_of
from lambdakube.resources.pods import version_labels
from lambdakube.resources.code import init_error_message, needs_fresh_process, runtime_answer
from lambdakube_router import kube_api
from lambdakube_router.backends import claims
from lambdakube_router.backends.base import (
    SOURCE_FRESH,
    SOURCE_GENERIC,
    SOURCE_PROVISIONED,
    Backend,
    EnvironmentHandle,
    EnvironmentStartError,
    FunctionRef,
)
from lambdakube_router.backends.claims import (
    Answer,
    Claim,
    Distrust,
    Fail,
    Generic,
    Ownership,
    Pending,
    PodEnv,
    Probe,
    ProbeInit,
    Ready,
    Wait,
)
from lambdakube_router.backends.pod_cache import PodCache
from lambdakube_router.informer import ApiSession
from lambdakube_router.kube_api import ApiError, KubeApi

log = logging.getLogger(__name__)

#: /init waits for the function's Init; the pool's init timeout bounds it (cancellation).
_INIT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=2)


class KubernetesBackend(Backend):
    #: A version's pods carry ``lambdakube.dev/version`` and run its snapshot: its
    #: pool claims, creates and follows only those (``claims.version_selector``).
    runs_versions = True

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        image: str = DEFAULT_RUNTIME_IMAGE,
        nodejs_image: str = DEFAULT_NODEJS_RUNTIME_IMAGE,
        configuration=None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 0.5,
        delete_grace_seconds: int | None = 0,
        claim_generic: bool = True,
        announce_url: str | None = None,
        namespaces: Iterable[str] = (),
        function_endpoint: str | None = None,
    ) -> None:
        if configuration is None:
            from lambdakube import kubeclient  # noqa: PLC0415

            own = kubeclient.api_client(kubeconfig)
            configuration = own.configuration  # only the credentials: no synchronous calls
            own.close()
        #: The API server's address and credentials (informers and writes alike).
        self.configuration = configuration
        self.image = image
        #: ``nodejs<N>.x`` functions' pods (``resources.image_for``).
        self.nodejs_image = nodejs_image
        self.image_hash = runtime_image_hash(image)
        #: A runtime that answered "not yet" is asked again after this long (a cheap
        #: local request), even without a change of its pod.
        self.poll_interval = poll_interval
        #: Every wait for the cache's next change ends after this long, change or not.
        self.max_poll_interval = max_poll_interval
        self._watch_http = ApiSession(configuration)
        #: The served namespaces' environment pods (empty ``namespaces``: cluster-wide).
        self.cache = PodCache(self._watch_http, configuration, namespaces)
        #: Pod writes and the few reads outside the cache, on their own connections (a
        #: burst of creates never waits behind the watches' long-lived ones).
        self._write_http = ApiSession(configuration)
        self.kube = KubeApi(self._write_http, configuration)
        self.delete_grace_seconds = delete_grace_seconds
        self.claim_generic = claim_generic
        #: Where fresh pods' runtimes announce themselves (None: they don't).
        self.announce_url = announce_url
        #: The router's URL for handlers' SDKs, in every pod created here.
        self.function_endpoint = function_endpoint
        #: Announces accepted / refused (introspection, metrics, tests).
        self._announce_counts = {"accepted": 0, "refused": 0}
        self.announces = self._announce_counts
        self._uids: dict[tuple[str, str], str | None] = {}
        #: Claimed, held, released and pending pods: changed only through its transitions.
        self.book = Ownership()
        self._released_task: asyncio.Task | None = None
        #: Cache pokes in flight (a task nobody references may be collected mid-way).
        self._pokes: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        #: Cold starts served by claiming a generic pod (introspection, tests).
        self.generic_claims = 0

    async def _function_uid(self, fn: FunctionRef) -> str | None:
        if fn.uid:
            return fn.uid
        key = (fn.namespace, fn.name)
        if key not in self._uids:
            try:
                obj = await self.kube.get(kube_api.functions(fn.namespace, fn.name))
                self._uids[key] = obj["metadata"]["uid"]
            except ApiError as exc:
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

    async def start(self, fn: FunctionRef, spec: FunctionSpec, env_id: str, provisioned: bool) -> EnvironmentHandle:
        """``env_id`` is only a hint: the environment's id is its pod's name."""
        self._ensure_released_loop()
        await self.cache.synced()
        try:
            uid = await self._function_uid(fn)
        except ApiError as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot read the Function: {exc.status} {exc.reason}", error_type="PodCreateError"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot read the Function: {type(exc).__name__}: {exc}", error_type="PodCreateError"
            ) from None
        handle = await self._start(fn, spec, uid, provisioned)
        self.book.serve(handle.env_id)
        return handle

    async def _start(
        self, fn: FunctionRef, spec: FunctionSpec, uid: str | None, provisioned: bool
    ) -> EnvironmentHandle:
        if provisioned:
            return await self._claim_provisioned(fn, spec)
        if self.claim_generic and uid and fits_generic(spec) and not needs_fresh_process(spec):
            handle = await self._start_generic(fn, spec, uid)
            if handle is not None:
                return handle
        return await self._start_fresh(fn, spec, uid)

    def is_draining(self, handle: EnvironmentHandle) -> bool:
        """True when the operator labelled this environment's pod draining (as last seen)."""
        where = self.book.where(handle.env_id) or handle.private
        return isinstance(where, PodEnv) and claims.is_draining(self.cache.get(*where.key))

    def is_lost(self, handle: EnvironmentHandle) -> bool:
        """True when this environment's pod is being deleted or its runtime ended (as last seen)."""
        where = self.book.where(handle.env_id) or handle.private
        pod = self.cache.get(*where.key) if isinstance(where, PodEnv) else None
        return pod is not None and claims.pod_ended(pod)

    async def stop(self, handle: EnvironmentHandle) -> None:
        where = self.book.let_go(handle.env_id) or handle.private
        if isinstance(where, PodEnv):
            await self._delete(where.namespace, where.name)

    async def release(self, handle: EnvironmentHandle) -> None:
        """Give a claimed provisioned pod back without deleting it (router shutdown or
        function removal: the operator owns it, and a next router claims it again)."""
        where = self.book.let_go(handle.env_id) or handle.private
        if not isinstance(where, PodEnv):
            return
        if where.role == labels.ROLE_PROVISIONED:
            self.book.give_back(where)  # the drain loop runs: ``start`` claimed it
        else:  # only provisioned pods are kept by someone else
            await self._delete(where.namespace, where.name)

    async def close(self) -> None:
        if self._released_task is not None:
            self._released_task.cancel()
            await asyncio.gather(self._released_task, return_exceptions=True)
            self._released_task = None
        await self.cache.close()
        await asyncio.gather(*(self._delete(p.namespace, p.name) for p in self.book.owned()), return_exceptions=True)
        self.book.clear()
        await asyncio.gather(*self._pokes, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self._watch_http.close()
        await self._write_http.close()

    # -- provisioned: claim the operator's pods -------------------------------------------

    async def _claim_provisioned(self, fn: FunctionRef, spec: FunctionSpec) -> EnvironmentHandle:
        """Wait for and claim a Ready provisioned pod of the current spec (the pool's
        init timeout bounds the wait), as ``claims.choose_provisioned`` says, one step at
        a time. A pass ends in a wait for the cache's next change; a Ready pod whose
        runtime did not answer yet is asked again after max_poll_interval even without one."""
        wanted = {labels.FUNCTION: fn.name, labels.ROLE: labels.ROLE_PROVISIONED, **claims.version_selector(fn)}
        current = spec_hash(spec)
        while True:
            seen = self.cache.version
            tried: set[str] = set()
            probed: dict[str, str | None] = {}
            while True:
                choice = claims.choose_provisioned(
                    self.cache.select(fn.namespace, **wanted),
                    self.book.claimed,
                    fn,
                    current,
                    tried=tried,
                    probed=probed,
                    cache_error=self.cache.error,
                )
                match choice:
                    case Claim():
                        handle = await self._take_provisioned(fn, choice)
                        if handle is not None:
                            return handle
                        tried.add(choice.name)
                    case ProbeInit():
                        probed[choice.name] = await self._probe_init_error(fn, choice.name, choice.address)
                    case Fail():
                        raise EnvironmentStartError(choice.message)
                    case Wait():
                        break
            await self.cache.next_change(seen, self.max_poll_interval)

    async def _take_provisioned(self, fn: FunctionRef, choice: Claim) -> EnvironmentHandle | None:
        """Claim the pod, then ask its runtime: None (claim undone) unless ``/readyz`` is 200."""
        key = (fn.namespace, choice.name)
        if not self.book.claim(key):
            return None
        try:
            status, info = await self._readyz(choice.address)
        except BaseException:
            self.book.unclaim(key)
            raise
        if status != 200:
            self.book.unclaim(key)
            return None
        where = PodEnv(fn.namespace, choice.name, labels.ROLE_PROVISIONED, SOURCE_PROVISIONED)
        self.book.hold(where)
        return EnvironmentHandle(
            address=choice.address,
            env_id=where.name,
            init_duration=claims.init_seconds(info),
            token=self._token(fn.namespace, choice.name),
            private=where,
        )

    async def _probe_init_error(self, fn: FunctionRef, name: str, address: str) -> str | None:
        """The Init error a not-Ready pod's runtime reports (written to the pod), if any."""
        _, info = await self._readyz(address)
        message = claims.reported_init_error(fn, info)
        if message:
            await self._annotate_init_error(fn.namespace, name, message)
        return message

    # -- generic: claim a pod of the operator's generic pool and specialise it ------------

    async def _start_generic(self, fn: FunctionRef, spec: FunctionSpec, uid: str) -> EnvironmentHandle | None:
        """A cold start on a claimed generic pod; None when none could be used."""
        pods = self.cache.select(
            fn.namespace,
            **{labels.ROLE: labels.ROLE_GENERIC, labels.RUNTIME_IMAGE_HASH: self.image_hash, labels.FUNCTION: None},
        )
        for candidate in claims.generic_candidates(pods, self.book.claimed, fn.namespace, self.image_hash):
            if not await self.claim_generic_pod(fn, spec, uid, candidate.pod):
                continue
            handle = await self._specialise(fn, spec, candidate.name, candidate.address, token_of(candidate.pod))
            if handle is not None:
                self.generic_claims += 1
                return handle
        return None

    async def claim_generic_pod(self, fn: FunctionRef, spec: FunctionSpec, uid: str, pod: Mapping) -> bool:
        """Relabel the generic ``pod`` (as listed: its resourceVersion is the
        precondition) as an on-demand environment of ``fn``. False when someone else
        changed it first (409) or it is gone (404)."""
        meta = pod.get("metadata") or {}
        key = (fn.namespace, meta["name"])
        if not self.book.claim(key):
            return False
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {
                    labels.ROLE: labels.ROLE_ON_DEMAND,
                    labels.FUNCTION: fn.name,
                    labels.SPEC_HASH: spec_hash(spec),
                    labels.MANAGED_BY: labels.ROUTER_NAME,
                    **version_labels(fn.version),
                },
                "annotations": {labels.TIMEOUT_SECONDS: str(spec.timeout_seconds)},
                "ownerReferences": [owner_reference(fn.name, uid)],
            }
        }
        try:
            await self.kube.patch(kube_api.pods(fn.namespace, meta["name"]), patch, content_type=kube_api.STRATEGIC)
        except ApiError as exc:
            self.book.unclaim(key)  # not ours: it may be claimable again later (a 409
            # also follows any status update of the pod since it was listed)
            if exc.status in (404, 409):
                log.debug("%s: claim of generic pod %s lost: %s", fn, meta["name"], exc.status)
                return False
            log.warning("%s: claim of generic pod %s failed: %s %s", fn, meta["name"], exc.status, exc.reason)
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.book.unclaim(key)
            log.warning("%s: claim of generic pod %s failed: %s", fn, meta["name"], exc)
            return False
        except BaseException:
            self.book.unclaim(key)
            raise
        return True

    async def _specialise(
        self, fn: FunctionRef, spec: FunctionSpec, name: str, address: str, token: str
    ) -> EnvironmentHandle | None:
        """``POST /init`` on a claimed generic pod. The pod is deleted unless this
        succeeds; None when the pod was unusable (the caller tries another, or a fresh
        pod)."""
        where = PodEnv(fn.namespace, name, labels.ROLE_ON_DEMAND, SOURCE_GENERIC)
        self.book.hold(where)
        ok = False
        try:
            init, unusable = await self._init(fn, spec, name, address, token)
            if unusable:
                log.warning("%s: generic pod %s %s; trying another", fn, name, unusable)
                return None
            ok = True
            return EnvironmentHandle(address=address, env_id=name, init_duration=init, token=token, private=where)
        finally:
            if not ok:
                self.book.let_go(name)
                await self._delete(fn.namespace, name)

    async def _init(
        self, fn: FunctionRef, spec: FunctionSpec, name: str, address: str, token: str
    ) -> tuple[float, str | None]:
        """Send the function to the runtime at ``address`` (``POST /init``). Returns
        Init's duration, or why the pod cannot be used (it failed or refused before
        Init ran). An Init error of the function raises ``EnvironmentStartError`` (and is
        written to the pod for the operator's InitFailed)."""
        try:
            async with self._http().post(
                f"http://{address}/init",
                json=init_body(fn.name, fn.namespace, spec, fn.version),
                headers={env_token.HEADER: token},
                timeout=_INIT_TIMEOUT,
            ) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 0.0, f"failed during /init ({type(exc).__name__}: {exc})"
        if status == 200:
            return claims.init_seconds(runtime_answer(body)), None
        info = runtime_answer(body)
        if status == 500 and "error" in info:
            message = init_error_message(str(fn), info)
            await self._annotate_init_error(fn.namespace, name, message)
            raise EnvironmentStartError(message)
        return 0.0, f"refused /init with {status}: {body[:500].decode(errors='replace')}"

    # -- fresh: create an on-demand pod ---------------------------------------------------

    async def _start_fresh(self, fn: FunctionRef, spec: FunctionSpec, uid: str | None) -> EnvironmentHandle:
        name = new_env_id(fn.name, labels.ROLE_ON_DEMAND)
        pending = self.book.expect(name, secrets.token_urlsafe(24))
        try:
            return await self._create_fresh(fn, spec, uid, name, pending)
        finally:
            self.book.started(name)

    async def _create_fresh(
        self, fn: FunctionRef, spec: FunctionSpec, uid: str | None, name: str, pending: Pending
    ) -> EnvironmentHandle:
        announce = (self.announce_url, pending.token) if self.announce_url else None
        body = environment_pod(
            function_name=fn.name,
            namespace=fn.namespace,
            function_uid=uid or "",
            spec=spec,
            env_id=name,
            role=labels.ROLE_ON_DEMAND,
            runtime_image=self.image,
            nodejs_runtime_image=self.nodejs_image,
            managed_by=labels.ROUTER_NAME,
            announce=announce,
            endpoint=self.function_endpoint,
            version=fn.version,
        )
        if not uid:
            body["metadata"].pop("ownerReferences", None)
        token = token_of(body)
        try:
            await self.kube.create(kube_api.pods(fn.namespace), body)
        except ApiError as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot create the environment pod: {exc.status} {exc.reason}: {exc.body}",
                error_type="PodCreateError",
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot create the environment pod: {type(exc).__name__}: {exc}", error_type="PodCreateError"
            ) from None
        where = PodEnv(fn.namespace, name, labels.ROLE_ON_DEMAND, SOURCE_FRESH)
        self.book.hold(where)
        try:
            address, init = await self._wait_ready(fn, name, pending)
            if init is None:  # listening, waiting for its code
                init, unusable = await self._init(fn, spec, name, address, token)
                if unusable:
                    raise EnvironmentStartError(f"{fn}: environment pod {name} {unusable}")
        except BaseException:
            self.book.let_go(name)
            await self._delete(fn.namespace, name)
            raise
        return EnvironmentHandle(address=address, env_id=name, init_duration=init, token=token, private=where)

    def _token(self, namespace: str, name: str) -> str:
        """The pod's ``env_token`` (from the cache the pod was chosen from)."""
        pod = self.cache.get(namespace, name)
        return token_of(pod) if pod is not None else ""

    async def _wait_ready(self, fn: FunctionRef, name: str, pending: Pending) -> tuple[str, float | None]:
        """Follow the new pod through the cache (and its announce) until its runtime
        answers ``/readyz``, as ``claims.fresh_step`` says, one step at a time: with
        its Init's duration when it initialised itself (code in the image), with None
        when it listens and waits for ``/init``. A pod never seen within the start's
        deadline (the pool's init timeout, by cancellation) is never waited for longer."""
        seen = False
        answer: Answer | None = None
        while True:
            pod = self.cache.get(fn.namespace, name)
            seen = seen or pod is not None
            announced = pending.address
            step = claims.fresh_step(
                fn, name, pod=pod, seen=seen, announced=announced, answer=answer, cache_error=self.cache.error
            )
            match step:
                case Probe():
                    status, info = await self._readyz(step.address)
                    answer = Answer(step.address, step.via_announce, status, info)
                case Distrust():
                    log.warning("%s: the address announced for %s answered as %r; ignored", fn, name, step.answered_as)
                    self.book.distrust(name, step.address)
                    answer = None
                case Fail():
                    if step.annotate:
                        await self._annotate_init_error(fn.namespace, name, step.message)
                    raise EnvironmentStartError(step.message)
                case Ready():
                    return step.address, step.init_seconds
                case Generic():
                    return step.address, None
                case Wait():
                    answer = None
                    timeout = self.poll_interval if step.reprobe else self.max_poll_interval
                    await self._own_change(fn.namespace, name, pending, (_version(pod), announced), timeout)

    async def _own_change(
        self, namespace: str, name: str, pending: Pending, before: tuple[str | None, str | None], timeout: float
    ) -> None:
        """Until the pod ``name`` (its resourceVersion) or its announced address differs
        from ``before``, what the last step was decided on, or ``timeout``. Why not any
        cache change: the cache changes with every environment pod, and a burst of other
        starts must not turn into as many probes of this one."""
        await self.cache.wait_for(
            lambda: (_version(self.cache.get(namespace, name)), pending.address) != before, timeout
        )

    # -- announces ------------------------------------------------------------------------

    def announced(self, env_id: str, address: str, token: str, peer: str | None) -> bool:
        """A fresh pod's runtime says it listens at ``address`` (see the module's
        docstring). True when accepted (``claims.accept_announce``): a pod this router
        starts, its token, and a connection from the announced IP."""
        ok = claims.accept_announce(self.book.token_of(env_id), address, token, peer)
        self._announce_counts["accepted" if ok else "refused"] += 1
        if not ok:
            log.warning("refused an announce for %r at %r from %r", env_id, address, peer)
            return False
        self.book.announce(env_id, address)
        task = asyncio.get_running_loop().create_task(self.cache.poke())  # the start looks now
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)
        return True

    # -- draining -------------------------------------------------------------------------

    def _ensure_released_loop(self) -> None:
        if self._released_task is None or self._released_task.done():
            self._released_task = asyncio.get_running_loop().create_task(
                self._released_loop(), name="kubernetes-backend-released"
            )

    async def _released_loop(self) -> None:
        """On the cache's changes: report environments whose pod ended
        (``claims.lost_environments``); delete released provisioned pods once the
        operator labels them draining, forget those that are gone
        (``claims.released_actions``)."""
        while True:
            seen = self.cache.version
            self._report_lost()
            await self._delete_released()
            await self.cache.next_change(seen, 30.0)

    def _report_lost(self) -> None:
        if not self.book.serving:
            return
        now_seen, lost = claims.lost_environments(self.book.serving, self.book.where, self.cache.get)
        self.book.saw(now_seen)
        for env_id in lost:
            self.book.lost(env_id)
            log.warning("environment pod %s ended under the router; retiring it", env_id)
            if self.lost_listener is not None:
                self.lost_listener(env_id)

    async def _delete_released(self) -> None:
        if not self.book.released:
            return
        forget, delete = claims.released_actions(self.book.released, self.book.claimed, self.cache.get)
        self.book.forget_released(forget)
        for namespace, name in delete:
            await self._delete(namespace, name)

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
            await self.kube.patch(kube_api.pods(namespace, name), patch, content_type=kube_api.STRATEGIC)
        except Exception as exc:  # best effort: the error is reported to the caller anyway
            log.debug("cannot annotate pod %s/%s: %s", namespace, name, exc)

    async def _delete(self, namespace: str, name: str) -> None:
        """Delete the pod (best effort: gone already is fine; a failure is logged, and
        an orphan left by it is the operator's to collect)."""
        try:
            await self.kube.delete(kube_api.pods(namespace, name), grace_period_seconds=self.delete_grace_seconds)
        except ApiError as exc:
            if exc.status != 404:
                log.warning("deleting pod %s/%s failed: %s %s", namespace, name, exc.status, exc.reason)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("deleting pod %s/%s failed: %s", namespace, name, exc)


def _version(pod: Mapping | None) -> str | None:
    return (pod.get("metadata") or {}).get("resourceVersion") if pod is not None else None
