"""``Informer.wait_for`` and the async dispatcher's wake-up wait: a cancel is never lost.

Why this is a rule of its own: on Python 3.11 ``asyncio.wait_for`` returns the inner
result to a task that was cancelled in the same instant the inner wait completed, so a
cancelled start that waited on a busy pod cache kept running after its pool closed, and
the router's shutdown waited for it. Each case cancels a waiter ``k`` loop iterations
after the change that satisfies it, for every ``k`` up to when the waiter is done, so
the instant where the race lies is among them (with ``asyncio.wait_for`` the first three
lost their cancel). No network: the informer never starts.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from lambdakube_router.asyncq.dispatcher import Dispatcher
from lambdakube_router.asyncq.store import AsyncStore
from lambdakube_router.informer import Informer

ITERATIONS = range(12)


async def settle(iterations: int = 5) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)


def informer() -> Informer:
    return Informer(lambda: None, SimpleNamespace(host="http://127.0.0.1:1"), api="/api/v1", plural="pods")


@pytest.mark.parametrize("k", ITERATIONS)
async def test_a_waiter_cancelled_as_its_change_arrives_ends_cancelled(k):
    cache = informer()
    waiter = asyncio.create_task(cache.wait_for(lambda: cache.version > 0, timeout=30))
    await settle()  # it waits on the condition now (the lock released)
    await cache.poke()
    for _ in range(k):
        await asyncio.sleep(0)
    if waiter.done():  # satisfied before the cancel: nothing to lose
        assert waiter.result() is True
        return
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_waiter_without_its_change_returns_false_at_its_timeout():
    cache = informer()
    assert await cache.wait_for(lambda: cache.version > 0, timeout=0.01) is False
    await cache.poke()
    assert await cache.wait_for(lambda: cache.version > 0, timeout=0.01) is True


@pytest.mark.parametrize("k", ITERATIONS)
async def test_the_dispatcher_loop_cancelled_as_it_is_woken_ends(k, tmp_path):
    """``Dispatcher.close`` cancels its loop and waits for it: a lost cancel left the
    router's shutdown waiting forever."""
    store = AsyncStore(tmp_path / "q")
    await store.open()
    dispatcher = Dispatcher(store, engine=None, poll_interval=30)  # type: ignore[arg-type] - no event is delivered
    dispatcher.start()
    loop_task = dispatcher._task
    assert loop_task is not None
    try:
        for _ in range(20):  # until it waits for its wake-up (the store answers from a thread)
            await asyncio.sleep(0.01)
        dispatcher.notify()
        for _ in range(k):
            await asyncio.sleep(0)
        loop_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop_task
    finally:
        await dispatcher.close()
        await store.close()
