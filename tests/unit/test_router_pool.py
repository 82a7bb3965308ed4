"""Pool state machine with an in-memory backend and a fake clock (no processes)."""

from __future__ import annotations

import asyncio

import pytest

from lambdakube.models import FunctionSpec
from lambdakube_router.backends.base import Backend, EnvironmentHandle, EnvironmentStartError, FunctionRef
from lambdakube_router.limits import RATE_EXCEEDED, Throttle
from lambdakube_router.pool import EnvState, LeaseTimeout, Pool, Throttled

INLINE = {"code": {"inline": {"source": "def handler(e, c):\n    return e\n"}}}


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", **INLINE, **kw})


class FakeBackend(Backend):
    """Starts are gated so tests decide when an environment becomes ready."""

    def __init__(self, auto: bool = True) -> None:
        self.auto = auto
        self.gates: list[asyncio.Future] = []
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.fail_next: str | None = None

    async def start(self, fn, spec, env_id, provisioned):
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise EnvironmentStartError(msg)
        if not self.auto:
            gate = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            await gate
        self.started.append(env_id)
        return EnvironmentHandle(address="127.0.0.1:1", env_id=env_id, init_duration=0.01)

    async def stop(self, handle):
        self.stopped.append(handle.env_id)

    async def close(self):
        pass

    def open_gate(self):
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)
                return
        raise AssertionError("no pending start")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_pool(s=None, backend=None, tokens=None, clock=None) -> Pool:
    def take_token(now):
        if tokens is None:
            return None
        if tokens[0] > 0:
            tokens[0] -= 1
            return None
        return Throttle(RATE_EXCEEDED, 1)

    return Pool(
        FunctionRef("default", "fn"),
        s or spec(),
        backend or FakeBackend(),
        take_token=take_token,
        clock=clock or Clock(),
    )


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_cold_then_warm_same_env():
    pool = make_pool()
    first = await pool.lease(1)
    assert first.cold_start and first.init_duration == 0.01
    pool.release(first.env)
    second = await pool.lease(1)
    assert not second.cold_start and second.env is first.env
    pool.release(second.env)
    assert pool.stats.cold_starts == 1 and pool.stats.warm_starts == 1
    await pool.close()


async def test_never_two_leases_on_one_env():
    pool = make_pool()
    leases = await asyncio.gather(*(pool.lease(1) for _ in range(20)))
    assert len({id(lease.env) for lease in leases}) == 20
    for lease in leases:
        pool.release(lease.env)
    again = await asyncio.gather(*(pool.lease(1) for _ in range(20)))
    assert len({id(lease.env) for lease in again}) == 20
    assert len(pool.envs) == 20
    for lease in again:
        pool.release(lease.env)
    await pool.close()


async def test_waiter_takes_env_released_first_and_is_not_cold():
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    t1 = asyncio.ensure_future(pool.lease(1))
    await settle()
    backend.open_gate()
    a = await t1
    t2 = asyncio.ensure_future(pool.lease(1))  # starts a second env (gated)
    await settle()
    assert pool.counts()["starting"] == 1
    pool.release(a.env)  # released before the new env is ready
    b = await t2
    assert b.env is a.env and not b.cold_start
    backend.open_gate()
    await settle()
    assert pool.counts() == {"starting": 0, "idle": 1, "busy": 1, "draining": 0}
    pool.release(b.env)
    await pool.close()


async def test_waiters_count_on_unclaimed_starts_without_new_tokens():
    backend = FakeBackend(auto=False)
    tokens = [1]
    pool = make_pool(backend=backend, tokens=tokens)
    t1 = asyncio.ensure_future(pool.lease(1))
    await settle()
    a = None
    # a second request while one start is claimed needs its own token: none left
    with pytest.raises(Throttled) as exc:
        await pool.lease(1)
    assert exc.value.throttle.reason == RATE_EXCEEDED
    backend.open_gate()
    a = await t1
    pool.release(a.env)
    assert (await pool.lease(1)).env is a.env  # warm: no token needed
    await pool.close()


async def test_cancelled_waiter_returns_handed_env():
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    task = asyncio.ensure_future(pool.lease(5))
    await settle()
    backend.open_gate()
    await asyncio.sleep(0)  # start finished -> env handed to the waiter's future
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert pool.counts()["idle"] == 1 and pool.waiting == 0
    lease = await pool.lease(1)
    assert lease.env.state is EnvState.BUSY
    pool.release(lease.env)
    await pool.close()


async def test_a_waiter_cancelled_just_before_its_hand_off_is_skipped():
    """The waiter's future is cancelled first, then the start completes in the same loop
    pass (before the waiter's task runs): the env is refused, not lost, and parks idle."""
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    task = asyncio.ensure_future(pool.lease(5))
    await settle()
    backend.open_gate()  # the start task resumes first in the next pass...
    task.cancel()  # ...after the waiter's future was cancelled here
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert pool.counts()["idle"] == 1 and pool.waiting == 0
    lease = await pool.lease(1)
    assert not lease.cold_start or lease.env.invocations == 0  # the same env, never leased before
    assert len(backend.started) == 1
    pool.release(lease.env)
    await pool.close()


async def test_lease_deadline():
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    with pytest.raises(LeaseTimeout):
        await pool.lease(0.05)
    assert pool.waiting == 0
    backend.open_gate()  # the start still completes and parks the env
    await settle()
    assert pool.counts()["idle"] == 1
    await pool.close()


async def test_start_failure_goes_to_the_waiter():
    backend = FakeBackend()
    backend.fail_next = "Runtime.ImportModuleError: No module named 'nope'"
    pool = make_pool(backend=backend)
    with pytest.raises(EnvironmentStartError, match="nope"):
        await pool.lease(1)
    assert pool.envs == {} and pool.stats.last_start_error.endswith("'nope'")
    lease = await pool.lease(1)  # replaced lazily
    pool.release(lease.env)
    await pool.close()


async def test_unhealthy_release_retires_and_next_is_cold():
    backend = FakeBackend()
    pool = make_pool(backend=backend)
    a = await pool.lease(1)
    pool.release(a.env, healthy=False)
    await settle()
    assert backend.stopped == [a.env.env_id] and a.env.state is EnvState.DEAD
    b = await pool.lease(1)
    assert b.cold_start and b.env is not a.env
    pool.release(b.env)
    await pool.close()


async def test_reap_idle_on_demand_only():
    clock = Clock()
    backend = FakeBackend()
    pool = make_pool(spec(provisionedConcurrency=1, idleTimeoutSeconds=30), backend, clock=clock)
    pool.ensure_provisioned()
    await settle()
    leases = await asyncio.gather(pool.lease(1), pool.lease(1))
    assert sorted(lease.env.provisioned for lease in leases) == [False, True]
    assert [lease.spillover for lease in leases if not lease.env.provisioned] == [True]
    assert all(not lease.cold_start for lease in leases if lease.env.provisioned)
    for lease in leases:
        pool.release(lease.env)
    clock.now = 29
    assert pool.reap(clock.now) == []
    clock.now = 31
    reaped = pool.reap(clock.now)
    assert [e.provisioned for e in reaped] == [False]
    await settle()
    assert pool.counts()["idle"] == 1  # the provisioned one stays
    clock.now = 10_000
    assert pool.reap(clock.now) == []
    assert pool.stats.spillovers == 1
    await pool.close()


async def test_provisioned_refilled_after_death():
    backend = FakeBackend()
    pool = make_pool(spec(provisionedConcurrency=2), backend)
    assert pool.ensure_provisioned() == 2
    await settle()
    lease = await pool.lease(1)
    assert lease.env.provisioned and not lease.cold_start and not lease.spillover
    pool.release(lease.env, healthy=False)
    await settle()  # the stop, the refill timer (due at once) and the replacement's start
    assert pool.describe()["provisioned"]["live"] == 2
    assert len(backend.started) == 3
    await pool.close()


async def test_spec_change_drains_old_envs():
    pool = make_pool()
    a = await pool.lease(1)
    b = await pool.lease(1)
    pool.release(b.env)
    pool.update_spec(spec(env={"X": "1"}))
    await settle()
    assert b.env.state is EnvState.DEAD
    pool.release(a.env)
    await settle()
    assert a.env.state is EnvState.DEAD
    c = await pool.lease(1)
    assert c.cold_start and c.env.generation == 1
    pool.release(c.env)
    pool.update_spec(spec(env={"X": "1"}, idleTimeoutSeconds=5))  # not shaping: keeps envs
    assert c.env.state is EnvState.IDLE
    await pool.close()


class ReleasingBackend(FakeBackend):
    """A backend whose provisioned environments belong to someone else (kubernetes)."""

    def __init__(self) -> None:
        super().__init__()
        self.released: list[str] = []

    async def release(self, handle):
        self.released.append(handle.env_id)


async def test_spec_change_releases_old_provisioned_envs_and_never_leases_them():
    """Old-spec provisioned envs go back to their owner (``release``: on kubernetes the
    operator drains them after its new pods are Ready), idle ones at once, busy ones when
    their request ends; unhealthy ones are stopped. New invocations never get an old
    env, and the provisioned target counts only envs of the new spec: its replacements
    start at once even while an old one is still busy."""
    backend = ReleasingBackend()
    pool = make_pool(spec(provisionedConcurrency=2), backend)
    pool.ensure_provisioned()
    await settle()
    busy = await pool.lease(1)
    broken = await pool.lease(1)
    assert busy.env.provisioned and broken.env.provisioned
    old = {busy.env.env_id, broken.env.env_id}
    pool.release(broken.env)  # idle again (old spec not seen yet)
    backend.auto = False  # new provisioned envs stay starting until a gate opens
    pool.update_spec(spec(provisionedConcurrency=2, env={"X": "1"}))
    await settle()
    assert broken.env.env_id in backend.released and broken.env.env_id not in backend.stopped
    assert pool.describe()["provisioned"]["live"] == 2 and len(backend.gates) == 2  # busy one not counted
    # Until a new provisioned env is up, requests get new on-demand envs, never old ones.
    lease = await asyncio.wait_for(_lease_opening_gate(pool, backend), 5)
    assert lease.env.generation == 1 and lease.env.env_id not in old
    pool.release(busy.env)
    await settle()
    assert set(backend.released) == old and not set(backend.stopped) & old
    pool.release(lease.env, healthy=False)
    await settle()
    assert lease.env.env_id in backend.stopped
    await pool.close()


async def test_spec_change_stops_unhealthy_old_provisioned_envs():
    backend = ReleasingBackend()
    pool = make_pool(spec(provisionedConcurrency=1), backend)
    pool.ensure_provisioned()
    await settle()
    lease = await pool.lease(1)
    pool.update_spec(spec(provisionedConcurrency=1, env={"X": "1"}))
    pool.release(lease.env, healthy=False)
    await settle()
    assert lease.env.env_id in backend.stopped and lease.env.env_id not in backend.released
    await pool.close()


async def _lease_opening_gate(pool, backend):
    task = asyncio.ensure_future(pool.lease(5))
    await settle()
    backend.open_gate()  # whichever start is first: a new provisioned or the on-demand one
    return await task


async def test_close_fails_waiters_and_stops_envs():
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    task = asyncio.ensure_future(pool.lease(5))
    await settle()
    await pool.close()
    with pytest.raises(Exception) as exc:
        await task
    assert type(exc.value).__name__ == "PoolClosed"


# -- provisioned slots follow the operator's pods; requests never wait behind them ------


async def test_a_request_spills_over_instead_of_waiting_for_a_starting_provisioned_slot():
    backend = FakeBackend(auto=False)
    pool = make_pool(spec(provisionedConcurrency=1), backend)
    pool.ensure_provisioned()
    await settle()
    assert len(backend.gates) == 1  # the provisioned claim, waiting for the operator's pod
    lease = asyncio.ensure_future(pool.lease(5))
    await settle()
    assert len(backend.gates) == 2, "the request started its own (on-demand) environment"
    backend.gates[1].set_result(None)
    got = await lease
    assert got.cold_start and got.spillover and not got.env.provisioned


async def test_a_provisioned_claim_outlives_the_init_timeout():
    backend = FakeBackend(auto=False)
    pool = Pool(
        FunctionRef("default", "fn"),
        spec(provisionedConcurrency=1),
        backend,
        take_token=lambda now: None,
        clock=Clock(),
        init_timeout=0.05,
    )
    pool.ensure_provisioned()
    with pytest.raises(EnvironmentStartError, match="not ready within"):
        await pool.lease(5)  # an on-demand start: bounded by the init timeout
    backend.gates[0].set_result(None)  # the operator's pod became Ready after that
    await settle()
    (env,) = [e for e in pool.envs.values() if e.provisioned]
    assert env.state is EnvState.IDLE and pool.stats.start_failures == 1


async def test_a_spec_change_cancels_claims_waiting_for_old_spec_pods():
    backend = FakeBackend(auto=False)
    pool = make_pool(spec(provisionedConcurrency=1), backend)
    pool.ensure_provisioned()
    await settle()
    pool.update_spec(spec(provisionedConcurrency=1, env={"V": "2"}))
    await settle()
    assert backend.gates[0].cancelled()
    assert len(backend.gates) == 2 and pool.describe()["starting"] == 1


async def test_a_request_waiting_on_an_old_spec_start_is_served_by_a_new_one():
    """Its old start is cancelled (it would never be leased) and a start of the new spec
    replaces it: the request does not wait for its deadline."""
    backend = FakeBackend(auto=False)
    pool = make_pool(backend=backend)
    waiting = asyncio.ensure_future(pool.lease(30))
    await settle()
    pool.update_spec(spec(env={"V": "2"}))
    await settle()
    assert backend.gates[0].cancelled() and len(backend.gates) == 2
    backend.open_gate()
    lease = await asyncio.wait_for(waiting, 1)
    assert lease.cold_start and lease.env.generation == 1
    pool.release(lease.env)
    await pool.close()


async def test_lowering_the_target_hands_surplus_back_to_the_owner_instead_of_stopping_it():
    class OwnedBackend(FakeBackend):
        def __init__(self):
            super().__init__()
            self.released: list[str] = []

        async def release(self, handle):
            self.released.append(handle.env_id)

    backend = OwnedBackend()
    pool = make_pool(spec(provisionedConcurrency=3), backend)
    pool.ensure_provisioned()
    await settle()
    pool.update_spec(spec(provisionedConcurrency=1))
    await settle()
    assert len(backend.released) == 2 and backend.stopped == []
    assert pool.describe()["provisioned"]["live"] == 1
    await pool.close()


async def test_a_busy_provisioned_env_beyond_a_lowered_target_is_handed_back_on_release():
    backend = ReleasingBackend()
    pool = make_pool(spec(provisionedConcurrency=2), backend)
    pool.ensure_provisioned()
    await settle()
    first, second = await pool.lease(1), await pool.lease(1)
    pool.update_spec(spec(provisionedConcurrency=1))
    await settle()
    assert backend.released == []  # both busy: nothing to hand back yet
    pool.release(first.env)
    pool.release(second.env)
    await settle()
    assert backend.released == [first.env.env_id] and backend.stopped == []
    assert pool.counts()["idle"] == 1 and second.env.state is EnvState.IDLE
    await pool.close()


class FakeConn:
    def __init__(self, busy: bool) -> None:
        self.busy = busy
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_n_leases_share_one_env_and_a_stop_leaves_busy_connections_to_their_requests():
    """Two slots: two leases of one environment at once, a third starts another. When
    one request recycles the environment (released unhealthy), the stop closes only its
    idle connections: the other request's answer may be in its socket already."""
    backend = FakeBackend()
    pool = make_pool(spec(runtime="nodejs20.x", perEnvironmentConcurrency=2), backend=backend)
    a, b, c = await asyncio.gather(*(pool.lease(1) for _ in range(3)))
    assert a.env is b.env and c.env is not a.env
    assert (a.cold_start, b.cold_start, c.cold_start) == (True, False, True)
    env = a.env
    env.conn, env.spare = FakeConn(busy=True), [FakeConn(busy=False)]  # b's in use, a's idle again
    pool.release(env, healthy=False)
    await settle()
    assert backend.stopped == [env.env_id]
    assert (env.conn.closed, env.spare[0].closed) == (False, True)
    pool.release(env)  # b's answer came: nothing more to do
    pool.release(c.env)
    await pool.close()
