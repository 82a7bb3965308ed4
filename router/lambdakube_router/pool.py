"""One function's pool of execution environments: the heart of "one request per env".

States: ``starting -> idle <-> busy -> draining -> dead``.

Why direct hand-off instead of an event that waiters re-check: when an environment
becomes idle (started, or released by a request) it is given to the oldest waiter in
the same step, by resolving that waiter's future with it. There is no window in which
two waiters can both see the same idle env, and no wakeup can be lost, because nobody
"wakes up to look"; the only race left is a waiter that is cancelled (client went away,
deadline passed) at the moment it is handed an env, and ``lease`` gives such an env
straight back. Every wait has a deadline.

Cold starts: a request that finds no idle env either counts on an env that is already
starting and not yet claimed by an earlier waiter, or takes a scaling token (the
function's token bucket, see ``limits``) and starts a new one. Whichever env becomes
idle first goes to the oldest waiter, so a waiter may end up on a warm env that was
released meanwhile (then it is not a cold start, and the fresh env serves someone else).

Provisioned environments are started in the background to keep ``provisionedConcurrency``
initialised at all times, are preferred when leasing, and are never reaped. On-demand
environments idle longer than ``idleTimeoutSeconds`` are reaped by ``reap(now)``.

A backend may mark environments as draining (``is_draining(handle)``, optional: the
kubernetes backend reports the operator's ``draining`` label of a rollout): such an
environment is never leased again, and is retired when it is released or found idle
(``reap``, or a lease that pops it). When the pool closes, provisioned environments go
back through the backend's optional ``release(handle)`` instead of ``stop`` (the
kubernetes backend's provisioned pods are the operator's to keep).

Spec changes: environments of the old spec are never leased again once the pool has the
new spec (new invocations run the new code: on-demand cold starts until provisioned
environments of the new spec are up), and ``provisionedConcurrency`` counts only
environments of the current spec. Healthy provisioned environments of the old spec go
back through ``release`` too, not ``stop``: on kubernetes the operator rolls provisioned
pods surge-first (new pods first, then it labels the old ones draining), so the router
deleting them itself would shrink the function before the new pods are Ready.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdakube.backoff import Backoff
from lambdakube.models import FunctionSpec
from lambdakube.resources import labels, spec_hash
from lambdakube.resources import new_env_id as resources_env_id
from lambdakube_router.backends.base import (
    Backend,
    EnvironmentHandle,
    EnvironmentStartError,
    FunctionRef,
)
from lambdakube_router.limits import Throttle

log = logging.getLogger(__name__)


class EnvState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    DEAD = "dead"


@dataclass(eq=False)
class Environment:
    env_id: str
    provisioned: bool
    generation: int
    state: EnvState = EnvState.STARTING
    handle: EnvironmentHandle | None = None
    created_at: float = 0.0
    idle_since: float = 0.0
    invocations: int = 0
    leased: bool = False
    #: Released unhealthy: stopped, never handed back to the backend's owner.
    broken: bool = False
    #: A provisioned env beyond a lowered target: handed back to the backend's owner
    #: (the operator picks which pods go), not stopped by the router.
    surplus: bool = False
    #: The router's connection to this env (runtime_client.EnvConnection), closed on stop.
    conn: Any = field(default=None, repr=False)

    @property
    def address(self) -> str:
        assert self.handle is not None
        return self.handle.address

    def describe(self) -> dict:
        return {
            "id": self.env_id,
            "state": self.state.value,
            "role": "provisioned" if self.provisioned else "on-demand",
            "address": self.handle.address if self.handle else None,
            "invocations": self.invocations,
            "initDurationMs": round(self.handle.init_duration * 1000, 3) if self.handle else None,
        }


@dataclass(frozen=True)
class Lease:
    env: Environment
    cold_start: bool
    init_duration: float | None  # seconds, cold starts only
    spillover: bool


class Throttled(Exception):
    def __init__(self, throttle: Throttle) -> None:
        super().__init__(throttle.reason)
        self.throttle = throttle


class LeaseTimeout(Exception):
    """No environment became available before the deadline."""


class PoolClosed(Exception):
    """The function was removed (or the router is stopping) while waiting."""


def new_env_id(name: str, provisioned: bool = False) -> str:
    """The one env-id generator (``lambdakube.resources.new_env_id``: also the pod name)."""
    return resources_env_id(name, labels.ROLE_PROVISIONED if provisioned else labels.ROLE_ON_DEMAND)


@dataclass
class PoolStats:
    cold_starts: int = 0
    warm_starts: int = 0
    spillovers: int = 0
    start_failures: int = 0
    reaped: int = 0
    retired_unhealthy: int = 0
    last_start_error: str | None = None


class Pool:
    def __init__(
        self,
        fn: FunctionRef,
        spec: FunctionSpec,
        backend: Backend,
        *,
        take_token: Callable[[float], Throttle | None],
        clock: Callable[[], float] = time.monotonic,
        init_timeout: float = 30.0,
        provisioned_retry_max: float = 30.0,
    ) -> None:
        self.fn = fn
        self.spec = spec
        self.backend = backend
        self.take_token = take_token
        self.clock = clock
        self.init_timeout = init_timeout
        self.generation = 0
        self.envs: dict[str, Environment] = {}
        self.stats = PoolStats()
        self._idle_provisioned: list[Environment] = []  # stacks: most recently used last
        self._idle_on_demand: list[Environment] = []
        self._waiters: collections.deque[asyncio.Future[Environment]] = collections.deque()
        self._starting = 0
        #: On-demand starts only: what a waiting request may count on. A provisioned
        #: slot waits for the operator's pod, as long as that takes, so a request never
        #: waits behind one (Lambda: beyond the ready provisioned envs, spill over).
        self._starting_on_demand = 0
        #: Start tasks of provisioned slots (env id -> task): cancelled when the spec
        #: changes, since they wait for pods of the old spec that will not come.
        self._claims: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._start_tasks: set[asyncio.Task] = set()
        self._closed = False
        self._provisioned_backoff = 0.0
        self._provisioned_retry_max = provisioned_retry_max
        self._refill_handle: asyncio.TimerHandle | None = None

    # -- leasing -----------------------------------------------------------------------

    async def lease(self, timeout: float) -> Lease:
        """An environment for exactly one request; ``release`` it when done.

        Raises Throttled (no scaling token for a needed cold start), EnvironmentStartError
        (the cold start this request waited for failed), LeaseTimeout, PoolClosed.
        """
        if self._closed:
            raise PoolClosed(str(self.fn))
        env = self._pop_idle()
        if env is not None:
            return self._lease(env)
        if self._starting_on_demand <= len(self._waiters):
            # Every on-demand env already starting is claimed by an earlier waiter: start another.
            throttle = self.take_token(self.clock())
            if throttle is not None:
                raise Throttled(throttle)
            self._start(provisioned=False)
        fut: asyncio.Future[Environment] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                env = await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Handed an env in the same instant we were cancelled: give it back.
                handed = fut.result()
                handed.leased = False
                self._make_idle(handed)
            else:
                fut.cancel()
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            if isinstance(exc, TimeoutError):
                raise LeaseTimeout(f"no environment for {self.fn} within {timeout:.1f}s") from None
            raise
        return self._lease(env, handed=True)

    def _lease(self, env: Environment, handed: bool = False) -> Lease:
        if not handed:
            assert env.state is EnvState.IDLE, env.state
            assert not env.leased, f"environment {env.env_id} leased twice"
            env.state = EnvState.BUSY
            env.leased = True
        assert env.state is EnvState.BUSY and env.leased
        cold = env.invocations == 0 and not env.provisioned
        if cold:
            self.stats.cold_starts += 1
        else:
            self.stats.warm_starts += 1
        spill = self.spec.provisioned_concurrency > 0 and not env.provisioned
        if spill:
            self.stats.spillovers += 1
        init = env.handle.init_duration if (cold and env.handle) else None
        return Lease(env, cold, init, spill)

    def release(self, env: Environment, healthy: bool = True) -> None:
        """Give the environment back: idle again, or retired if unhealthy or outdated."""
        assert env.leased, f"release of {env.env_id} which is not leased"
        env.leased = False
        if env.state is not EnvState.BUSY:  # retired under us (pool closing)
            return
        env.invocations += 1
        if not healthy:
            self.stats.retired_unhealthy += 1
            env.broken = True
        if (
            not healthy
            or self._closed
            or env.generation != self.generation
            or self._excess_provisioned(env)
            or self._draining(env)
        ):
            self._retire(env)
        else:
            self._make_idle(env)

    def _pop_idle(self) -> Environment | None:
        for idle in (self._idle_provisioned, self._idle_on_demand):
            while idle:
                env = idle.pop()
                if not self._draining(env):
                    return env
                self._retire(env)
        return None

    def _draining(self, env: Environment) -> bool:
        return env.handle is not None and self.backend.is_draining(env.handle)

    def _make_idle(self, env: Environment) -> None:
        """An env is free: hand it to the oldest live waiter, or park it as idle."""
        if self._closed or env.generation != self.generation:
            self._retire(env)
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                env.state = EnvState.BUSY
                env.leased = True
                fut.set_result(env)
                return
        env.state = EnvState.IDLE
        env.idle_since = self.clock()
        (self._idle_provisioned if env.provisioned else self._idle_on_demand).append(env)

    # -- starting and stopping ---------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start(self, provisioned: bool) -> Environment:
        env = Environment(
            env_id=new_env_id(self.fn.name, provisioned),
            provisioned=provisioned,
            generation=self.generation,
            created_at=self.clock(),
        )
        self.envs[env.env_id] = env
        self._starting += 1
        if not provisioned:
            self._starting_on_demand += 1
        task = self._spawn(self._run_start(env, self.spec))
        self._start_tasks.add(task)
        task.add_done_callback(self._start_tasks.discard)
        if provisioned:
            self._claims[env.env_id] = task
            env_id = env.env_id

            def forget(_: asyncio.Task) -> None:
                self._claims.pop(env_id, None)

            task.add_done_callback(forget)
        return env

    def _start_done(self, env: Environment) -> None:
        self._starting -= 1
        if not env.provisioned:
            self._starting_on_demand -= 1

    async def _run_start(self, env: Environment, spec: FunctionSpec) -> None:
        error: EnvironmentStartError | None = None
        try:
            # A cold start has the init timeout. A provisioned claim follows the
            # operator's pod however long it takes to be Ready (a burst of pods on one
            # node takes longer than any fixed guess); an Init error still fails it.
            async with asyncio.timeout(None if env.provisioned else self.init_timeout):
                handle = await self.backend.start(self.fn, spec, env.env_id, env.provisioned)
        except EnvironmentStartError as exc:
            error = exc
        except TimeoutError:
            error = EnvironmentStartError(
                f"environment {env.env_id} was not ready within {self.init_timeout:.0f}s",
                error_type="InitTimeout",
            )
        except asyncio.CancelledError:
            self._start_done(env)
            env.state = EnvState.DEAD
            self.envs.pop(env.env_id, None)
            raise
        except Exception as exc:  # a backend bug must not leave waiters hanging
            log.exception("backend failed to start %s", env.env_id)
            error = EnvironmentStartError(f"{type(exc).__name__}: {exc}")
        self._start_done(env)
        if error is not None:
            self._start_failed(env, error)
            return
        env.handle = handle
        if handle.env_id != env.env_id:
            # The backend chose the id (a pre-warmed generic environment keeps the one it
            # was spawned with, which the runtime reports): use it everywhere from now on.
            self.envs.pop(env.env_id, None)
            env.env_id = handle.env_id
            self.envs[env.env_id] = env
        if env.state is not EnvState.STARTING:  # closed meanwhile
            self._spawn(self._stop(env))
            return
        if env.provisioned:
            self._provisioned_backoff = 0.0
        self._make_idle(env)

    def _start_failed(self, env: Environment, error: EnvironmentStartError) -> None:
        env.state = EnvState.DEAD
        self.envs.pop(env.env_id, None)
        self.stats.start_failures += 1
        self.stats.last_start_error = error.message
        log.warning("%s: environment %s failed to start: %s", self.fn, env.env_id, error.message)
        # Waiters beyond what the remaining starts can serve get this start's error.
        while len(self._waiters) > self._starting_on_demand:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        if env.provisioned and not self._closed:
            self._provisioned_backoff = Backoff(0.5, self._provisioned_retry_max).next(self._provisioned_backoff)
            self._schedule_refill(self._provisioned_backoff)

    def _retire(self, env: Environment) -> None:
        if env.state in (EnvState.DRAINING, EnvState.DEAD):
            return
        if env.state is EnvState.IDLE:
            lst = self._idle_provisioned if env.provisioned else self._idle_on_demand
            try:
                lst.remove(env)
            except ValueError:
                pass
        env.state = EnvState.DRAINING
        self._spawn(self._stop(env))
        if env.provisioned and not self._closed:
            self._schedule_refill(0)

    async def _stop(self, env: Environment) -> None:
        env.state = EnvState.DRAINING
        if env.conn is not None:
            env.conn.close()
        hand_back = (
            env.provisioned and not env.broken and (self._closed or env.surplus or env.generation != self.generation)
        )
        try:
            if env.handle is not None and hand_back:
                await self.backend.release(env.handle)
            elif env.handle is not None:
                await self.backend.stop(env.handle)
        except Exception:
            log.exception("%s: stopping environment %s failed", self.fn, env.env_id)
        finally:
            env.state = EnvState.DEAD
            self.envs.pop(env.env_id, None)

    # -- provisioned concurrency -------------------------------------------------------

    def _live_provisioned(self) -> int:
        """Provisioned envs of the current spec (an old one still busy is not counted:
        it is retired when released, and its replacement should start now)."""
        return sum(
            1
            for e in self.envs.values()
            if e.provisioned
            and e.generation == self.generation
            and e.state in (EnvState.STARTING, EnvState.IDLE, EnvState.BUSY)
        )

    def _excess_provisioned(self, env: Environment) -> bool:
        return env.provisioned and self._live_provisioned() > self.spec.provisioned_concurrency

    def ensure_provisioned(self) -> int:
        """Start the provisioned environments that are missing; returns how many."""
        if self._closed:
            return 0
        missing = self.spec.provisioned_concurrency - self._live_provisioned()
        for _ in range(max(0, missing)):
            self._start(provisioned=True)
        if missing < 0:  # target lowered: hand idle extras back now, busy ones on release
            for env in list(self._idle_provisioned)[:-missing]:
                env.surplus = True
                self._retire(env)
        return max(0, missing)

    def _schedule_refill(self, delay: float) -> None:
        if self._refill_handle is not None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._refill_handle = None
            self.ensure_provisioned()

        self._refill_handle = loop.call_later(delay, fire)

    # -- reaping and reconfiguration ---------------------------------------------------

    def reap(self, now: float) -> list[Environment]:
        """Retire on-demand envs idle for longer than ``idleTimeoutSeconds`` (scale to zero)."""
        limit = self.spec.idle_timeout_seconds
        expired = [e for e in self._idle_on_demand if now - e.idle_since >= limit]
        for env in expired:
            self.stats.reaped += 1
            self._retire(env)
        for env in [e for e in self._idle_provisioned + self._idle_on_demand if self._draining(e)]:
            self._retire(env)  # marked draining by the backend (a rollout): not reaping
        return expired

    def update_spec(self, spec: FunctionSpec) -> None:
        """Apply a new spec: envs running the old code drain (idle now, busy on release)."""
        if spec_hash(spec) != spec_hash(self.spec):  # the same test as a pod's spec-hash label
            self.generation += 1
            for env in list(self._idle_provisioned) + list(self._idle_on_demand):
                self._retire(env)
            for task in list(self._claims.values()):
                task.cancel()  # waiting for old-spec pods; ensure_provisioned starts new claims
        self.spec = spec
        self.ensure_provisioned()

    async def close(self) -> None:
        """Stop everything; waiters get PoolClosed."""
        self._closed = True
        if self._refill_handle is not None:
            self._refill_handle.cancel()
            self._refill_handle = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(PoolClosed(str(self.fn)))
        for env in list(self.envs.values()):
            if env.state is EnvState.STARTING:
                continue  # its start task sees the state and stops it, or is cancelled below
            if env.state in (EnvState.IDLE, EnvState.BUSY):
                self._retire(env)
        for task in list(self._start_tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # starts cancelled above may have left handles behind
        for env in list(self.envs.values()):
            if env.handle is not None:
                await self._stop(env)

    # -- introspection -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in EnvState if s is not EnvState.DEAD}
        for env in self.envs.values():
            if env.state is not EnvState.DEAD:
                out[env.state.value] += 1
        return out

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def describe(self) -> dict:
        return {
            "environments": [e.describe() for e in self.envs.values()],
            "counts": self.counts(),
            "provisioned": {
                "target": self.spec.provisioned_concurrency,
                "live": self._live_provisioned(),
            },
            "waiting": self.waiting,
            "starting": self._starting,
            "coldStarts": self.stats.cold_starts,
            "warmStarts": self.stats.warm_starts,
            "spilloverInvocations": self.stats.spillovers,
            "startFailures": self.stats.start_failures,
            "reaped": self.stats.reaped,
            "retiredUnhealthy": self.stats.retired_unhealthy,
            "lastStartError": self.stats.last_start_error,
            "generation": self.generation,
        }
