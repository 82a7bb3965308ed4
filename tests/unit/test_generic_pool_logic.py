"""GenericPool logic with fake spares (no processes): fill, take, refill, backoff, close."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from lambdakube_router.generic_pool import GenericPool


class FakeSpare:
    def __init__(self, n: int) -> None:
        self.env_id = f"generic-{n}"
        self.dead = False

    def alive(self) -> bool:
        return not self.dead


class FakeRuntime:
    """spawn/stop recorder; ``fail`` makes the next spawns raise."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.spawned: list[FakeSpare] = []
        self.stopped: list[FakeSpare] = []
        self.fail = 0
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    async def spawn(self) -> FakeSpare:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("python went missing")
        spare = FakeSpare(next(self.ids))
        self.spawned.append(spare)
        return spare

    async def stop(self, spare: FakeSpare) -> None:
        self.stopped.append(spare)


def make(size: int, rt: FakeRuntime, **kw) -> GenericPool:
    kw.setdefault("refill_delay", 0)
    kw.setdefault("backoff_initial", 0.001)
    kw.setdefault("backoff_max", 0.004)
    return GenericPool(size, spawn=rt.spawn, stop=rt.stop, **kw)


async def until(predicate, limit: int = 2000) -> None:
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met")


async def test_fills_to_size_and_no_further():
    rt = FakeRuntime()
    pool = make(3, rt)
    pool.start()
    pool.start()  # idempotent
    await until(lambda: pool.available == 3)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(rt.spawned) == 3
    await pool.close()


async def test_take_hands_out_each_spare_once_and_refills():
    rt = FakeRuntime()
    pool = make(2, rt)
    pool.start()
    await until(lambda: pool.available == 2)
    first = pool.take()
    second = pool.take()
    assert first is not None and second is not None and first is not second
    await until(lambda: pool.available == 2)
    refills = list(pool._spares)
    assert first not in refills and second not in refills  # never returned
    assert pool.stats.taken >= 2
    await pool.close()
    assert first not in rt.stopped and second not in rt.stopped  # owned by their functions


async def test_take_is_synchronous_and_empty_pool_gives_none():
    rt = FakeRuntime()
    pool = make(1, rt)
    assert pool.take() is None  # not filled yet: the caller starts a fresh process
    await until(lambda: pool.available == 1)  # ...and the take kicked a refill
    await pool.close()


async def test_size_zero_never_spawns():
    rt = FakeRuntime()
    pool = make(0, rt)
    pool.start()
    assert pool.take() is None
    await asyncio.sleep(0.01)
    assert rt.attempts == 0
    await pool.close()


def test_negative_size_rejected():
    with pytest.raises(ValueError):
        GenericPool(-1, spawn=None, stop=None)  # type: ignore[arg-type]


async def test_dead_spares_are_discarded_and_stopped():
    rt = FakeRuntime()
    pool = make(2, rt)
    pool.start()
    await until(lambda: pool.available == 2)
    a, b = list(pool._spares)
    a.dead = True
    got = pool.take()
    assert got is b
    assert pool.stats.discarded == 1
    await until(lambda: a in rt.stopped)
    await until(lambda: pool.available == 2)
    await pool.close()


async def test_spawn_failures_back_off_then_recover():
    rt = FakeRuntime()
    rt.fail = 4
    pool = make(1, rt)
    pool.start()
    await until(lambda: pool.available == 1)
    assert pool.stats.spawn_failures == 4
    assert "python went missing" in pool.stats.last_spawn_error
    assert rt.attempts == 5
    await pool.close()


async def test_backoff_is_capped_and_keeps_trying():
    rt = FakeRuntime()
    rt.fail = 10**6
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0)

    pool = make(1, rt, backoff_initial=0.5, backoff_max=4.0, sleep=fake_sleep)
    pool.start()
    await until(lambda: len(sleeps) >= 6)
    await pool.close()
    assert sleeps[:6] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert pool.stats.spawn_failures >= 6


async def test_backoff_resets_after_a_successful_spawn():
    rt = FakeRuntime()
    rt.fail = 2
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0)

    pool = make(1, rt, backoff_initial=0.5, backoff_max=4.0, refill_delay=0.25, sleep=fake_sleep)
    pool.start()
    await until(lambda: pool.available == 1)
    rt.fail = 1
    pool.take()
    await until(lambda: pool.available == 1)
    await pool.close()
    assert sleeps == [0.5, 1.0, 0.25, 0.5]  # refill delay, then backoff from the start


async def test_close_stops_spares_and_cancels_a_spawn_in_flight():
    rt = FakeRuntime()
    pool = make(2, rt)
    pool.start()
    await until(lambda: pool.available == 2)
    spares = list(pool._spares)
    rt.gate = asyncio.Event()  # the next spawn hangs
    pool.take()
    await until(lambda: rt.attempts == 3)
    await pool.close()
    assert pool.available == 0
    assert spares[1] in rt.stopped
    assert pool.take() is None
    await asyncio.sleep(0.01)
    assert rt.attempts == 3  # closed: no more spawns


async def test_refill_waits_refill_delay_after_a_take():
    rt = FakeRuntime()
    pool = make(1, rt, refill_delay=3600)
    pool.start()
    await until(lambda: pool.available == 1)  # the initial fill is not delayed
    assert pool.take() is not None
    for _ in range(50):
        await asyncio.sleep(0)
    assert rt.attempts == 1 and pool.available == 0  # still waiting out the delay
    await pool.close()  # and close interrupts the wait


async def test_record_and_snapshot():
    rt = FakeRuntime()
    pool = make(1, rt)
    for outcome in ("specialised", "specialised", "init_error", "failed"):
        pool.record(outcome)
    snap = pool.snapshot()
    assert snap["specialisations"] == {"specialised": 2, "init_error": 1, "failed": 1}
    assert snap["size"] == 1 and snap["available"] == 0
    await pool.close()
