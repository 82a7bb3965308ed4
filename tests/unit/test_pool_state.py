"""The pool's rules (``lambdakube_router.pool_state``) as a table of named cases.

Each case builds a state from a history of events, applies one more event and checks the
commands it returns, then what the state shows. Times are offsets from a fixed NOW; ids
come from a counter (``p1``, ``p2``: provisioned, ``d1``: on-demand); waiters are names;
the token bucket and the backend's draining marks are fakes. No event loop, no sleep.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from pathlib import Path

import pytest

from lambdakube.backoff import Backoff
from lambdakube.models import FunctionSpec
from lambdakube_router import pool_protocol, pool_state
from lambdakube_router.backends.base import EnvironmentHandle, EnvironmentStartError
from lambdakube_router.limits import RATE_EXCEEDED, Throttle
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
    EnvLost,
    EnvState,
    FailClosed,
    FailStart,
    FailThrottled,
    Hand,
    HandBack,
    HandRefused,
    LeaseRequested,
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
from lambdakube_router.pool_state import PoolState

NOW = 1000.0
INLINE = {"code": {"inline": {"source": "def handler(e, c):\n    return e\n"}}}
ERROR = EnvironmentStartError("Runtime.ImportModuleError: No module named 'nope'")
RATE = Throttle(RATE_EXCEEDED, 1)
W1, W2, W3 = "w1", "w2", "w3"
STARTING, IDLE, BUSY, DRAINING = EnvState.STARTING, EnvState.IDLE, EnvState.BUSY, EnvState.DRAINING
GONE = None


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", **INLINE, **kw})


ON_DEMAND = spec(idleTimeoutSeconds=30)
PROV1 = spec(provisionedConcurrency=1)
PROV2 = spec(provisionedConcurrency=2)
PROV3 = spec(provisionedConcurrency=3)
NEW_CODE = {"env": {"VERSION": "2"}}  # a shaping field: a new spec hash
NEW_PROV1 = spec(provisionedConcurrency=1, **NEW_CODE)
NEW_SPEC = spec(idleTimeoutSeconds=30, **NEW_CODE)


def at(offset: float, event):
    """``event`` at NOW + ``offset`` (events without one happen at NOW)."""
    return offset, event


def at_all(offset: float, events: list) -> list:
    return [at(offset, e) for e in events]


def started(env_id: str, backend_id: str | None = None) -> Started:
    return Started(env_id, EnvironmentHandle(address="10.0.0.7:8080", env_id=backend_id or env_id, init_duration=0.01))


def served(*release_order: str) -> list:
    """On-demand envs d1..dN started for N requests and released in ``release_order``
    (the last one released is the most recently used)."""
    n = len(release_order)
    return (
        [LeaseRequested(f"r{i}") for i in range(1, n + 1)]
        + [started(f"d{i}") for i in range(1, n + 1)]
        + [Released(e) for e in release_order]
    )


def busy(n: int) -> list:
    """On-demand envs d1..dN started and busy with requests r1..rN."""
    return [LeaseRequested(f"r{i}") for i in range(1, n + 1)] + [started(f"d{i}") for i in range(1, n + 1)]


def provisioned(n: int) -> list:
    """Provisioned envs p1..pN started and idle (the spec's target must be at least N)."""
    return [Provision()] + [started(f"p{i}") for i in range(1, n + 1)]


def case(
    name: str,
    *,
    when,
    do: list,
    given=(),
    s: FunctionSpec = ON_DEMAND,
    tokens: int | None = None,
    draining=(),
    dead=(),
    refill_max: float = 30.0,
    **expect,
):
    """``tokens``: scaling tokens left (None: unlimited); ``draining``: env ids the backend
    marks draining before ``when``; ``dead``: env ids the backend knows dead (``is_lost``)
    before ``when``, without having reported them. ``expect``: ``states`` {id: EnvState, GONE: not in the
    pool}, ``waiting``, ``starting``, ``generation``, ``live`` (provisioned of the current
    spec), ``tokens_taken`` (by ``when``), ``stats`` (PoolStats fields)."""
    return pytest.param(s, list(given), when, do, tokens, (set(draining), set(dead)), refill_max, expect, id=name)


CASES = [
    # -- leasing ---------------------------------------------------------------------------
    case(
        "lease: a warm provisioned env before an on-demand one",
        s=PROV1,
        given=[*served("d1"), *provisioned(1)],
        when=LeaseRequested(W1),
        do=[Hand("p1", W1)],
        states={"p1": BUSY, "d1": IDLE},
        tokens_taken=0,
    ),
    case(
        "lease: of the on-demand envs, the most recently used",
        given=served("d2", "d3", "d1"),
        when=LeaseRequested(W1),
        do=[Hand("d1", W1)],
    ),
    case(
        "lease: of the provisioned envs, the most recently used",
        s=PROV2,
        given=[*provisioned(2), LeaseRequested("r1"), LeaseRequested("r2"), Released("p2"), Released("p1")],
        when=LeaseRequested(W1),
        do=[Hand("p1", W1)],
    ),
    case(
        "lease: no idle env: a token, and a start the request waits for",
        when=LeaseRequested(W1),
        do=[StartEnv("d1", False)],
        states={"d1": STARTING},
        waiting=1,
        starting=1,
        tokens_taken=1,
    ),
    case(
        "lease: every start is claimed by an earlier waiter: another one",
        given=[LeaseRequested(W1)],
        when=LeaseRequested(W2),
        do=[StartEnv("d2", False)],
        waiting=2,
        tokens_taken=1,
    ),
    case(
        "lease: a start whose waiter left is counted on, without a token",
        given=[LeaseRequested(W1), WaiterGone(W1)],
        when=LeaseRequested(W2),
        do=[],
        waiting=1,
        starting=1,
        tokens_taken=0,
    ),
    case(
        "lease: a start whose waiter got a warm env meanwhile is counted on",
        given=[*busy(1), LeaseRequested(W1), Released("d1")],
        when=LeaseRequested(W2),
        do=[],
        states={"d1": BUSY, "d2": STARTING},
        waiting=1,
        tokens_taken=0,
    ),
    case(
        "lease: no token for a needed start: throttled at once, nothing waits",
        tokens=0,
        when=LeaseRequested(W1),
        do=[FailThrottled(W1, RATE)],
        states={},
        waiting=0,
    ),
    case(
        "lease: a warm env needs no token (the history's start took the last one)",
        tokens=1,
        given=served("d1"),
        when=LeaseRequested(W1),
        do=[Hand("d1", W1)],
        tokens_taken=0,
    ),
    case(
        "lease: a starting provisioned env is not waited for: spill over to an on-demand start",
        s=PROV1,
        given=[Provision()],
        when=LeaseRequested(W1),
        do=[StartEnv("d1", False)],
        states={"p1": STARTING, "d1": STARTING},
    ),
    case(
        "lease: the pool is closed",
        given=[Close()],
        when=LeaseRequested(W1),
        do=[FailClosed(W1)],
        waiting=0,
        tokens_taken=0,
    ),
    # -- hand-off ----------------------------------------------------------------------------
    case(
        "hand-off: the first env up goes to the oldest waiter, whichever start it was for",
        given=[LeaseRequested(W1), LeaseRequested(W2)],
        when=started("d2"),
        do=[Hand("d2", W1)],
        states={"d1": STARTING, "d2": BUSY},
        waiting=1,
    ),
    case(
        "hand-off: a released env goes straight to the oldest waiter",
        given=[*busy(1), LeaseRequested(W1), LeaseRequested(W2)],
        when=Released("d1"),
        do=[Hand("d1", W1)],
        states={"d1": BUSY},
        waiting=1,
    ),
    case(
        "hand-off: a waiter that left is not handed anything",
        given=[LeaseRequested(W1), LeaseRequested(W2), WaiterGone(W1)],
        when=started("d1"),
        do=[Hand("d1", W2)],
        waiting=0,
    ),
    case(
        "hand-off: a waiter gone at hand-off gives the env back: the next waiter gets it",
        given=[LeaseRequested(W1), LeaseRequested(W2), started("d1")],
        when=HandRefused("d1"),
        do=[Hand("d1", W2)],
        states={"d1": BUSY},
        waiting=0,
    ),
    case(
        "hand-off: given back with nobody waiting: idle",
        given=[LeaseRequested(W1), started("d1")],
        when=HandRefused("d1"),
        do=[],
        states={"d1": IDLE},
    ),
    case(
        "hand-off: nobody waiting: a started env is idle",
        given=[LeaseRequested(W1), WaiterGone(W1)],
        when=started("d1"),
        do=[],
        states={"d1": IDLE},
    ),
    case(
        "start: the backend's id replaces the pool's",
        given=[LeaseRequested(W1)],
        when=started("d1", "generic-7"),
        do=[Hand("generic-7", W1)],
        states={"d1": GONE, "generic-7": BUSY},
    ),
    # -- start failures ----------------------------------------------------------------------
    case(
        "start failure: the waiter that counted on it gets its error",
        given=[LeaseRequested(W1)],
        when=StartFailed("d1", ERROR),
        do=[FailStart(W1, ERROR)],
        states={"d1": GONE},
        waiting=0,
        starting=0,
        stats={"start_failures": 1, "last_start_error": ERROR.message},
    ),
    case(
        "start failure: only waiters beyond what the remaining starts can serve fail, the oldest",
        given=[LeaseRequested(W1), LeaseRequested(W2), LeaseRequested(W3)],
        when=StartFailed("d2", ERROR),
        do=[FailStart(W1, ERROR)],
        waiting=2,
        starting=2,
    ),
    case(
        "start failure: a start nobody counts on fails nobody",
        given=[*busy(1), LeaseRequested(W1), Released("d1")],
        when=StartFailed("d2", ERROR),
        do=[],
        states={"d1": BUSY},
        stats={"start_failures": 1},
    ),
    case(
        "start failure: an on-demand one is not retried (the next request starts one)",
        given=[LeaseRequested(W1), WaiterGone(W1)],
        when=StartFailed("d1", ERROR),
        do=[],
        starting=0,
    ),
    case(
        "start failure: a provisioned one is retried after 0.5 s",
        s=PROV1,
        given=[Provision()],
        when=StartFailed("p1", ERROR),
        do=[RefillAt(NOW + 0.5)],
        states={"p1": GONE},
        live=0,
    ),
    case(
        "start failure: the refill starts the missing provisioned env",
        s=PROV1,
        given=[Provision(), StartFailed("p1", ERROR)],
        when=at(0.5, RefillDue()),
        do=[StartEnv("p2", True)],
        live=1,
    ),
    case(
        "start failure: the provisioned backoff doubles",
        s=PROV1,
        given=[Provision(), StartFailed("p1", ERROR), at(0.5, RefillDue())],
        when=at(0.5, StartFailed("p2", ERROR)),
        do=[RefillAt(NOW + 0.5 + 1.0)],
    ),
    case(
        "start failure: the provisioned backoff stops at its maximum",
        s=PROV1,
        refill_max=1.5,
        given=[Provision(), StartFailed("p1", ERROR), RefillDue(), StartFailed("p2", ERROR), RefillDue()],
        when=StartFailed("p3", ERROR),
        do=[RefillAt(NOW + 1.5)],
    ),
    case(
        "start failure: a provisioned start that works resets the backoff",
        s=PROV2,
        given=[Provision(), StartFailed("p1", ERROR), started("p2"), RefillDue()],
        when=StartFailed("p3", ERROR),
        do=[RefillAt(NOW + 0.5)],
    ),
    case(
        "start failure: a pending refill stays (one timer at a time)",
        s=PROV2,
        given=[Provision(), StartFailed("p1", ERROR)],
        when=StartFailed("p2", ERROR),
        do=[],
    ),
    case(
        "start failure: after close, no refill",
        s=PROV1,
        given=[Provision(), Close()],
        when=StartFailed("p1", ERROR),
        do=[],
    ),
    # -- release -----------------------------------------------------------------------------
    case("release: healthy: idle again", given=busy(1), when=at(-5, Released("d1")), do=[], states={"d1": IDLE}),
    case(
        "release: unhealthy: stopped",
        given=busy(1),
        when=Released("d1", healthy=False),
        do=[Stop("d1", UNHEALTHY)],
        states={"d1": DRAINING},
        stats={"retired_unhealthy": 1},
    ),
    case(
        "release: unhealthy provisioned: stopped, never handed back, and replaced",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1")],
        when=Released("p1", healthy=False),
        do=[Stop("p1", UNHEALTHY), RefillAt(NOW)],
        live=0,
    ),
    case(
        "release: an older spec's on-demand env: stopped",
        given=[*busy(1), SpecChanged(spec(**NEW_CODE))],
        when=Released("d1"),
        do=[Stop("d1", OUTDATED)],
    ),
    case(
        "release: an older spec's healthy provisioned env: handed back, not stopped",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1"), SpecChanged(NEW_PROV1)],
        when=Released("p1"),
        do=[HandBack("p1", OUTDATED), RefillAt(NOW)],
        live=1,
    ),
    case(
        "release: an older spec's unhealthy provisioned env: stopped",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1"), SpecChanged(NEW_PROV1)],
        when=Released("p1", healthy=False),
        do=[Stop("p1", UNHEALTHY), RefillAt(NOW)],
    ),
    case(
        "release: a provisioned env beyond a lowered target: handed back",
        s=PROV2,
        given=[*provisioned(2), LeaseRequested("r1"), LeaseRequested("r2"), SpecChanged(PROV1)],
        when=Released("p2"),
        do=[HandBack("p2", SURPLUS), RefillAt(NOW)],
        live=1,
    ),
    case(
        "release: a provisioned env within the lowered target: idle",
        s=PROV2,
        given=[*provisioned(2), LeaseRequested("r1"), LeaseRequested("r2"), SpecChanged(PROV1), Released("p2")],
        when=Released("p1"),
        do=[],
        states={"p1": IDLE},
        live=1,
    ),
    case(
        "release: marked draining: stopped",
        given=busy(1),
        draining={"d1"},
        when=Released("d1"),
        do=[Stop("d1", DRAINED)],
    ),
    case(
        "release: a provisioned env of the current spec marked draining: stopped (the router finishes it)",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1")],
        draining={"p1"},
        when=Released("p1"),
        do=[Stop("p1", DRAINED), RefillAt(NOW)],
    ),
    case(
        "release: retired under its request (the pool closed): nothing more",
        given=[*busy(1), Close()],
        when=Released("d1"),
        do=[],
        states={"d1": DRAINING},
    ),
    case(
        "release: stopped under its request (the pool closed): nothing more",
        given=[*busy(1), Close(), Stopped("d1")],
        when=Released("d1"),
        do=[],
        states={"d1": GONE},
    ),
    # -- draining ----------------------------------------------------------------------------
    case(
        "draining: never leased: retired on the way, the next idle env is leased",
        given=served("d1", "d2"),
        draining={"d2"},
        when=LeaseRequested(W1),
        do=[Stop("d2", DRAINED), Hand("d1", W1)],
        states={"d2": DRAINING},
    ),
    case(
        "draining: a draining provisioned env is passed over for an on-demand one",
        s=PROV1,
        given=[*served("d1"), *provisioned(1)],
        draining={"p1"},
        when=LeaseRequested(W1),
        do=[Stop("p1", DRAINED), RefillAt(NOW), Hand("d1", W1)],
    ),
    case(
        "draining: all idle envs draining: retired, and a cold start",
        given=served("d1"),
        draining={"d1"},
        when=LeaseRequested(W1),
        do=[Stop("d1", DRAINED), StartEnv("d2", False)],
    ),
    case(
        "draining: idle ones are retired by the reaper, not counted as reaped",
        s=PROV1,
        given=[*served("d1"), *provisioned(1)],
        draining={"d1", "p1"},
        when=Reap(),
        do=[Stop("p1", DRAINED), RefillAt(NOW), Stop("d1", DRAINED)],
        stats={"reaped": 0},
    ),
    case(
        "draining: a retired env is gone once stopped",
        given=[*busy(1), Released("d1", healthy=False)],
        when=Stopped("d1"),
        do=[],
        states={"d1": GONE},
        counts={"starting": 0, "idle": 0, "busy": 0, "draining": 0},
    ),
    # -- reaping -----------------------------------------------------------------------------
    case(
        "reap: an on-demand env idle for idleTimeoutSeconds is stopped",
        given=[*busy(1), at(-30, Released("d1"))],
        when=Reap(),
        do=[Stop("d1", REAPED)],
        stats={"reaped": 1},
    ),
    case(
        "reap: idle for less: kept",
        given=[*busy(1), at(-29.9, Released("d1"))],
        when=Reap(),
        do=[],
        states={"d1": IDLE},
    ),
    case(
        "reap: idle time counts from the last release, not the start",
        given=[*at_all(-1000, busy(1)), at(-10, Released("d1"))],
        when=Reap(),
        do=[],
    ),
    case("reap: a busy env is not idle however long it runs", given=at_all(-1000, busy(1)), when=Reap(), do=[]),
    case(
        "reap: provisioned envs never",
        s=PROV1,
        given=at_all(-10_000, provisioned(1)),
        when=Reap(),
        do=[],
        states={"p1": IDLE},
    ),
    # -- spec changes ------------------------------------------------------------------------
    case(
        "spec: the same spec hash (only the idle timeout): no new generation, envs kept",
        given=served("d1"),
        when=SpecChanged(spec(idleTimeoutSeconds=5)),
        do=[],
        generation=0,
        states={"d1": IDLE},
    ),
    case(
        "spec: a new hash: a new generation, idle envs retire (provisioned ones handed back)",
        s=PROV1,
        given=[*served("d1"), *provisioned(1)],
        when=SpecChanged(NEW_PROV1),
        do=[HandBack("p1", OUTDATED), RefillAt(NOW), Stop("d1", OUTDATED), StartEnv("p2", True)],
        generation=1,
        live=1,
    ),
    case(
        "spec: a busy old env keeps its request; its replacement starts at once",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1")],
        when=SpecChanged(NEW_PROV1),
        do=[StartEnv("p2", True)],
        states={"p1": BUSY, "p2": STARTING},
    ),
    case(
        "spec: provisioned starts waiting for old-spec pods are cancelled and replaced",
        s=PROV1,
        given=[Provision()],
        when=SpecChanged(NEW_PROV1),
        do=[CancelStart("p1"), StartEnv("p2", True)],
        starting=2,
        live=1,
    ),
    case(
        "spec: a cancelled start is forgotten",
        s=PROV1,
        given=[Provision(), SpecChanged(NEW_PROV1)],
        when=StartCancelled("p1"),
        do=[],
        states={"p1": GONE, "p2": STARTING},
        starting=1,
    ),
    case(
        "spec: an old provisioned start that came up anyway is handed back, not leased",
        s=PROV1,
        given=[Provision(), SpecChanged(NEW_PROV1)],
        when=started("p1"),
        do=[HandBack("p1", OUTDATED), RefillAt(NOW)],
    ),
    case(
        "spec: an old on-demand start is stopped when it comes up, never leased",
        given=[LeaseRequested(W1), WaiterGone(W1), SpecChanged(spec(**NEW_CODE))],
        when=started("d1"),
        do=[Stop("d1", OUTDATED)],
    ),
    case(
        "spec: a request counting on an old on-demand start gets a start of the new spec",
        given=[LeaseRequested(W1)],
        when=SpecChanged(NEW_SPEC),
        do=[CancelStart("d1"), StartEnv("d2", False)],
        waiting=1,
        starting=2,
        tokens_taken=1,
        env_generations={"d2": 1},
    ),
    case(
        "spec: ... and is handed it when it comes up",
        given=[LeaseRequested(W1), SpecChanged(NEW_SPEC)],
        when=started("d2"),
        do=[Hand("d2", W1)],
        waiting=0,
    ),
    case(
        "spec: the old start that came up anyway is stopped; its waiter waits for the new one",
        given=[LeaseRequested(W1), SpecChanged(NEW_SPEC)],
        when=started("d1"),
        do=[Stop("d1", OUTDATED)],
        waiting=1,
        states={"d2": STARTING},
    ),
    case(
        "spec: the old start failing fails no waiter counting on a new one",
        given=[LeaseRequested(W1), SpecChanged(NEW_SPEC)],
        when=StartFailed("d1", ERROR),
        do=[],
        waiting=1,
    ),
    case(
        "spec: the old start's cancel leaves the new start counted",
        given=[LeaseRequested(W1), SpecChanged(NEW_SPEC), StartCancelled("d1")],
        when=LeaseRequested(W2),
        do=[StartEnv("d3", False)],
        waiting=2,
    ),
    case(
        "spec: a request after the change never counts on a start of the old spec",
        given=[LeaseRequested(W1), WaiterGone(W1), SpecChanged(NEW_SPEC)],
        when=LeaseRequested(W2),
        do=[StartEnv("d2", False)],
        env_generations={"d2": 1},
    ),
    case(
        "spec: waiters beyond the tokens left are throttled, the newest first",
        tokens=4,
        given=[LeaseRequested(W1), LeaseRequested(W2), LeaseRequested(W3)],
        when=SpecChanged(NEW_SPEC),
        do=[
            CancelStart("d1"),
            CancelStart("d2"),
            CancelStart("d3"),
            StartEnv("d4", False),
            FailThrottled(W3, RATE),
            FailThrottled(W2, RATE),
        ],
        waiting=1,
    ),
    case(
        "spec: new leases start envs of the new spec",
        given=[*served("d1"), SpecChanged(spec(**NEW_CODE))],
        when=LeaseRequested(W1),
        do=[StartEnv("d2", False)],
        generation=1,
        env_generations={"d2": 1},
    ),
    # -- provisioned concurrency -------------------------------------------------------------
    case(
        "provisioned: the missing ones start",
        s=PROV2,
        when=Provision(),
        do=[StartEnv("p1", True), StartEnv("p2", True)],
        starting=2,
        live=2,
    ),
    case("provisioned: starting ones count", s=PROV2, given=[Provision()], when=Provision(), do=[]),
    case(
        "provisioned: a lowered target hands idle extras back, the least recently used first",
        s=PROV3,
        given=provisioned(3),
        when=SpecChanged(PROV1),
        do=[HandBack("p1", SURPLUS), RefillAt(NOW), HandBack("p2", SURPLUS)],
        live=1,
        generation=0,
    ),
    case(
        "provisioned: a retired one is replaced when the refill is due",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1"), Released("p1", healthy=False)],
        when=RefillDue(),
        do=[StartEnv("p2", True)],
    ),
    case(
        "provisioned: an env handed back is not counted once draining",
        s=PROV3,
        given=[*provisioned(3), SpecChanged(PROV1)],
        when=RefillDue(),
        do=[],
        live=1,
    ),
    # -- close -------------------------------------------------------------------------------
    case(
        "close: waiters fail, provisioned envs go back, on-demand ones stop, starts are cancelled",
        s=PROV1,
        given=[*served("d1"), *provisioned(1), LeaseRequested("r1"), LeaseRequested("r2"), LeaseRequested(W1)],
        when=Close(),
        do=[FailClosed(W1), Stop("d1", CLOSED), HandBack("p1", CLOSED), CancelStart("d2")],
        waiting=0,
        states={"p1": DRAINING, "d1": DRAINING, "d2": STARTING},
    ),
    case(
        "close: an unhealthy provisioned env already stopping stays stopped",
        s=PROV1,
        given=[*provisioned(1), LeaseRequested("r1"), Released("p1", healthy=False)],
        when=Close(),
        do=[],
        states={"p1": DRAINING},
    ),
    case("close: nothing is provisioned or refilled afterwards", s=PROV1, given=[Close()], when=RefillDue(), do=[]),
    case(
        "close: an env that comes up after close is retired",
        s=PROV1,
        given=[Provision(), Close()],
        when=started("p1"),
        do=[HandBack("p1", CLOSED)],
    ),
    case("close: twice: nothing more", given=[*served("d1"), Close()], when=Close(), do=[]),
    # -- environments that die by themselves -------------------------------------------------
    case(
        "lost: an idle env is retired and stopped at once",
        given=served("d1"),
        when=EnvLost("d1"),
        do=[Stop("d1", LOST)],
        states={"d1": DRAINING},
        stats={"lost": 1},
    ),
    case(
        "lost: an idle provisioned env: stopped, never handed back, and replaced",
        s=PROV1,
        given=provisioned(1),
        when=EnvLost("p1"),
        do=[Stop("p1", LOST), RefillAt(NOW)],
        live=0,
    ),
    case(
        "lost: a busy env is not stopped under its request",
        given=busy(1),
        when=EnvLost("d1"),
        do=[],
        states={"d1": BUSY},
        stats={"lost": 0},
    ),
    case(
        "lost: a busy env is retired when its request releases it, even healthy",
        given=[*busy(1), EnvLost("d1")],
        when=Released("d1"),
        do=[Stop("d1", LOST)],
        stats={"lost": 1, "retired_unhealthy": 0},
    ),
    case(
        "lost: a starting env is the start's to report",
        given=[LeaseRequested(W1)],
        when=EnvLost("d1"),
        do=[],
        states={"d1": STARTING},
    ),
    case("lost: an env the pool does not have: nothing", given=served("d1"), when=EnvLost("x9"), do=[]),
    case(
        "lost: a second report of a retired env: nothing",
        given=[*served("d1"), EnvLost("d1")],
        when=EnvLost("d1"),
        do=[],
        stats={"lost": 1},
    ),
    case(
        "lease: a dead idle env not reported yet is retired, and the next idle one is leased",
        given=served("d1", "d2"),
        dead=["d2"],
        when=LeaseRequested(W1),
        do=[Stop("d2", LOST), Hand("d1", W1)],
        stats={"lost": 1},
    ),
    case(
        "lease: the only idle env is dead: retired, and a cold start for the request",
        given=served("d1"),
        dead=["d1"],
        when=LeaseRequested(W1),
        do=[Stop("d1", LOST), StartEnv("d2", False)],
        waiting=1,
    ),
    case(
        "start: an env dead before it was handed out: retired, and its waiter gets a new start",
        given=[LeaseRequested(W1)],
        dead=["d1"],
        when=started("d1"),
        do=[Stop("d1", LOST), StartEnv("d2", False)],
        waiting=1,
        starting=1,
    ),
    case(
        "release: a dead env released healthy is retired, not idle",
        given=busy(1),
        dead=["d1"],
        when=Released("d1"),
        do=[Stop("d1", LOST)],
        states={"d1": DRAINING},
    ),
]


# -- environments with slots (perEnvironmentConcurrency > 1) ---------------------------------

S2 = spec(runtime="nodejs20.x", perEnvironmentConcurrency=2, idleTimeoutSeconds=30)
NEW_S2 = spec(runtime="nodejs20.x", perEnvironmentConcurrency=2, idleTimeoutSeconds=30, **NEW_CODE)
#: r1, r2 on d1 (full), r3 on d2 (one slot free).
THREE_ON_TWO = [LeaseRequested("r1"), LeaseRequested("r2"), LeaseRequested("r3"), started("d1"), started("d2")]
#: r1 and r2 on d1: full.
FULL = [LeaseRequested("r1"), LeaseRequested("r2"), started("d1")]

SLOT_CASES = [
    case(
        "slots: a started env takes as many waiters as it has slots",
        s=S2,
        given=[LeaseRequested(W1), LeaseRequested(W2)],
        when=started("d1"),
        do=[Hand("d1", W1), Hand("d1", W2)],
        states={"d1": BUSY},
        in_flight={"d1": 2},
        waiting=0,
    ),
    case(
        "slots: a second waiter counts on the free slot of the first start, without a token",
        s=S2,
        given=[LeaseRequested(W1)],
        when=LeaseRequested(W2),
        do=[],
        waiting=2,
        starting=1,
        tokens_taken=0,
    ),
    case(
        "slots: a waiter beyond the starting env's slots gets a start of its own",
        s=S2,
        given=[LeaseRequested(W1), LeaseRequested(W2)],
        when=LeaseRequested(W3),
        do=[StartEnv("d2", False)],
        waiting=3,
        starting=2,
        tokens_taken=1,
    ),
    case(
        "slots: a busy env with a free slot is leased before a cold start",
        s=S2,
        given=[LeaseRequested("r1"), started("d1")],
        when=LeaseRequested(W1),
        do=[Hand("d1", W1)],
        in_flight={"d1": 2},
        tokens_taken=0,
    ),
    case(
        "slots: a busy env with a free slot is leased before an idle one (the idle one is reaped later)",
        s=S2,
        given=[*THREE_ON_TWO, Released("d1"), Released("d1")],
        when=LeaseRequested(W1),
        do=[Hand("d2", W1)],
        states={"d1": IDLE, "d2": BUSY},
        in_flight={"d1": 0, "d2": 2},
    ),
    case(
        "slots: every slot is full: a cold start (ceil(in flight / slots) environments)",
        s=S2,
        given=FULL,
        when=LeaseRequested(W1),
        do=[StartEnv("d2", False)],
        in_flight={"d1": 2},
        tokens_taken=1,
    ),
    case(
        "slots: one of two released: still busy, open again, not idle",
        s=S2,
        given=FULL,
        when=Released("d1"),
        do=[],
        states={"d1": BUSY},
        in_flight={"d1": 1},
    ),
    case(
        "slots: a released slot goes straight to the oldest waiter",
        s=S2,
        given=[*FULL, LeaseRequested(W1)],
        when=Released("d1"),
        do=[Hand("d1", W1)],
        in_flight={"d1": 2},
        waiting=0,
        starting=1,
    ),
    case(
        "slots: a waiter that leaves at hand-off frees its slot only",
        s=S2,
        given=[LeaseRequested(W1), LeaseRequested(W2), started("d1")],
        when=HandRefused("d1"),
        do=[],
        states={"d1": BUSY},
        in_flight={"d1": 1},
    ),
    case(
        "slots: reaping skips an env with one invocation in flight",
        s=S2,
        given=[*FULL, Released("d1")],
        when=at(60, Reap()),
        do=[],
        states={"d1": BUSY},
    ),
    case(
        "slots: an env with nothing in flight is idle and reaped",
        s=S2,
        given=[*FULL, Released("d1"), Released("d1")],
        when=at(60, Reap()),
        do=[Stop("d1", REAPED)],
        states={"d1": DRAINING},
        stats={"reaped": 1},
    ),
    case(
        "slots: released unhealthy (a timeout recycles the env): stopped at once, the other request fails there",
        s=S2,
        given=FULL,
        when=Released("d1", healthy=False),
        do=[Stop("d1", UNHEALTHY)],
        states={"d1": DRAINING},
        stats={"retired_unhealthy": 1},
    ),
    case(
        "slots: the other request of a recycled env released later: nothing more",
        s=S2,
        given=[*FULL, Released("d1", healthy=False)],
        when=Released("d1"),
        do=[],
        states={"d1": DRAINING},
    ),
    case(
        "slots: an older spec's env with one still in flight is not leased: a start of the new spec",
        s=S2,
        given=[LeaseRequested("r1"), started("d1"), SpecChanged(NEW_S2)],
        when=LeaseRequested(W1),
        do=[StartEnv("d2", False)],
        env_generations={"d1": 0, "d2": 1},
    ),
    case(
        "slots: an older spec's env is retired at its last release, not before",
        s=S2,
        given=[*FULL, SpecChanged(NEW_S2)],
        when=Released("d1"),
        do=[],
        states={"d1": BUSY},
        in_flight={"d1": 1},
    ),
    case(
        "slots: an older spec's env is stopped when its last request is released",
        s=S2,
        given=[*FULL, SpecChanged(NEW_S2), Released("d1")],
        when=Released("d1"),
        do=[Stop("d1", OUTDATED)],
        states={"d1": DRAINING},
    ),
    case(
        "slots: a draining open env is not leased; retired at its last release",
        s=S2,
        given=[LeaseRequested("r1"), started("d1")],
        draining=["d1"],
        when=LeaseRequested(W1),
        do=[StartEnv("d2", False)],
        states={"d1": BUSY},
    ),
    case(
        "slots: a lost busy env is not leased again",
        s=S2,
        given=[LeaseRequested("r1"), started("d1"), EnvLost("d1")],
        when=LeaseRequested(W1),
        do=[StartEnv("d2", False)],
    ),
    case(
        "slots: a failed start fails only the waiters beyond the remaining starts' slots",
        s=S2,
        given=[LeaseRequested(W1), LeaseRequested(W2), LeaseRequested(W3)],
        when=StartFailed("d1", ERROR),
        do=[FailStart(W1, ERROR)],
        waiting=2,
        starting=1,
    ),
    case(
        "slots: provisioned concurrency 3 with 2 slots keeps ceil(3/2) = 2 environments",
        s=spec(runtime="nodejs20.x", perEnvironmentConcurrency=2, provisionedConcurrency=3),
        when=Provision(),
        do=[StartEnv("p1", True), StartEnv("p2", True)],
        live=2,
    ),
    case(
        "slots: provisioned envs' slots all taken: the next invocation spills over",
        s=spec(runtime="nodejs20.x", perEnvironmentConcurrency=2, provisionedConcurrency=4),
        given=[*provisioned(2), *(LeaseRequested(f"r{i}") for i in range(1, 5))],
        when=LeaseRequested(W1),
        do=[StartEnv("d1", False)],
        in_flight={"p1": 2, "p2": 2},
    ),
    case(
        "slots: a provisioned env's free slot before an on-demand env's",
        s=spec(runtime="nodejs20.x", perEnvironmentConcurrency=2, provisionedConcurrency=2),
        given=[*provisioned(1), LeaseRequested("r1"), LeaseRequested("r2"), LeaseRequested("r3"), started("d1")],
        when=Released("p1"),
        do=[],
        in_flight={"p1": 1, "d1": 1},
    ),
]


@pytest.mark.parametrize("s, given, when, do, tokens, marks, refill_max, expect", SLOT_CASES)
def test_slot_rule(s, given, when, do, tokens, marks, refill_max, expect):
    test_pool_rule(s, given, when, do, tokens, marks, refill_max, expect)


def test_slots_are_never_exceeded_under_a_storm():
    """The hard invariant over a long deterministic history (a seeded mix of leases,
    starts, releases and reaps): no environment ever holds more invocations than its
    slots, and a lease starts an environment only when every live one is full (so a
    function runs on ceil(in flight / slots) environments, give or take releases)."""
    import random

    rng = random.Random(17)
    s3 = spec(runtime="nodejs20.x", perEnvironmentConcurrency=3, idleTimeoutSeconds=5)
    state, _, _ = make_state(s3, None, (set(), set()), 30.0)
    holders: list[str] = []  # the env id of each running request
    now = NOW
    for step in range(3000):
        now += rng.random()
        roll = rng.random()
        if roll < 0.45:
            free = [e for e in state.envs.values() if e.state in (IDLE, BUSY) and e.in_flight < e.slots]
            commands = state.handle(LeaseRequested(f"w{step}"), now)
            if any(isinstance(c, StartEnv) for c in commands):
                assert not free, (step, free)
        elif roll < 0.55 and state.starting:
            starting = [e.env_id for e in state.envs.values() if e.state is STARTING]
            commands = state.handle(started(rng.choice(starting)), now)
        elif roll < 0.95 and holders:
            commands = state.handle(Released(holders.pop(rng.randrange(len(holders)))), now)
        else:
            commands = state.handle(Reap(), now)
        for command in commands:
            if isinstance(command, Hand):
                holders.append(command.env_id)
            elif isinstance(command, Stop):
                assert state.envs[command.env_id].in_flight == 0, (step, command)
                state.handle(Stopped(command.env_id), now)
        for env in state.envs.values():
            assert env.in_flight <= env.slots, (step, env)
        assert sum(e.in_flight for e in state.envs.values()) == len(holders), step
    assert state.stats.reaped > 0  # environments went idle and were reaped along the way


def make_state(s: FunctionSpec, tokens: int | None, marks: tuple[set[str], set[str]], refill_max: float):
    """A PoolState with a counter for ids, a token budget, and the backend's draining and
    dead sets (``marks``, filled later)."""
    counters = {True: itertools.count(1), False: itertools.count(1)}
    budget = {"left": tokens, "taken": 0}
    marked: set[str] = set()
    died: set[str] = set()
    draining, dead = marks

    def take_token(now: float) -> Throttle | None:
        budget["taken"] += 1
        if budget["left"] is None:
            return None
        if budget["left"] > 0:
            budget["left"] -= 1
            return None
        return RATE

    state = PoolState(
        s,
        take_token=take_token,
        new_id=lambda provisioned: f"{'p' if provisioned else 'd'}{next(counters[provisioned])}",
        is_draining=lambda handle: handle.env_id in marked,
        is_lost=lambda handle: handle.env_id in died,
        refill_backoff=Backoff(0.5, refill_max),
    )

    def mark_draining() -> None:
        marked.update(draining)
        died.update(dead)

    return state, budget, mark_draining


def apply(state: PoolState, item) -> list:
    offset, event = item if isinstance(item, tuple) else (0.0, item)
    return state.handle(event, NOW + offset)


@pytest.mark.parametrize("s, given, when, do, tokens, marks, refill_max, expect", CASES)
def test_pool_rule(s, given, when, do, tokens, marks, refill_max, expect):
    state, budget, mark_draining = make_state(s, tokens, marks, refill_max)
    for item in given:
        apply(state, item)
    mark_draining()
    taken_before = budget["taken"]
    assert apply(state, when) == do
    for env_id, want in expect.pop("states", {}).items():
        got = state.envs.get(env_id)
        assert (got.state if got else GONE) == want, env_id
    if "tokens_taken" in expect:
        assert budget["taken"] - taken_before == expect.pop("tokens_taken")
    for env_id, n in expect.pop("in_flight", {}).items():
        assert state.envs[env_id].in_flight == n, env_id
        assert state.envs[env_id].in_flight <= state.envs[env_id].slots, env_id
    for env_id, generation in expect.pop("env_generations", {}).items():
        assert state.envs[env_id].generation == generation, env_id
    stats = dataclasses.asdict(state.stats)
    for key, want in expect.pop("stats", {}).items():
        assert stats[key] == want, key
    described = state.describe()
    observed = {
        "waiting": state.waiting,
        "starting": state.starting,
        "generation": state.generation,
        "live": described["provisioned"]["live"],
        "counts": described["counts"],
    }
    for key, want in expect.items():
        assert observed[key] == want, key


# -- what a lease is -----------------------------------------------------------------------

LEASES = [
    # (case, spec, history, env id, (cold start, init duration, spill-over) or None)
    (
        "an on-demand env's first invocation is a cold start, with its Init duration",
        ON_DEMAND,
        [LeaseRequested(W1), started("d1")],
        "d1",
        (True, 0.01, False),
    ),
    ("a reused on-demand env is warm", ON_DEMAND, [*served("d1"), LeaseRequested(W1)], "d1", (False, None, False)),
    (
        "a provisioned env is never a cold start (initialised ahead of time)",
        PROV1,
        [*provisioned(1), LeaseRequested(W1)],
        "p1",
        (False, None, False),
    ),
    (
        "an on-demand env while the function has provisioned concurrency is a spill-over",
        PROV1,
        [Provision(), LeaseRequested(W1), started("d1")],
        "d1",
        (True, 0.01, True),
    ),
    (
        "an env retired before its request resumed (the pool closed): no lease",
        ON_DEMAND,
        [LeaseRequested(W1), started("d1"), Close()],
        "d1",
        None,
    ),
]


@pytest.mark.parametrize("name, s, given, env_id, want", LEASES, ids=[c[0] for c in LEASES])
def test_lease(name, s, given, env_id, want):
    state, _, _ = make_state(s, None, (set(), set()), 30.0)
    for item in given:
        apply(state, item)
    lease = state.leased(state.envs[env_id])
    if want is None:
        assert lease is None
        return
    assert (lease.cold_start, lease.init_duration, lease.spillover) == want
    assert lease.env is state.envs[env_id]
    cold, _, spill = want
    assert (state.stats.cold_starts, state.stats.warm_starts, state.stats.spillovers) == (
        int(cold),
        int(not cold),
        int(spill),
    )


def test_a_double_release_is_a_bug_not_a_state():
    state, _, _ = make_state(ON_DEMAND, None, (set(), set()), 30.0)
    for item in served("d1"):
        apply(state, item)
    with pytest.raises(AssertionError, match="not leased"):
        state.handle(Released("d1"), NOW)


def test_the_decisions_do_no_io():
    """No event loop, no clock, no sockets or processes: ``pool.py`` does all of that."""
    imported: set[str] = set()
    for module in (pool_state, pool_protocol):
        tree = ast.parse(Path(module.__file__).read_text())
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    io = (
        "asyncio",
        "time",
        "socket",
        "subprocess",
        "threading",
        "aiohttp",
        "lambdakube_router.pool",
        "lambdakube_router.backends.local",
        "lambdakube_router.backends.kubernetes",
    )
    assert not sorted(m for m in imported if any(m == x or m.startswith(x + ".") for x in io))
