"""The router reports its event loop's lag: blocking the loop (as a synchronous process
spawn or a large manifest load would) shows up in ``lambdakube_event_loop_lag_*``."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.router.conftest import function

ECHO = "def handler(event, context):\n    return event\n"


async def lag_samples(router) -> dict[str, float]:
    async with router.client.session.get(router.url("/metrics")) as resp:
        text = await resp.text()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("lambdakube_event_loop_lag")
        for s in family.samples
        if not s.labels or s.labels.get("le") is None
    }


async def test_a_blocked_loop_is_measured(make_router):
    router = await make_router(function("echo", ECHO))
    before = await lag_samples(router)
    time.sleep(0.3)  # the test shares the router's loop: this blocks it, as a spawn would
    deadline = time.monotonic() + 10
    while (after := await lag_samples(router))["lambdakube_event_loop_lag_max_seconds"] < 0.2:
        assert time.monotonic() < deadline, after
        await asyncio.sleep(0.05)
    assert after["lambdakube_event_loop_lag_seconds_count"] > before["lambdakube_event_loop_lag_seconds_count"]
    assert after["lambdakube_event_loop_lag_seconds_sum"] - before["lambdakube_event_loop_lag_seconds_sum"] >= 0.2
