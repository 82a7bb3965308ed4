"""One invocation, end to end, independent of HTTP: admit -> lease -> run -> release.

Why apart from the HTTP handlers: the synchronous Invoke API and the async dispatcher
must take exactly the same path (same limits, same pools, same metrics), and only differ
in what they do with the outcome. ``Engine.invoke`` returns an ``InvokeResult`` that
already carries the HTTP status, body and headers of the Lambda API answer, plus a
classification (success / function_error / throttled / error) for the async retry rules.

It also owns the mapping from a registry ``Snapshot`` to live pools and limits
(``apply``), and the reaper loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from lambdakube import provisioning
from lambdakube.models import LATEST, ConcurrencyQuotaSpec, FunctionSpec
from lambdakube.resources import env_token
from lambdakube_router.backends.base import Backend, EnvironmentStartError, FunctionRef
from lambdakube_router.activity import Activity
from lambdakube_router.limits import NamespaceLimits, Throttle
from lambdakube_router.metrics import FunctionMetrics, Metrics
from lambdakube_router.names import INVOKED_ARN_HEADER, PROVISIONED_HEADER
from lambdakube_router.pool import Environment, Lease, LeaseTimeout, Pool, PoolClosed, Throttled
from lambdakube_router.qualifiers import resolve
from lambdakube_router.snapshot import AliasEntry, FunctionEntry, Snapshot, VersionEntry
from lambdakube_router.runtime_client import EnvConnection, EnvironmentGone, NotDelivered

log = logging.getLogger(__name__)

SUCCESS = "success"
FUNCTION_ERROR = "function_error"
THROTTLED = "throttled"
ERROR = "error"
NOT_FOUND = "not_found"

_JSON = "application/json"

#: Environments one request is sent to at most when they cannot be connected to (each
#: one retired): a request is delivered at most once, so trying the next is safe, and a
#: bound keeps a function whose every start dies at once from spinning.
MAX_DELIVERY_ATTEMPTS = 3

#: Runtime response headers copied into the API answer (runtime name -> API name).
#: On an invocation stopped because another one of its environment timed out.
RECYCLED_BY = "X-Lambdakube-Recycled-By"
_PASSED_THROUGH = (
    ("x-log-result", "X-Amz-Log-Result"),
    ("x-run-duration-ms", "X-Run-Duration-Ms"),
    ("x-billed-duration-ms", "X-Billed-Duration-Ms"),
    ("x-max-memory-used-mb", "X-Max-Memory-Used-Mb"),
    # The request whose timeout recycled this invocation's environment (slots > 1).
    ("x-env-recycled", RECYCLED_BY),
)


@dataclass(slots=True)
class InvokeResult:
    status: int
    body: bytes
    headers: dict[str, str]
    result: str
    error_type: str | None = None
    throttle: Throttle | None = None
    content_type: str = _JSON

    @property
    def retryable(self) -> bool:
        """For async delivery: throttles and router/environment failures are retried
        with backoff without consuming the function-error retries."""
        return self.result in (THROTTLED, ERROR, NOT_FOUND)


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(
        {
            "Type": "User" if error_type != "ServiceException" else "Service",
            "errorType": error_type,
            "errorMessage": message,
            "message": message,
        },
        separators=(",", ":"),
    ).encode()


def error_result(
    status: int, error_type: str, message: str, result: str = ERROR, headers: dict[str, str] | None = None
) -> InvokeResult:
    h = {"x-amzn-ErrorType": error_type}
    if headers:
        h.update(headers)
    return InvokeResult(status, error_body(error_type, message), h, result, error_type)


def throttle_result(throttle: Throttle) -> InvokeResult:
    n = str(throttle.retry_after_seconds)
    body = (
        '{"Type":"User","message":"Rate Exceeded.","Reason":"'
        + throttle.reason
        + '","retryAfterSeconds":"'
        + n
        + '","errorType":"TooManyRequestsException"}'
    ).encode()
    headers = {"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": n}
    return InvokeResult(429, body, headers, THROTTLED, "TooManyRequestsException", throttle)


def not_found_result(namespace: str, name: str, qualifier: str | None = None) -> InvokeResult:
    shown = f"{namespace}/{name}" + (f":{qualifier}" if qualifier else "")
    return error_result(404, "ResourceNotFoundException", f"Function not found: {shown}", result=NOT_FOUND)


@dataclass(frozen=True, slots=True)
class Call:
    """One invocation as the engine's steps pass it on (attempts share it: every
    environment it is sent to sees the same request id)."""

    payload: bytes
    arrival: float
    request_id: str
    client_context: str | None
    log_tail: bool
    #: The ARN the caller invoked (``names.invoked_function_arn``); None: the runtime's own.
    invoked_arn: str | None = None


@dataclass
class Target:
    """What one invocation runs: a version's pool and the spec its environments have."""

    version: str
    pool: Pool

    @property
    def spec(self) -> FunctionSpec:
        return self.pool.spec


@dataclass
class FunctionState:
    entry: FunctionEntry
    pool: Pool  # $LATEST's
    limits: NamespaceLimits
    metrics: FunctionMetrics
    activity: Activity = field(default_factory=Activity)  # for Function status and Events
    #: Published versions and aliases, as the snapshot has them.
    versions: dict[int, VersionEntry] = field(default_factory=dict)
    aliases: dict[str, AliasEntry] = field(default_factory=dict)
    #: The pools of the versions invoked so far (a version's environments run its own
    #: code); they share the function's limits: reserved concurrency and the quota
    #: count the function, whichever version runs.
    version_pools: dict[int, Pool] = field(default_factory=dict)
    #: Each qualifier's provisioned concurrency (a version's number or an alias) and the
    #: wall time the router first saw that value (Lambda's LastModified).
    provisioned_configs: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def spec(self) -> FunctionSpec:
        return self.entry.spec

    @property
    def ref(self) -> FunctionRef:
        return self.entry.ref

    def pools(self) -> list[Pool]:
        return [self.pool, *self.version_pools.values()]

    def provisioned(self) -> dict[str, int]:
        """Provisioned environments per version: the Function's own for ``$LATEST``, each
        version's and its aliases' share for the published ones."""
        return provisioning.by_version(
            self.spec.provisioned_concurrency,
            {n: v.spec.provisioned_concurrency for n, v in self.versions.items()},
            [a.spec for a in self.aliases.values()],
        )

    def version_spec(self, number: int) -> FunctionSpec:
        """What version ``number``'s environments run: its snapshot, the Function's
        scaling, and its own provisioned concurrency."""
        return self.spec.at_version(self.versions[number].spec.config, self.provisioned().get(str(number), 0))


@dataclass
class EngineSettings:
    invoke_grace_seconds: float = 2.0
    init_timeout_seconds: float = 30.0
    reap_interval_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    #: Draws for alias routing (``qualifiers.pick_version``); seeded in tests.
    random: random.Random = field(default_factory=random.Random)


@dataclass
class Engine:
    backend: Backend
    metrics: Metrics
    settings: EngineSettings = field(default_factory=EngineSettings)
    functions: dict[tuple[str, str], FunctionState] = field(default_factory=dict)
    namespaces: dict[str, NamespaceLimits] = field(default_factory=dict)
    _closing: list[asyncio.Task] = field(default_factory=list)
    _reaper: asyncio.Task | None = None
    _rejected_logged: dict[tuple[str, str], str] = field(default_factory=dict)
    #: ``wait_applied``'s waiters: (condition, future), resolved by ``apply``.
    _applied_waiters: list[tuple[Callable[[], bool], asyncio.Future]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backend.lost_listener = self._env_lost

    def _env_lost(self, env_id: str) -> None:
        """The backend saw an environment die by itself: its pool retires it (a linear
        search: deaths are rare, and the backend does not know which function it ran)."""
        for state in self.functions.values():
            for pool in state.pools():
                if pool.lost(env_id):
                    log.warning("%s: environment %s died by itself; retired", pool.fn, env_id)
                    return

    # -- registry -> pools -------------------------------------------------------------

    def apply(self, snap: Snapshot) -> None:
        """Make the live pools and limits match a registry snapshot."""
        now = self.settings.clock()
        for ns in snap.namespaces() | set(self.namespaces):
            limits = self.namespaces.get(ns)
            if limits is None:
                limits = self.namespaces[ns] = NamespaceLimits(ns)
            quota = snap.quotas.get(ns, ConcurrencyQuotaSpec())
            if quota != limits.quota:
                limits.set_quota(quota, now)
            limits.set_published(snap.quota_status)  # Kubernetes: the operator's reservations
        # Limits first, one replan per changed namespace (not one per function), then
        # the pools, which may take tokens (provisioned starts) under the new plan.
        replan: set[str] = set()
        pool_work: list[Callable[[], object]] = []
        for key in [k for k in self.functions if k not in snap.functions]:
            state = self.functions.pop(key)
            state.limits.remove_function(key[1], replan=False)
            replan.add(key[0])
            self.metrics.forget(*key)
            for pool in state.pools():
                self._closing.append(asyncio.get_running_loop().create_task(pool.close()))
            log.info("function %s/%s removed", *key)
        for key, entry in snap.functions.items():
            known = self.functions.get(key)
            limits = self.namespaces[key[0]]
            if known is None:
                limits.set_function(key[1], entry.spec, now, replan=False)
                replan.add(key[0])
                pool = Pool(
                    entry.ref,
                    entry.spec,
                    self.backend,
                    take_token=functools.partial(_take_token, limits, key[1]),
                    clock=self.settings.clock,
                    init_timeout=self.settings.init_timeout_seconds,
                )
                known = self.functions[key] = FunctionState(entry, pool, limits, self.metrics.for_function(*key))
                pool_work.append(pool.ensure_provisioned)
                log.info("function %s/%s registered", *key)
            elif entry != known.entry:
                known.entry = entry
                limits.set_function(key[1], entry.spec, now, replan=False)
                replan.add(key[0])
                pool_work.append(functools.partial(known.pool.update_spec, entry.spec))
                log.info("function %s/%s updated", *key)
            self._apply_versions(known, snap.versions.get(key, {}), snap.aliases.get(key, {}), pool_work)
        for ns in replan:
            self.namespaces[ns].replan()
        for work in pool_work:
            work()
        for ns, limits in self.namespaces.items():
            for name, reason in limits.plan.rejected.items():
                if self._rejected_logged.get((ns, name)) != reason:  # log changes only
                    log.warning("%s/%s: reservation rejected: %s", ns, name, reason)
            self._rejected_logged = {k: v for k, v in self._rejected_logged.items() if k[0] != ns}
            self._rejected_logged.update({(ns, n): r for n, r in limits.plan.rejected.items()})
        self._wake_applied()

    def _apply_versions(
        self,
        state: FunctionState,
        versions: dict[int, VersionEntry],
        aliases: dict[str, AliasEntry],
        pool_work: list[Callable[[], object]],
    ) -> None:
        """A function's versions and aliases as the snapshot has them: the pools of
        versions gone are closed; the others follow the Function's scaling fields."""
        state.versions, state.aliases = dict(versions), dict(aliases)
        configs = {str(n): v.spec.provisioned_concurrency for n, v in versions.items()}
        configs |= {name: a.spec.provisioned_concurrency for name, a in aliases.items()}
        now, seen = self.settings.wall_clock(), state.provisioned_configs
        state.provisioned_configs = {
            q: seen[q] if q in seen and seen[q][0] == n else (n, now) for q, n in configs.items() if n
        }
        for number in [n for n in state.version_pools if n not in versions]:
            pool = state.version_pools.pop(number)
            self._closing.append(asyncio.get_running_loop().create_task(pool.close()))
            log.info("%s: version %d removed", state.ref, number)
        for number, pool in state.version_pools.items():
            spec = state.version_spec(number)
            if spec != pool.spec:
                pool_work.append(functools.partial(pool.update_spec, spec))
        # A version with provisioned concurrency gets its pool (and its environments) now,
        # not at its first invoke: the first invoke must find them initialised.
        for version in state.provisioned():
            if version != LATEST and int(version) not in state.version_pools and self.backend.runs_versions:
                pool_work.append(self.target(state, version).pool.ensure_provisioned)

    def target(self, state: FunctionState, version: str) -> Target:
        """The pool of ``version`` (``$LATEST`` or a published number), started at its
        first invocation."""
        if version == LATEST:
            return Target(LATEST, state.pool)
        number = int(version)
        pool = state.version_pools.get(number)
        if pool is None:
            ref = state.ref
            pool = state.version_pools[number] = Pool(
                FunctionRef(ref.namespace, ref.name, ref.uid, version),
                state.version_spec(number),
                self.backend,
                take_token=functools.partial(_take_token, state.limits, ref.name),
                clock=self.settings.clock,
                init_timeout=self.settings.init_timeout_seconds,
            )
            log.info("%s: version %d's pool started", ref, number)
        return Target(version, pool)

    def get(self, namespace: str, name: str) -> FunctionState | None:
        return self.functions.get((namespace, name))

    async def wait_applied(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until a snapshot applied makes ``condition`` true (at most ``timeout``
        seconds): a write through the API server is read back from the watch, so a
        Lambda write call answers once the router's own view has it."""
        if condition():
            return True
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._applied_waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._applied_waiters:
                self._applied_waiters.remove(waiter)

    def _wake_applied(self) -> None:
        for condition, future in list(self._applied_waiters):
            if not future.done() and condition():
                future.set_result(None)

    # -- the invocation ----------------------------------------------------------------

    async def invoke(
        self,
        namespace: str,
        name: str,
        payload: bytes,
        *,
        arrival: float | None = None,
        request_id: str | None = None,
        client_context: str | None = None,
        log_tail: bool = False,
        invoked_arn: str | None = None,
        qualifier: str | None = None,
    ) -> InvokeResult:
        clock = self.settings.clock
        arrival = clock() if arrival is None else arrival
        request_id = request_id or str(uuid.uuid4())
        state = self.functions.get((namespace, name))
        if state is None:
            return not_found_result(namespace, name, qualifier)
        aliases = {alias_name: a.spec for alias_name, a in state.aliases.items()}
        resolved = resolve(qualifier, set(state.versions), aliases, self.settings.random.random())
        if resolved.missing is not None:
            return not_found_result(namespace, name, resolved.missing)
        if resolved.version != LATEST and not self.backend.runs_versions:
            return error_result(
                400,
                "InvalidParameterValueException",
                f"{namespace}/{name}:{qualifier}: this router's backend does not run published versions;"
                " invoke $LATEST",
            )
        target = self.target(state, resolved.version)
        fm = state.metrics
        throttle = state.limits.try_acquire(name)
        if throttle is not None:
            fm.throttle(throttle.reason)
            state.activity.throttled(throttle.reason)
            fm.result(THROTTLED)
            return throttle_result(throttle)
        try:
            call = Call(payload, arrival, request_id, client_context, log_tail, invoked_arn)
            result = await self._run(state, target, call)
        finally:
            state.limits.release(name)
        fm.result(result.result)
        result.headers["X-Amz-Request-Id"] = request_id
        result.headers["X-Amz-Executed-Version"] = target.version  # the router knows which ran
        return result

    async def _run(self, state: FunctionState, target: Target, call: Call) -> InvokeResult:
        """Lease, send, release; sent again to another environment (at most
        ``MAX_DELIVERY_ATTEMPTS`` in all, within the first lease's deadline) when an
        environment cannot be connected to: it died while idle and nothing was sent."""
        spec = target.spec
        fm = state.metrics
        settings = self.settings
        budget = settings.init_timeout_seconds + spec.timeout_seconds + settings.invoke_grace_seconds
        deadline = settings.clock() + budget
        failure: NotDelivered | None = None
        for attempt in range(1, MAX_DELIVERY_ATTEMPTS + 1):
            try:
                return await self._attempt(state, target, call, deadline)
            except NotDelivered as exc:
                log.info("%s: request %s not delivered (%s); attempt %d", state.ref, call.request_id, exc, attempt)
                failure = exc
                if attempt < MAX_DELIVERY_ATTEMPTS:
                    fm.redeliveries.inc()
        return error_result(
            502,
            "EnvironmentFailureException",
            f"{state.ref}: no execution environment could be connected to in {MAX_DELIVERY_ATTEMPTS} attempts"
            f" (the request was not delivered): {failure}",
        )

    async def _attempt(self, state: FunctionState, target: Target, call: Call, deadline: float) -> InvokeResult:
        """One environment for the request; raises NotDelivered (the environment is
        retired) when it cannot be connected to."""
        spec = target.spec
        pool = target.pool
        fm = state.metrics
        grace = self.settings.invoke_grace_seconds
        clock = self.settings.clock
        lease_requested = clock()
        try:
            lease = await pool.lease(max(0.0, deadline - lease_requested))
        except Throttled as exc:
            fm.throttle(exc.throttle.reason)
            state.activity.throttled(exc.throttle.reason)
            return throttle_result(exc.throttle)
        except EnvironmentStartError as exc:
            return error_result(502, _init_error_type(exc), exc.message)
        except LeaseTimeout as exc:
            return error_result(504, "InvokeTimeoutException", str(exc))
        except PoolClosed:
            return not_found_result(state.ref.namespace, state.ref.name)
        leased_at = clock()
        queue_wait = leased_at - call.arrival
        fm.queue_wait.observe(queue_wait)
        source = environment_source(lease)
        if lease.cold_start:
            fm.cold_starts.inc()
            state.activity.cold_start(lease.init_duration)
            fm.cold_start(source, leased_at - lease_requested)
            if lease.init_duration is not None:
                fm.init_duration.observe(lease.init_duration)
        if lease.spillover:
            fm.spillover.inc()
        env = lease.env
        healthy = False
        try:
            result, healthy = await self._send(env, spec, call, grace, pool.fn)
        finally:
            pool.release(env, healthy=healthy)
        h = result.headers
        if RECYCLED_BY in h:
            fm.recycled.inc()
        h["X-Cold-Start"] = "true" if lease.cold_start else "false"
        if lease.cold_start and lease.init_duration is not None:
            h["X-Init-Duration-Ms"] = f"{lease.init_duration * 1000:.3f}"
        h["X-Queue-Wait-Ms"] = f"{queue_wait * 1000:.3f}"
        h["X-Environment-Id"] = env.env_id
        h["X-Environment-Source"] = source
        run_ms = h.get("X-Run-Duration-Ms")
        if run_ms is None:
            run = clock() - leased_at
            h["X-Run-Duration-Ms"] = f"{run * 1000:.3f}"
            fm.run_duration.observe(run)
        else:
            try:
                fm.run_duration.observe(float(run_ms) / 1000)
            except ValueError:
                pass
        return result

    async def _send(
        self,
        env: Environment,
        spec: FunctionSpec,
        call: Call,
        grace: float,
        ref: FunctionRef,
    ) -> tuple[InvokeResult, bool]:
        conn: EnvConnection | None = env.conn
        shared = conn is not None and conn.busy  # another invocation on it (slots > 1)
        if conn is None:
            conn = env.conn = EnvConnection.for_address(env.address)
        elif shared:
            conn = env.spare.pop() if env.spare else EnvConnection.for_address(env.address)
        deadline_ms = int((self.settings.wall_clock() + spec.timeout_seconds) * 1000)
        headers = [("X-Request-Id", call.request_id), ("X-Env-Id", env.env_id), ("X-Deadline-Ms", str(deadline_ms))]
        token = env.handle.token if env.handle is not None else ""
        if token:
            headers.append((env_token.HEADER, token))
        if call.client_context is not None:
            headers.append(("X-Client-Context", call.client_context))
        if call.log_tail:
            headers.append(("X-Log-Type", "Tail"))
        if call.invoked_arn is not None:
            headers.append((INVOKED_ARN_HEADER, call.invoked_arn))
        if env.provisioned:
            headers.append((PROVISIONED_HEADER, "true"))
        try:
            resp = await conn.request("/invoke", call.payload, headers, spec.timeout_seconds + grace)
        except NotDelivered:
            raise  # the caller releases the environment unhealthy and tries another
        except EnvironmentGone as exc:
            log.warning("%s: environment %s failed mid-request: %s", ref, env.env_id, exc)
            return error_result(
                502,
                "EnvironmentFailureException",
                f"the execution environment {env.env_id} of {ref} failed during the invocation"
                f" ({exc}); it will be replaced",
            ), False
        except TimeoutError:
            log.warning("%s: environment %s did not answer within timeout+grace", ref, env.env_id)
            return error_result(
                504,
                "InvokeTimeoutException",
                f"{ref}: the environment {env.env_id} did not answer within the function timeout"
                f" ({spec.timeout_seconds}s) plus {grace:g}s; it was retired",
            ), False
        finally:
            if shared:
                env.spare.append(conn)
        rh = resp.headers
        healthy = rh.get("x-env-unhealthy", "").lower() != "true"
        status = resp.status
        if status == 200:
            h = {"X-Amz-Executed-Version": rh.get("x-executed-version", "$LATEST")}
            fn_error = rh.get("x-function-error")
            if fn_error:
                h["X-Amz-Function-Error"] = fn_error
            for runtime_name, api_name in _PASSED_THROUGH:
                value = rh.get(runtime_name)
                if value is not None:
                    h[api_name] = value
            ctype = rh.get("content-type", _JSON)
            return InvokeResult(200, resp.body, h, FUNCTION_ERROR if fn_error else SUCCESS, content_type=ctype), healthy
        message = _runtime_message(resp.body)
        if status == 421:  # another environment now has this address: nothing ran
            raise NotDelivered(f"{env.address} is no longer environment {env.env_id}: {message}")
        if status == 409:
            log.error("BUG: %s: environment %s answered EnvironmentBusy", ref, env.env_id)
            return error_result(
                502, "EnvironmentFailureException", f"environment {env.env_id} was busy: {message}"
            ), False
        if status == 400:
            return error_result(400, "InvalidRequestContentException", message), healthy
        if status == 413:
            return error_result(413, "RequestTooLargeException", message), healthy
        return error_result(
            502,
            "EnvironmentFailureException",
            f"the execution environment {env.env_id} of {ref} answered {status}: {message}",
        ), False

    # -- background --------------------------------------------------------------------

    def start_background(self) -> None:
        self.backend.prewarm()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval_seconds)
            self.reap(self.settings.clock())

    def reap(self, now: float) -> int:
        n = 0
        for state in list(self.functions.values()):
            for pool in state.pools():
                n += len(pool.reap(now))
        return n

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        pools = [pool.close() for s in self.functions.values() for pool in s.pools()]
        await asyncio.gather(*pools, *self._closing, return_exceptions=True)
        self.functions.clear()
        await self.backend.close()

    # -- introspection -----------------------------------------------------------------

    def describe(self, namespace: str, name: str) -> dict | None:
        state = self.get(namespace, name)
        if state is None:
            return None
        return {
            "namespace": namespace,
            "name": name,
            "arn": state.ref.arn,
            "source": state.entry.source,
            "pool": state.pool.describe(),
            "versions": {str(n): pool.describe() for n, pool in sorted(state.version_pools.items())},
            "concurrency": state.limits.describe(name),
        }

    def state_rows(self):
        for (ns, name), st in self.functions.items():
            yield ns, name, st.pool.counts(), st.limits.functions[name].in_flight if name in st.limits.functions else 0

    def namespace_rows(self):
        for ns, limits in self.namespaces.items():
            yield ns, limits.in_flight


def environment_source(lease: Lease) -> str:
    """``X-Environment-Source``: ``warm`` or ``provisioned`` for a reused environment;
    for a cold start, where the backend got it: ``generic`` (a pre-warmed environment
    specialised for this function) or ``fresh`` (a new process or pod)."""
    env = lease.env
    if not lease.cold_start:
        return "provisioned" if env.provisioned else "warm"
    private = env.handle.private if env.handle is not None else None
    return getattr(private, "source", None) or "fresh"


def _init_error_type(exc: EnvironmentStartError) -> str:
    return {"InitTimeout": "InitTimeoutException", "UnsupportedImage": "InvalidRuntimeException"}.get(
        exc.error_type, "InitError"
    )


def _runtime_message(body: bytes) -> str:
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            return f"{obj.get('errorType', '')}: {obj.get('errorMessage', '')}".strip(": ")
    except ValueError:
        pass
    return body[:500].decode(errors="replace")


def _take_token(limits, function: str, now: float):
    """The pool's scaling-rate token, from its namespace's limits."""
    return limits.take_scaling_token(function, now)
