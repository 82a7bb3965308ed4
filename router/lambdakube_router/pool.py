"""One function's pool of execution environments: the heart of "one request per env".

What is decided where: ``pool_state.PoolState`` decides everything (which environment a
request gets, when one is started, stopped, handed back or refilled, which waiter fails)
from events and ``now``, and its docstrings hold those rules. ``Pool`` only carries its
commands out with asyncio - a backend start as a task, a waiting request as a future, the
refill as a timer - and reports what came of them as the next event. Why: the rules are a
table of named cases with a fixed clock (``tests/unit/test_pool_state.py``); what is left
here is what a table cannot show (tasks, cancellation, deadlines), tested with a fake
backend in ``tests/unit/test_router_pool.py``.

Every wait has a deadline: a lease has its ``timeout``, a cold start the init timeout. A
provisioned start follows the operator's pod however long it takes to be Ready (a burst
of pods on one node takes longer than any fixed guess); an Init error still fails it, and
it is cancelled when its spec is replaced or the pool closes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from lambdakube.backoff import Backoff
from lambdakube.models import FunctionSpec
from lambdakube.resources import labels
from lambdakube.resources import new_env_id as resources_env_id
from lambdakube_router.backends.base import (
    Backend,
    EnvironmentStartError,
    FunctionRef,
)
from lambdakube_router.limits import Throttle
from lambdakube_router.pool_protocol import (
    REAPED,
    CancelStart,
    Close,
    Command,
    Environment,
    EnvLost,
    EnvState,
    Event,
    FailClosed,
    FailStart,
    FailThrottled,
    Hand,
    HandBack,
    HandRefused,
    Lease,
    LeaseRequested,
    PoolStats,
    Provision,
    Reap,
    RefillAt,
    RefillDue,
    Released,
    SpecChanged,
    StartCancelled,
    Started,
    StartEnv,
    StartFailed,
    Stop,
    Stopped,
    WaiterGone,
)
from lambdakube_router.pool_state import DEFAULT_REFILL_BACKOFF, PoolState

__all__ = [
    "EnvState",
    "Environment",
    "Lease",
    "LeaseTimeout",
    "Pool",
    "PoolClosed",
    "PoolStats",
    "Throttled",
    "new_env_id",
]

log = logging.getLogger(__name__)


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
        provisioned_retry_max: float = DEFAULT_REFILL_BACKOFF.maximum,
    ) -> None:
        self.fn = fn
        self.backend = backend
        self.take_token = take_token
        self.clock = clock
        self.init_timeout = init_timeout
        self._state = PoolState(
            spec,
            take_token=take_token,
            new_id=functools.partial(new_env_id, fn.name),
            is_draining=backend.is_draining,
            is_lost=backend.is_lost,
            refill_backoff=Backoff(DEFAULT_REFILL_BACKOFF.initial, provisioned_retry_max),
        )
        #: Running starts by env id (``CancelStart``).
        self._starts: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._refill: asyncio.TimerHandle | None = None

    @property
    def spec(self) -> FunctionSpec:
        return self._state.spec

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def envs(self) -> dict[str, Environment]:
        return self._state.envs

    @property
    def stats(self) -> PoolStats:
        return self._state.stats

    # -- events in, commands out -------------------------------------------------------

    def _on(self, event: Event, now: float | None = None) -> list[Command]:
        commands = self._state.handle(event, self.clock() if now is None else now)
        for command in commands:
            self._do(command)
        return commands

    def _do(self, command: Command) -> None:
        match command:  # the most frequent first: Hand is on every request's path
            case Hand(env_id, waiter):
                if waiter.done():  # it stopped waiting in this very instant
                    self._on(HandRefused(env_id))
                else:
                    waiter.set_result(self._state.envs[env_id])
            case StartEnv(env_id, provisioned):
                task = self._spawn(self._run_start(env_id, provisioned, self._state.spec))
                self._starts[env_id] = task
                task.add_done_callback(functools.partial(self._start_ended, env_id))
            case CancelStart(env_id):
                if (start := self._starts.get(env_id)) is not None:
                    start.cancel()
            case FailThrottled(waiter, throttle):
                self._fail(waiter, Throttled(throttle))
            case FailStart(waiter, error):
                self._fail(waiter, error)
            case FailClosed(waiter):
                self._fail(waiter, PoolClosed(str(self.fn)))
            case Stop(env_id) | HandBack(env_id):
                self._spawn(self._stop(self._state.envs[env_id], hand_back=isinstance(command, HandBack)))
            case RefillAt(at):
                loop = asyncio.get_running_loop()
                self._refill = loop.call_later(max(0.0, at - self.clock()), self._refill_due)

    @staticmethod
    def _fail(waiter: asyncio.Future, error: Exception) -> None:
        if not waiter.done():
            waiter.set_exception(error)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _refill_due(self) -> None:
        self._refill = None
        self._on(RefillDue())

    # -- leasing -----------------------------------------------------------------------

    async def lease(self, timeout: float) -> Lease:
        """An environment for exactly one request; ``release`` it when done.

        Raises Throttled (no scaling token for a needed cold start), EnvironmentStartError
        (the cold start this request waited for failed), LeaseTimeout, PoolClosed.
        """
        waiter: asyncio.Future[Environment] = asyncio.get_running_loop().create_future()
        self._on(LeaseRequested(waiter))
        if not waiter.done():
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except BaseException as exc:
                self._stop_waiting(waiter)
                if isinstance(exc, TimeoutError):
                    raise LeaseTimeout(f"no environment for {self.fn} within {timeout:.1f}s") from None
                raise
        lease = self._state.leased(waiter.result())  # result(): or the waiter's error
        if lease is None:
            raise PoolClosed(str(self.fn))
        return lease

    def _stop_waiting(self, waiter: asyncio.Future[Environment]) -> None:
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            # Handed an env in the same instant we were cancelled: give it back.
            self._on(HandRefused(waiter.result().env_id))
        else:
            waiter.cancel()
            self._on(WaiterGone(waiter))

    def release(self, env: Environment, healthy: bool = True) -> None:
        """Give the environment back: idle again, or retired if unhealthy or outdated."""
        self._on(Released(env.env_id, healthy))

    def lost(self, env_id: str) -> bool:
        """The backend saw this environment die by itself; False when it is not ours."""
        if env_id not in self._state.envs:
            return False
        self._on(EnvLost(env_id))
        return True

    # -- starting and stopping ---------------------------------------------------------

    async def _run_start(self, env_id: str, provisioned: bool, spec: FunctionSpec) -> None:
        """One backend start, reported as Started or StartFailed (a cancelled one as
        StartCancelled, by ``_start_ended``)."""
        error: EnvironmentStartError
        try:
            async with asyncio.timeout(None if provisioned else self.init_timeout):
                handle = await self.backend.start(self.fn, spec, env_id, provisioned)
        except EnvironmentStartError as exc:
            error = exc
        except TimeoutError:
            error = EnvironmentStartError(
                f"environment {env_id} was not ready within {self.init_timeout:.0f}s",
                error_type="InitTimeout",
            )
        except Exception as exc:  # a backend bug must not leave waiters hanging
            log.exception("backend failed to start %s", env_id)
            error = EnvironmentStartError(f"{type(exc).__name__}: {exc}")
        else:
            self._on(Started(env_id, handle))
            return
        log.warning("%s: environment %s failed to start: %s", self.fn, env_id, error.message)
        self._on(StartFailed(env_id, error))

    def _start_ended(self, env_id: str, task: asyncio.Task) -> None:
        self._starts.pop(env_id, None)
        if task.cancelled():  # also when cancelled before it ran at all
            self._on(StartCancelled(env_id))

    async def _stop(self, env: Environment, *, hand_back: bool) -> None:
        # Idle connections only: with several slots, an invocation still in flight on a
        # retired environment (one that timed out recycles the others) may have its
        # answer in the socket already; it ends with that answer, or with the stop.
        for conn in (env.conn, *env.spare):
            if conn is not None and not conn.busy:
                conn.close()
        try:
            if env.handle is not None and hand_back:
                await self.backend.release(env.handle)
            elif env.handle is not None:
                await self.backend.stop(env.handle)
        except Exception:
            log.exception("%s: stopping environment %s failed", self.fn, env.env_id)
        finally:
            self._on(Stopped(env.env_id))

    # -- provisioned concurrency, reaping and reconfiguration --------------------------

    def ensure_provisioned(self) -> int:
        """Start the provisioned environments that are missing; returns how many."""
        return sum(isinstance(c, StartEnv) for c in self._on(Provision()))

    def reap(self, now: float) -> list[Environment]:
        """Retire on-demand envs idle for longer than ``idleTimeoutSeconds`` (scale to zero)."""
        commands = self._state.handle(Reap(), now)
        reaped = [self.envs[c.env_id] for c in commands if isinstance(c, Stop) and c.reason == REAPED]
        for command in commands:
            self._do(command)
        return reaped

    def update_spec(self, spec: FunctionSpec) -> None:
        """Apply a new spec: envs running the old code drain (idle now, busy on release)."""
        self._on(SpecChanged(spec))

    async def close(self) -> None:
        """Stop everything; waiters get PoolClosed."""
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        self._on(Close())
        while self._tasks:  # starts being cancelled, stops and hand-backs
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- introspection -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return self._state.counts()

    def provisioned_ready(self) -> tuple[int, int]:
        return self._state.provisioned_ready()

    @property
    def waiting(self) -> int:
        return self._state.waiting

    def describe(self) -> dict:
        return self._state.describe()
