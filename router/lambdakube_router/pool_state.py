"""One function's pool of execution environments, as decisions only: events in, commands out.

Why a module of its own: the pool used to decide (which environment a request gets, when
to start, stop, hand back or refill one, which waiter fails) in the middle of futures,
tasks and timers. Here ``PoolState.handle(event, now)`` updates the pool's bookkeeping and
returns what to do as data (the events and commands are ``pool_protocol``'s); ``pool.Pool``
does it (a backend start, a future resolved, a timer) and reports what happened as the
next event. No asyncio, no I/O, no clock reads: every rule below is a named row in
``tests/unit/test_pool_state.py``.

States: ``starting -> idle <-> busy -> draining -> dead``. An environment has ``slots``
(the spec's ``perEnvironmentConcurrency``, 1 by default: Lambda's one request per
environment) and is busy while it has any invocation in flight; a busy one with a free
slot is *open* and is leased before an idle one or a cold start, so a function uses
ceil(in flight / slots) environments, and only an environment with nothing in flight is
idle (reaped, scaled to zero). What the state cannot know by
itself it asks of callables given to it: the function's scaling token (``take_token(now)``,
the namespace's token bucket, see ``limits``), whether the backend wants an environment
finished (``is_draining(handle)``, optional: the kubernetes backend reports the operator's
``draining`` label of a rollout), whether it is known dead (``is_lost(handle)``: a process
that exited, a failed or terminating pod), and new environment ids.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from lambdakube.backoff import Backoff
from lambdakube.models import FunctionSpec
from lambdakube.resources import spec_hash
from lambdakube_router.backends.base import EnvironmentHandle
from lambdakube_router.limits import Throttle
from lambdakube_router.pool_protocol import (
    CLOSED,
    DRAINED,
    LOST,
    OUTDATED,
    REAPED,
    SURPLUS,
    UNHEALTHY,
    CancelStart,
    Close,
    Command,
    EnvState,
    Environment,
    EnvLost,
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
    StartEnv,
    StartFailed,
    Started,
    Stop,
    Stopped,
    Waiter,
    WaiterGone,
)

#: The pool's own reasons, not the environment's fault: a provisioned environment retired
#: for one of these goes back to its keeper instead of being stopped (``_retire``).
_HANDED_BACK = (OUTDATED, SURPLUS, CLOSED)

#: Refills of provisioned environments after a failed start: 0.5 s, doubling, to 30 s.
DEFAULT_REFILL_BACKOFF = Backoff(0.5, 30.0)


class PoolState:
    def __init__(
        self,
        spec: FunctionSpec,
        *,
        take_token: Callable[[float], Throttle | None],
        new_id: Callable[[bool], str],
        is_draining: Callable[[EnvironmentHandle], bool] = lambda handle: False,
        is_lost: Callable[[EnvironmentHandle], bool] = lambda handle: False,
        refill_backoff: Backoff = DEFAULT_REFILL_BACKOFF,
    ) -> None:
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        self.generation = 0
        self.envs: dict[str, Environment] = {}
        self.stats = PoolStats()
        self.closed = False
        self.starting = 0
        self._take_token = take_token
        self._new_id = new_id
        self._is_draining = is_draining
        self._is_lost = is_lost
        self._refill_backoff = refill_backoff
        self._idle_provisioned: list[Environment] = []  # stacks: most recently used last
        self._idle_on_demand: list[Environment] = []
        #: Busy with a free slot (``slots`` > 1 only; empty with one request per env).
        self._open_provisioned: list[Environment] = []
        self._open_on_demand: list[Environment] = []
        #: Slots of an environment of the current spec.
        self._slots = spec.per_environment_concurrency
        self._waiters: collections.deque[Waiter] = collections.deque()
        #: On-demand starts of the current spec only: what a waiting request may count
        #: on. A provisioned slot waits for the operator's pod, as long as that takes, so
        #: a request never waits behind one (Lambda: beyond the ready provisioned envs,
        #: spill over); a start of an older spec is never leased (``_spec_changed``).
        self._starting_on_demand = 0
        self._refill_delay = 0.0  # the last backoff; 0 after a provisioned start worked
        self._refill_at: float | None = None

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply ``event``, which happened at ``now``; returns what to do, in order."""
        return _RULES[type(event)](self, event, now)

    # -- leasing -----------------------------------------------------------------------

    def _lease(self, event: LeaseRequested, now: float) -> list[Command]:
        """A warm environment first: provisioned before on-demand (on-demand ones serve only
        the spill-over beyond the provisioned concurrency, as in Lambda), the most recently
        used of each (a stack: the others stay idle and are reaped, so an idle function
        scales down). Draining ones found on the way are retired, never leased.

        Without one, the request counts on an on-demand environment already starting and not
        yet claimed by an earlier waiter, or takes a scaling token and starts one; without a
        token it is throttled at once (429, never a wait). Whichever environment is free
        first goes to the oldest waiter (``_free``), so a waiter may end up on a warm one
        released meanwhile (not a cold start then; the fresh one serves someone else).
        """
        waiter = event.waiter
        if self.closed:
            return [FailClosed(waiter)]
        out: list[Command] = []
        env = self._pop_free(now, out)
        if env is not None:
            assert env.in_flight < env.slots, f"environment {env.env_id} leased beyond its {env.slots} slots"
            self._occupy(env)
            out.append(Hand(env.env_id, waiter))
            return out
        # Each on-demand start serves ``slots`` waiters once it is up.
        if self._starting_on_demand * self._slots <= len(self._waiters):
            throttle = self._take_token(now)
            if throttle is not None:
                out.append(FailThrottled(waiter, throttle))
                return out
            out += self._start(provisioned=False, now=now)
        self._waiters.append(waiter)
        return out

    def _pop_free(self, now: float, out: list[Command]) -> Environment | None:
        """The environment the next invocation gets: a provisioned one with a free slot,
        busy (open) before idle, then an on-demand one, likewise. Packing busy ones first
        leaves the others idle, to be reaped. An open one found dead or draining is only
        unlisted (its requests still run; it is retired when the last is released)."""
        if self._open_provisioned or self._open_on_demand:
            for opened, idle in (
                (self._open_provisioned, self._idle_provisioned),
                (self._open_on_demand, self._idle_on_demand),
            ):
                while opened:
                    env = opened[-1]
                    if self._dead(env) or self._draining(env):
                        env.lost = env.lost or self._dead(env)
                        self._unlist(env)
                        continue
                    return env
                found = self._pop_idle_of(idle, now, out)
                if found is not None:
                    return found
            return None
        for stack in (self._idle_provisioned, self._idle_on_demand):
            found = self._pop_idle_of(stack, now, out)
            if found is not None:
                return found
        return None

    def _pop_idle_of(self, stack: list[Environment], now: float, out: list[Command]) -> Environment | None:
        while stack:
            env = stack.pop()
            if self._dead(env):
                out += self._retire_lost(env, now)
            elif self._draining(env):
                out += self._retire(env, DRAINED, now)
            else:
                return env
        return None

    def _occupy(self, env: Environment) -> None:
        """One more invocation on ``env`` (popped idle, or listed open): busy, and open
        while a slot is left."""
        env.in_flight += 1
        env.state = EnvState.BUSY
        if env.in_flight < env.slots:
            self._list(env)
        elif env.open:  # (one slot: never open, no call on the common path)
            self._unlist(env)

    def _open_of(self, env: Environment) -> list[Environment]:
        return self._open_provisioned if env.provisioned else self._open_on_demand

    def _list(self, env: Environment) -> None:
        """Open: busy with a free slot, leased before an idle environment."""
        if not env.open:
            env.open = True
            self._open_of(env).append(env)

    def _unlist(self, env: Environment) -> None:
        """Not open any more (full, or on its way out)."""
        if env.open:
            env.open = False
            self._open_of(env).remove(env)

    def _free(self, env: Environment, now: float) -> list[Command]:
        """An environment is free (started, released, or refused by a waiter that left): the
        oldest waiter gets it in the same step, else it is idle.

        Why direct hand-off instead of an event that waiters re-check: there is no window
        in which two waiters can both see the same idle environment, and no wakeup can be
        lost, because nobody "wakes up to look". The only race left is a waiter that stops
        waiting at the moment it is handed one (``HandRefused``: it is free again).
        """
        if self.closed:
            return self._retire_when_done(env, CLOSED, now)
        if env.generation != self.generation:
            return self._retire_when_done(env, OUTDATED, now)
        if self._dead(env):  # and the waiter it would have served gets a start of its own
            return self._retire_lost(env, now) + self._serve_waiters(now)
        if self._waiters:
            out: list[Command] = []
            while self._waiters and env.in_flight < env.slots:
                self._occupy(env)
                out.append(Hand(env.env_id, self._waiters.popleft()))
            return out
        if env.in_flight:  # busy with a free slot: open
            self._list(env)
            return []
        self._unlist(env)
        env.state = EnvState.IDLE
        env.idle_since = now
        (self._idle_provisioned if env.provisioned else self._idle_on_demand).append(env)
        return []

    def _retire_when_done(self, env: Environment, reason: str, now: float) -> list[Command]:
        """Retired for the pool's own reason (closing, an older spec, a lowered target, a
        rollout): now when nothing is in flight, else it is only unlisted, and retired
        when its last request is released; the other requests on it run to their end."""
        if env.in_flight:
            self._unlist(env)
            return []
        return self._retire(env, reason, now)

    def _waiter_gone(self, event: WaiterGone, now: float) -> list[Command]:
        try:
            self._waiters.remove(event.waiter)
        except ValueError:  # handed, failed or throttled already
            pass
        return []

    def _refused(self, event: HandRefused, now: float) -> list[Command]:
        env = self.envs.get(event.env_id)
        if env is None or env.state is not EnvState.BUSY:  # retired meanwhile (closing)
            return []
        env.in_flight -= 1
        return self._free(env, now)

    def leased(self, env: Environment) -> Lease | None:
        """A handed environment reached its request: count and describe the lease; None
        when the environment was retired meanwhile (the pool closed).

        A cold start is an on-demand environment's first invocation (a provisioned one was
        initialised ahead of time: no cold start, as in Lambda); a spill-over is an
        on-demand environment of a function with provisioned concurrency.
        """
        if env.state is not EnvState.BUSY or not env.in_flight:
            return None
        cold = env.invocations == 0 and not env.served and not env.provisioned
        env.served = True
        if cold:
            self.stats.cold_starts += 1
        else:
            self.stats.warm_starts += 1
        spill = self.spec.provisioned_concurrency > 0 and not env.provisioned
        if spill:
            self.stats.spillovers += 1
        init = env.handle.init_duration if (cold and env.handle) else None
        return Lease(env, cold, init, spill)

    def _released(self, event: Released, now: float) -> list[Command]:
        """Idle again (or straight to the oldest waiter), unless it is unhealthy, the pool is
        closed, it runs an older spec, it is a provisioned environment beyond a lowered
        target, or the backend marked it draining: then it is retired (``_retire`` decides
        between stopping it and handing it back)."""
        env = self.envs.get(event.env_id)
        if env is None:  # retired and stopped under its request (the pool closed)
            return []
        assert env.in_flight > 0, f"release of {env.env_id} which is not leased"
        env.in_flight -= 1
        if env.state is not EnvState.BUSY:  # retired under its request (the pool closed)
            return []
        env.invocations += 1
        if env.lost:  # dead: its other requests (slots > 1) fail on their own
            return self._retire_lost(env, now)
        if not event.healthy:  # it recycles itself: the runtime fails its other requests
            self.stats.retired_unhealthy += 1
            env.broken = True
            return self._retire(env, UNHEALTHY, now)
        if self.closed:
            return self._retire_when_done(env, CLOSED, now)
        if env.generation != self.generation:
            return self._retire_when_done(env, OUTDATED, now)
        if env.provisioned and self._live_provisioned() > self.spec.provisioned_environments:
            env.surplus = True
            return self._retire_when_done(env, SURPLUS, now)
        if self._draining(env):
            return self._retire_when_done(env, DRAINED, now)
        return self._free(env, now)

    def _draining(self, env: Environment) -> bool:
        return env.handle is not None and self._is_draining(env.handle)

    def _dead(self, env: Environment) -> bool:
        return env.lost or (env.handle is not None and self._is_lost(env.handle))

    def _lost(self, event: EnvLost, now: float) -> list[Command]:
        """An environment died by itself (a crash while idle, a pod deleted or failed from
        outside): an idle one is retired now, so no request is handed a dead environment;
        a busy one when its request releases it (that request fails or already has); a
        starting one is the start's to report. It is stopped, never handed back (the
        keeper's pod is gone or failed: ``stop`` deletes what is left), and a provisioned
        one is replaced at once. ``_pop_idle`` and ``_free`` also ask ``is_lost``, so a
        death the backend saw but did not report yet is caught at the next hand-out."""
        env = self.envs.get(event.env_id)
        if env is None:
            return []
        if env.state is EnvState.IDLE:
            return self._retire_lost(env, now)
        if env.state is EnvState.BUSY:
            env.lost = True
            self._unlist(env)
        return []

    def _retire_lost(self, env: Environment, now: float) -> list[Command]:
        self.stats.lost += 1
        env.lost = True
        return self._retire(env, LOST, now)

    # -- starting and stopping ---------------------------------------------------------

    def _start(self, *, provisioned: bool, now: float) -> list[Command]:
        env = Environment(
            env_id=self._new_id(provisioned),
            provisioned=provisioned,
            generation=self.generation,
            created_at=now,
            slots=self._slots,
        )
        self.envs[env.env_id] = env
        self.starting += 1
        if not provisioned:
            self._starting_on_demand += 1
        return [StartEnv(env.env_id, provisioned)]

    def _start_ended(self, env_id: str) -> Environment | None:
        env = self.envs.get(env_id)
        if env is None or env.state is not EnvState.STARTING:
            return None
        self.starting -= 1
        if not env.provisioned and env.generation == self.generation:
            self._starting_on_demand -= 1
        return env

    def _forget(self, env_id: str) -> None:
        self.envs.pop(env_id).state = EnvState.DEAD

    def _start_cancelled(self, event: StartCancelled, now: float) -> list[Command]:
        if self._start_ended(event.env_id) is not None:
            self._forget(event.env_id)
        return []

    def _stopped(self, event: Stopped, now: float) -> list[Command]:
        if event.env_id in self.envs:
            self._forget(event.env_id)
        return []

    def _started(self, event: Started, now: float) -> list[Command]:
        env = self._start_ended(event.env_id)
        if env is None:
            return []
        handle = env.handle = event.handle
        if handle.env_id != env.env_id:
            # The backend chose the id (a pre-warmed generic environment keeps the one it
            # was spawned with, which the runtime reports): use it everywhere from now on.
            del self.envs[env.env_id]
            env.env_id = handle.env_id
            self.envs[env.env_id] = env
        if env.provisioned:
            self._refill_delay = 0.0
        return self._free(env, now)

    def _start_failed(self, event: StartFailed, now: float) -> list[Command]:
        """Waiters beyond what the remaining on-demand starts can serve get this start's
        error, the oldest first (a request that counted on this start fails with its Init
        error instead of waiting for its deadline; an on-demand failure is replaced lazily,
        by the next request). A failed provisioned start is retried after a backoff that
        doubles from 0.5 s to the maximum, and is reset by a provisioned start that works:
        an Init that always fails does not restart in a tight loop."""
        env, error = self._start_ended(event.env_id), event.error
        if env is None:
            return []
        self._forget(env.env_id)
        self.stats.start_failures += 1
        self.stats.last_start_error = error.message
        out: list[Command] = []
        while len(self._waiters) > self._starting_on_demand * self._slots:
            out.append(FailStart(self._waiters.popleft(), error))
        if env.provisioned and not self.closed:
            self._refill_delay = self._refill_backoff.next(self._refill_delay)
            out += self._refill(now + self._refill_delay)
        return out

    def _retire(self, env: Environment, reason: str, now: float) -> list[Command]:
        """Out of service for good: draining until the backend is done with it.

        Stopped, except a healthy provisioned environment retired for one of the pool's own
        reasons (an older spec, a lowered target, closing): that one goes back to its keeper
        (the backend's ``release``). On kubernetes provisioned pods are the operator's: it
        rolls them surge-first (new pods first, then it labels the old ones draining) and
        picks which ones go when the target is lowered, so the router deleting them itself
        would shrink the function before the new pods are Ready. A retired provisioned
        environment is replaced at once (a refill now) unless the pool is closed.
        """
        if env.state in (EnvState.DRAINING, EnvState.DEAD):
            return []
        if env.state is EnvState.IDLE:
            stack = self._idle_provisioned if env.provisioned else self._idle_on_demand
            if env in stack:
                stack.remove(env)
        self._unlist(env)
        env.state = EnvState.DRAINING
        hand_back = env.provisioned and reason in _HANDED_BACK
        out: list[Command] = [HandBack(env.env_id, reason) if hand_back else Stop(env.env_id, reason)]
        if env.provisioned and not self.closed:
            out += self._refill(now)
        return out

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

    def _provision(self, event: Provision, now: float) -> list[Command]:
        return self._keep_provisioned(now)

    def _keep_provisioned(self, now: float) -> list[Command]:
        """Keep ceil(``provisionedConcurrency`` / slots) environments of the current spec
        (``FunctionSpec.provisioned_environments``; P itself with one slot): the missing
        ones start now (and are never reaped); above a lowered target the idle extras go
        now, the least recently used first, busy ones when released."""
        if self.closed:
            return []
        missing = self.spec.provisioned_environments - self._live_provisioned()
        out: list[Command] = []
        for _ in range(max(0, missing)):
            out += self._start(provisioned=True, now=now)
        for env in self._idle_provisioned[: max(0, -missing)]:
            env.surplus = True
            out += self._retire(env, SURPLUS, now)
        return out

    def _refill_due(self, event: RefillDue, now: float) -> list[Command]:
        self._refill_at = None
        return self._keep_provisioned(now)

    def _refill(self, at: float) -> list[Command]:
        """A refill at ``at``, unless one is pending already (that one stays)."""
        if self._refill_at is not None:
            return []
        self._refill_at = at
        return [RefillAt(at)]

    # -- reaping and reconfiguration ---------------------------------------------------

    def _reap(self, event: Reap, now: float) -> list[Command]:
        """Scale to zero: on-demand environments idle for at least ``idleTimeoutSeconds``
        are stopped; provisioned ones never (they are kept initialised at all times). Idle
        ones the backend marked draining are retired too (a rollout: not counted as reaped)."""
        limit = self.spec.idle_timeout_seconds
        out: list[Command] = []
        for env in [e for e in self._idle_on_demand if now - e.idle_since >= limit]:
            self.stats.reaped += 1
            out += self._retire(env, REAPED, now)
        for env in [e for e in self._idle_provisioned + self._idle_on_demand if self._draining(e)]:
            out += self._retire(env, DRAINED, now)
        return out

    def _spec_changed(self, event: SpecChanged, now: float) -> list[Command]:
        """A spec of the same hash (the same test as a pod's spec-hash label) changes nothing
        environments run: they keep serving. A new hash bumps the generation: environments of
        the old spec are never leased again (new invocations run the new code: on-demand cold
        starts until provisioned environments of the new spec are up); idle ones retire now,
        busy ones when released; starts of the old spec are cancelled (provisioned ones wait
        for pods that will not come, on-demand ones would never be leased), and the requests
        that were counting on them get starts of the new spec at once instead of waiting for
        their deadline (``_serve_waiters``); ``provisionedConcurrency`` counts only
        environments of the current spec, so the replacements start at once."""
        spec, new_hash = event.spec, spec_hash(event.spec)
        out: list[Command] = []
        renewed = new_hash != self.spec_hash
        if renewed:
            self.generation += 1
            for env in self._idle_provisioned + self._idle_on_demand:
                out += self._retire(env, OUTDATED, now)
            for env in self._open_provisioned + self._open_on_demand:
                self._unlist(env)  # busy: retired when its last request is released
            out += [CancelStart(e.env_id) for e in self.envs.values() if e.state is EnvState.STARTING]
            self._starting_on_demand = 0
        self.spec, self.spec_hash = spec, new_hash
        self._slots = spec.per_environment_concurrency
        if renewed:
            out += self._serve_waiters(now)
        return out + self._keep_provisioned(now)

    def _serve_waiters(self, now: float) -> list[Command]:
        """Every waiter beyond the on-demand starts it can count on gets one of its own, as
        a new request would (``_lease``): a scaling token each, and the newest ones are
        throttled once the tokens run out (the oldest are served first, as ``_free`` does)."""
        out: list[Command] = []
        while len(self._waiters) > self._starting_on_demand * self._slots:
            throttle = self._take_token(now)
            if throttle is not None:
                out.append(FailThrottled(self._waiters.pop(), throttle))
                continue
            out += self._start(provisioned=False, now=now)
        return out

    def _close(self, event: Close, now: float) -> list[Command]:
        """Waiters get PoolClosed; idle and busy environments retire (provisioned ones are
        handed back: the kubernetes backend's provisioned pods are the operator's to keep);
        starts are cancelled; nothing is started or refilled any more."""
        self.closed = True
        self._refill_at = None
        out: list[Command] = [FailClosed(w) for w in self._waiters]
        self._waiters.clear()
        for env in list(self.envs.values()):
            if env.state in (EnvState.IDLE, EnvState.BUSY):
                out += self._retire(env, CLOSED, now)
        out += [CancelStart(e.env_id) for e in self.envs.values() if e.state is EnvState.STARTING]
        return out

    # -- introspection -----------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def provisioned_ready(self) -> tuple[int, int]:
        """(initialised, free) provisioned concurrency of the current spec: Lambda's
        Allocated and Available provisioned concurrency, in invocations (the slots of
        the ready environments, at most ``provisionedConcurrency``; one per environment
        with one slot each)."""
        ready = [
            e
            for e in self.envs.values()
            if e.provisioned and e.generation == self.generation and e.state in (EnvState.IDLE, EnvState.BUSY)
        ]
        target = self.spec.provisioned_concurrency
        allocated = min(sum(e.slots for e in ready), max(target, len(ready)))
        return allocated, min(allocated, sum(e.slots - e.in_flight for e in ready))

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in EnvState if s is not EnvState.DEAD}
        for env in self.envs.values():
            if env.state is not EnvState.DEAD:
                out[env.state.value] += 1
        return out

    def describe(self) -> dict:
        return {
            "environments": [e.describe() for e in self.envs.values()],
            "counts": self.counts(),
            "provisioned": {
                "target": self.spec.provisioned_concurrency,
                "live": self._live_provisioned(),
            },
            "waiting": self.waiting,
            "starting": self.starting,
            "coldStarts": self.stats.cold_starts,
            "warmStarts": self.stats.warm_starts,
            "spilloverInvocations": self.stats.spillovers,
            "startFailures": self.stats.start_failures,
            "reaped": self.stats.reaped,
            "retiredUnhealthy": self.stats.retired_unhealthy,
            "lost": self.stats.lost,
            "lastStartError": self.stats.last_start_error,
            "generation": self.generation,
        }


#: Which rule applies to which event (a dict rather than ``match``: ``handle`` is on every
#: request's path, and a class pattern per event type costs a check each).
_RULES: dict[type, Callable[[PoolState, Any, float], list[Command]]] = {
    LeaseRequested: PoolState._lease,
    WaiterGone: PoolState._waiter_gone,
    HandRefused: PoolState._refused,
    Started: PoolState._started,
    StartFailed: PoolState._start_failed,
    StartCancelled: PoolState._start_cancelled,
    Released: PoolState._released,
    EnvLost: PoolState._lost,
    Stopped: PoolState._stopped,
    Provision: PoolState._provision,
    RefillDue: PoolState._refill_due,
    Reap: PoolState._reap,
    SpecChanged: PoolState._spec_changed,
    Close: PoolState._close,
}
