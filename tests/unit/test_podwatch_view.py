"""WatchedPod, the router's picture of one pod from its watch: a change that lands while
the reader is busy (probing the pod) is never missed, and a refused watch is an error
the start reports. No sleeps: versions decide."""

from __future__ import annotations

import asyncio

from lambdakube_router.backends.podwatch import WatchedPod

POD = {"metadata": {"name": "p"}, "status": {"podIP": "10.244.0.9"}}


async def test_a_change_while_the_reader_was_busy_is_seen_at_once():
    view = WatchedPod()
    seen = view.version
    await view.apply({"type": "MODIFIED", "object": POD})  # lands before the reader waits
    await asyncio.wait_for(view.next_change(seen, timeout=3600), 1)  # returns without waiting
    assert view.pod == POD and view.version == seen + 1


async def test_a_waiting_reader_wakes_on_the_next_event():
    view = WatchedPod()
    waiter = asyncio.ensure_future(view.next_change(view.version, timeout=3600))
    await asyncio.sleep(0)
    assert not waiter.done()
    await view.apply({"type": "ADDED", "object": POD})
    await asyncio.wait_for(waiter, 1)


async def test_deleted_and_refused():
    view = WatchedPod()
    await view.apply({"type": "ERROR", "object": {"message": "too old"}})
    assert view.version == 0 and view.error is None  # reconnecting re-lists; nothing to report
    await view.apply({"type": "DELETED", "object": POD})
    assert view.gone
    await view.fail("watching pod ns/p: HTTP 403")
    assert view.error and view.version == 2
