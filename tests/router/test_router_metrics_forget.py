"""A deleted function's metrics go with it; the other functions' stay (issue 13, item 8).

Before, every label child a function ever had stayed in the registry: a router that saw
many short-lived functions exported (and kept in memory) all of them forever.
"""

from __future__ import annotations

from lambdakube_router import keys
from tests.router.conftest import function, snapshot

ECHO = """
def handler(event, context):
    return event
"""


async def scrape(router) -> list[str]:
    async with router.client.session.get(router.url("/metrics")) as resp:
        assert resp.status == 200
        return (await resp.text()).splitlines()


def series_of(lines: list[str], name: str) -> set[str]:
    """The metric names (with suffixes) that have a sample labelled function=<name>."""
    return {line.split("{", 1)[0] for line in lines if f'function="{name}"' in line and not line.startswith("#")}


async def test_deleted_function_series_are_removed_and_others_remain(make_router):
    keep = function("keep", ECHO)
    gone = function("gone", ECHO)
    off = function("off", ECHO, reservedConcurrency=0)  # every call throttled: a throttle series
    router = await make_router(keep, gone, off)
    for name in ("keep", "gone"):
        status, _, _ = await router.invoke_json(name, {"x": 1})
        assert status == 200
    status, _, _ = await router.invoke_json("off", {})
    assert status == 429

    before = await scrape(router)
    every_kind = {
        "lambdakube_invocations_total",
        "lambdakube_cold_starts_total",
        "lambdakube_init_duration_seconds_count",
        "lambdakube_run_duration_seconds_count",
        "lambdakube_queue_wait_seconds_count",
        "lambdakube_cold_start_seconds_count",
        "lambdakube_provisioned_spillover_invocations_total",
        "lambdakube_environments",
        "lambdakube_concurrent_executions",
    }
    assert every_kind <= series_of(before, "gone")
    assert every_kind <= series_of(before, "keep")
    assert "lambdakube_throttles_total" in series_of(before, "off")

    router.app[keys.ENGINE].apply(snapshot(keep))

    after = await scrape(router)
    assert series_of(after, "gone") == set()
    assert series_of(after, "off") == set()
    assert series_of(after, "keep") == series_of(before, "keep")
    assert 'lambdakube_invocations_total{function="keep",namespace="default",result="success"} 1.0' in after


async def test_function_registered_again_starts_from_fresh_series(make_router):
    gone = function("gone", ECHO)
    router = await make_router(gone)
    engine = router.app[keys.ENGINE]
    assert (await router.invoke_json("gone", {}))[0] == 200
    engine.apply(snapshot())
    engine.apply(snapshot(gone))
    assert (await router.invoke_json("gone", {}))[0] == 200
    lines = await scrape(router)
    assert 'lambdakube_invocations_total{function="gone",namespace="default",result="success"} 1.0' in lines
