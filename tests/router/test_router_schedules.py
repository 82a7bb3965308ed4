"""Schedules on a real router (local backend, real runtime processes): a tick is an
async invoke with EventBridge's Scheduled Event, through the durable queue (so the
function's destinations see it), at most once per tick across a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from lambdakube_router import keys
from tests.router.conftest import function

ECHO = """
def handler(event, context):
    return {"got": event, "requestId": context.aws_request_id}
"""
ON_SUCCESS = {"async": {"onSuccess": {"queue": "fired"}}}


async def fired(router, n: int) -> list[dict]:
    """The first ``n`` Scheduled Events the function ran with (its onSuccess records)."""

    async def check():
        data = await router.get_json("/lambdakube/v1/namespaces/default/queues/fired/messages")
        return data["messages"] if len(data["messages"]) >= n else None

    messages = await router.eventually(check, timeout=30)
    return [m["body"]["requestPayload"] for m in messages]


def at(wall: str) -> float:
    return datetime.fromisoformat(wall).replace(tzinfo=UTC).timestamp()


async def test_a_restart_fires_no_tick_twice(make_router):
    """Fake wall clock: the router fires 12:05 once; a restarted router on the same state
    dir at the same instant fires nothing (a completed pass, not a wait), then 12:10."""
    clock = [at("2026-12-04T12:04:00")]
    manifest = function("every5", ECHO, schedule={"expression": "rate(5 minutes)"}, **ON_SUCCESS)
    overrides = {"schedule_clock": lambda: clock[0], "schedule_interval_seconds": 0.05}

    router = await make_router(manifest, **overrides)
    scheduler = router.app[keys.SCHEDULER]
    await router.eventually(lambda: scheduler.passes > 0)  # armed at 12:00: created after it
    assert list(scheduler.fired) == []
    clock[0] = at("2026-12-04T12:05:01")
    [first] = await fired(router, 1)
    assert first["detail-type"] == "Scheduled Event" and first["source"] == "aws.events"
    assert first["time"] == "2026-12-04T12:05:00Z" and first["detail"] == {}
    assert first["resources"] == ["arn:aws:events:lambdakube:default:rule/every5"]
    assert first["version"] == "0" and first["account"] == "default" and first["id"]
    await router.client.close()

    router = await make_router(manifest, **overrides)
    scheduler = router.app[keys.SCHEDULER]
    await router.eventually(lambda: scheduler.passes > 1)
    assert list(scheduler.fired) == []  # 12:05 was fired by the router before
    clock[0] = at("2026-12-04T12:10:00")
    events = await fired(router, 2)
    assert [e["time"] for e in events] == ["2026-12-04T12:05:00Z", "2026-12-04T12:10:00Z"]
    assert list(scheduler.fired) == [(("default", "every5"), at("2026-12-04T12:10:00"))]
    async with router.client.get("/metrics") as resp:
        text = await resp.text()
    assert 'lambdakube_schedule_ticks_total{function="every5",namespace="default",outcome="fired"} 1.0' in text


async def test_missed_ticks_fire_once_the_latest(make_router):
    clock = [at("2026-12-04T12:04:00")]
    manifest = function("every5", ECHO, schedule={"expression": "rate(5 minutes)"}, **ON_SUCCESS)
    router = await make_router(manifest, schedule_clock=lambda: clock[0], schedule_interval_seconds=0.05)
    scheduler = router.app[keys.SCHEDULER]
    await router.eventually(lambda: scheduler.passes > 0)
    clock[0] = at("2026-12-04T13:02:00")  # twelve ticks later
    [only] = await fired(router, 1)
    assert only["time"] == "2026-12-04T13:00:00Z"
    passes = scheduler.passes
    await router.eventually(lambda: scheduler.passes > passes + 1)
    assert len(scheduler.fired) == 1


async def test_real_time_rate_fires_once_per_tick(make_router):
    """The real clock, with a test minute of one second (``--schedule-minute-seconds``):
    ``rate(1 minute)`` fires, and each tick once."""
    manifest = function("tick", ECHO, schedule={"expression": "rate(1 minute)"}, **ON_SUCCESS)
    router = await make_router(manifest, schedule_minute_seconds=1.0, schedule_interval_seconds=0.1)
    events = await fired(router, 2)
    times = [e["time"] for e in events]
    assert len(set(times)) == len(times)
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    scheduler = router.app[keys.SCHEDULER]
    ticks = [tick for _, tick in scheduler.fired]
    assert len(set(ticks)) == len(ticks) and ticks == sorted(ticks)


async def test_a_disabled_schedule_does_not_tick(make_router):
    clock = [at("2026-12-04T12:04:00")]
    manifest = function("off", ECHO, schedule={"expression": "rate(5 minutes)", "enabled": False}, **ON_SUCCESS)
    router = await make_router(manifest, schedule_clock=lambda: clock[0], schedule_interval_seconds=0.05)
    scheduler = router.app[keys.SCHEDULER]
    clock[0] = at("2026-12-04T12:20:00")
    passes = scheduler.passes
    await router.eventually(lambda: scheduler.passes > passes + 1)
    assert list(scheduler.fired) == []


async def test_a_corrupt_ticks_file_stops_schedules_not_invokes(make_router, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "schedules.sqlite3").write_bytes(b"this is not a database" * 100)
    router = await make_router(function("every5", ECHO, schedule={"expression": "rate(5 minutes)"}))
    scheduler = router.app[keys.SCHEDULER]
    assert scheduler.error is not None and "schedules.sqlite3" in scheduler.error
    status, _, body = await router.invoke_json("every5", {"x": 1})
    assert status == 200 and body["got"] == {"x": 1}
