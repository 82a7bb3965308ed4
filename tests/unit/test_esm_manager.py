"""The mapping manager drives pollers as the planner says: a poller that reads is
Enabled, one that fails with SourceFailed is Failed and stays stopped until its spec
changes, one that crashes is restarted after its pause (a fake clock moves time; the
event loop only runs the pollers' tasks)."""

from __future__ import annotations

import asyncio

import pytest

from lambdakube.models import EventSourceMappingSpec
from lambdakube_router.pollers import source
from lambdakube_router.pollers.manager import RESTART, MappingManager
from lambdakube_router.snapshot import MappingEntry

RUNS: list[str] = []


class Behaviour:
    mode = "read"


class FakePoller:
    """A source kind for this test: what it does is ``Behaviour.mode``."""

    KIND = "queue"

    def __init__(self, ctx: source.PollerContext) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        RUNS.append(Behaviour.mode)
        if Behaviour.mode == "fail":
            raise source.SourceFailed("the source refuses this spec")
        if Behaviour.mode == "crash":
            raise RuntimeError("connection reset")
        self.ctx.status.started()
        self.ctx.status.lag(3)
        self.ctx.status.processed(source.OK)
        await asyncio.Event().wait()


class Engine:
    def __init__(self, functions: set[str]) -> None:
        self.functions = functions

    def get(self, namespace: str, name: str):
        return object() if name in self.functions else None

    async def invoke(self, *a, **kw):  # pragma: no cover - the fake poller never invokes
        raise AssertionError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(**spec) -> MappingEntry:
    body = {"functionName": "fn", "queue": {"name": "q"}, **spec}
    return MappingEntry("ns", "m", EventSourceMappingSpec.model_validate(body), generation=1)


@pytest.fixture
def manager(monkeypatch):
    monkeypatch.setitem(source.SOURCES, "queue", f"{__name__}:FakePoller")
    RUNS.clear()
    clock = Clock()
    m = MappingManager(engine=Engine({"fn"}), store=None, clock=clock, wall_clock=lambda: 1_800_000_000.0)
    m.clock_ = clock  # type: ignore[attr-defined]
    return m


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_reading_poller_is_enabled_with_its_lag_and_result(manager):
    Behaviour.mode = "read"
    manager.apply({("ns", "m"): entry()})
    manager.reconcile()
    await settle()
    manager.reconcile()
    status = manager.states[("ns", "m")].status()
    assert (status["state"], status["lag"], status["lastProcessingResult"]) == ("Enabled", 3, "OK")
    assert status["observedGeneration"] == 1
    await manager.close()


async def test_source_failed_stays_failed_until_the_spec_changes(manager):
    Behaviour.mode = "fail"
    manager.apply({("ns", "m"): entry()})
    manager.reconcile()
    await settle()
    manager.reconcile()
    manager.clock_.now += 3600
    manager.reconcile()
    await settle()
    state = manager.states[("ns", "m")]
    assert (state.state, state.reason, RUNS) == ("Failed", "the source refuses this spec", ["fail"])
    Behaviour.mode = "read"
    manager.apply({("ns", "m"): entry(batchSize=5)})  # a new spec: tried again
    manager.reconcile()
    await settle()
    manager.reconcile()
    assert (state.state, RUNS) == ("Enabled", ["fail", "read"])
    await manager.close()


async def test_a_crashed_poller_restarts_after_its_pause(manager):
    Behaviour.mode = "crash"
    manager.apply({("ns", "m"): entry()})
    manager.reconcile()
    await settle()
    wake_at = manager.reconcile()
    state = manager.states[("ns", "m")]
    pause = RESTART.next(0)
    assert wake_at == manager.clock_.now + pause
    assert state.last_result == "PROBLEM: RuntimeError: connection reset"
    assert "restarts after: RuntimeError: connection reset" in state.reason
    manager.clock_.now += pause - 0.001
    manager.reconcile()
    await settle()
    assert RUNS == ["crash"]  # not before its time
    Behaviour.mode = "read"
    manager.clock_.now += 0.001
    manager.reconcile()
    await settle()
    manager.reconcile()
    assert (RUNS, state.state) == (["crash", "read"], "Enabled")
    await manager.close()


async def test_disabled_missing_function_and_removed_mappings_stop(manager):
    Behaviour.mode = "read"
    manager.apply({("ns", "m"): entry(), ("ns", "orphan"): entry(functionName="nobody")})
    manager.reconcile()
    await settle()
    assert manager.states[("ns", "orphan")].task is None
    assert manager.states[("ns", "orphan")].state == "Creating"
    running = manager.states[("ns", "m")].task
    assert running is not None
    manager.apply({("ns", "m"): entry(enabled=False)})
    manager.reconcile()
    await settle()
    assert running.cancelled() and manager.states[("ns", "m")].state == "Disabled"
    assert ("ns", "orphan") not in manager.states
    await manager.close()
