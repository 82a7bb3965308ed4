"""What the pool's decisions (``pool_state``) and its driver (``pool``) say to each other.

Why a module of its own: this is the contract between the two, and what the rest of the
router sees of a pool (``Environment``, ``Lease``, ``EnvState``, the retire reasons); the
rules that turn events into commands are ``pool_state``'s alone.

The protocol with the driver:
- a ``StartEnv`` ends in exactly one of ``Started``, ``StartFailed``, ``StartCancelled``;
- a ``Stop`` or ``HandBack`` ends in ``Stopped``;
- a ``Hand`` is either taken (the request calls ``leased``, later ``Released``) or refused
  (``HandRefused``: the waiter stopped waiting in that very instant);
- a waiter that stops waiting before it is handed anything says ``WaiterGone``;
- a ``RefillAt`` is answered by ``RefillDue`` at that time (one pending at a time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from lambdakube.models import FunctionSpec
from lambdakube_router.backends.base import EnvironmentHandle, EnvironmentStartError
from lambdakube_router.limits import Throttle

#: The driver's token for one waiting request (a future); only its identity matters here.
Waiter = Any

#: Why an environment was retired (``Stop.reason``, ``HandBack.reason``).
UNHEALTHY = "unhealthy"  # released unhealthy: the runtime said so, or it failed mid-request
OUTDATED = "outdated"  # runs an older spec
SURPLUS = "surplus"  # a provisioned environment beyond a lowered target
DRAINED = "drained"  # the backend's keeper marked it draining (a rollout)
REAPED = "reaped"  # on-demand, idle for idleTimeoutSeconds
LOST = "lost"  # the backend saw it die by itself (its process exited, its pod failed)
CLOSED = "closed"  # the pool closed


class EnvState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    DEAD = "dead"


@dataclass(eq=False)
class Environment:
    env_id: str
    provisioned: bool
    generation: int
    state: EnvState = EnvState.STARTING
    handle: EnvironmentHandle | None = None
    created_at: float = 0.0
    idle_since: float = 0.0
    invocations: int = 0
    #: Invocations it may run at once (the spec's ``perEnvironmentConcurrency`` when it
    #: was started; 1: Lambda's one request per environment).
    slots: int = 1
    #: Invocations handed to it and not yet released (``idle`` at 0, ``busy`` above).
    in_flight: int = 0
    #: Some request of it reached ``leased`` already: only the first is a cold start.
    served: bool = False
    #: Listed as busy with a free slot (``slots`` > 1 only): leased before a cold start.
    open: bool = False
    #: Released unhealthy: stopped, never handed back to the backend's owner.
    broken: bool = False
    #: The backend saw it die while it was busy: retired when its request releases it.
    lost: bool = False
    #: A provisioned env beyond a lowered target: handed back to the backend's owner
    #: (the operator picks which pods go), not stopped by the router.
    surplus: bool = False
    #: The router's connection to this env (runtime_client.EnvConnection), closed on stop.
    conn: Any = field(default=None, repr=False)
    #: More connections, idle, for the invocations beyond the first at once (slots > 1).
    spare: list = field(default_factory=list, repr=False)

    @property
    def address(self) -> str:
        assert self.handle is not None
        return self.handle.address

    def describe(self) -> dict:
        return {
            "id": self.env_id,
            "state": self.state.value,
            "role": "provisioned" if self.provisioned else "on-demand",
            "address": self.handle.address if self.handle else None,
            "invocations": self.invocations,
            "inFlight": self.in_flight,
            "slots": self.slots,
            "initDurationMs": round(self.handle.init_duration * 1000, 3) if self.handle else None,
        }


@dataclass(frozen=True)
class Lease:
    env: Environment
    cold_start: bool
    init_duration: float | None  # seconds, cold starts only
    spillover: bool


@dataclass
class PoolStats:
    cold_starts: int = 0
    warm_starts: int = 0
    spillovers: int = 0
    start_failures: int = 0
    reaped: int = 0
    retired_unhealthy: int = 0
    #: Retired because the backend saw them die by themselves (``EnvLost``).
    lost: int = 0
    last_start_error: str | None = None


# -- events: what happened ---------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRequested:
    """A request wants an environment for itself."""

    waiter: Waiter


@dataclass(frozen=True)
class WaiterGone:
    """A waiter stopped waiting (deadline, client gone) before it was handed anything."""

    waiter: Waiter


@dataclass(frozen=True)
class HandRefused:
    """The waiter a ``Hand`` named had stopped waiting: the environment is free again."""

    env_id: str


@dataclass(frozen=True)
class Started:
    """The backend started the environment; ``handle.env_id`` may differ (the backend's id)."""

    env_id: str
    handle: EnvironmentHandle


@dataclass(frozen=True)
class StartFailed:
    env_id: str
    error: EnvironmentStartError


@dataclass(frozen=True)
class StartCancelled:
    """A start ended by ``CancelStart``: nothing was started."""

    env_id: str


@dataclass(frozen=True)
class Released:
    """A request is done with its environment."""

    env_id: str
    healthy: bool = True


@dataclass(frozen=True)
class EnvLost:
    """The backend saw the environment die by itself (``Backend.lost_listener``)."""

    env_id: str


@dataclass(frozen=True)
class Stopped:
    """A ``Stop`` or ``HandBack`` is done (or failed: the environment is gone for the pool)."""

    env_id: str


@dataclass(frozen=True)
class Provision:
    """Keep the provisioned target (the function was registered, or asked to check)."""


@dataclass(frozen=True)
class RefillDue:
    """The time of the last ``RefillAt`` came."""


@dataclass(frozen=True)
class Reap:
    """Look for idle environments to retire (the engine's reaper, every second)."""


@dataclass(frozen=True)
class SpecChanged:
    spec: FunctionSpec


@dataclass(frozen=True)
class Close:
    """The function was removed, or the router is stopping."""


Event = (
    LeaseRequested
    | WaiterGone
    | HandRefused
    | Started
    | StartFailed
    | StartCancelled
    | Released
    | EnvLost
    | Stopped
    | Provision
    | RefillDue
    | Reap
    | SpecChanged
    | Close
)


# -- commands: what to do ------------------------------------------------------------------


@dataclass(frozen=True)
class StartEnv:
    """Start this environment with the backend, of the pool's current spec."""

    env_id: str
    provisioned: bool


@dataclass(frozen=True)
class CancelStart:
    """Cancel this start (it waits for a pod that will not come, or the pool closed)."""

    env_id: str


@dataclass(frozen=True)
class Hand:
    """Give the (now busy) environment to the waiter; ``HandRefused`` if it is gone."""

    env_id: str
    waiter: Waiter


@dataclass(frozen=True)
class FailThrottled:
    """Fail the waiter with ``pool.Throttled``: no scaling token for the cold start it needs."""

    waiter: Waiter
    throttle: Throttle


@dataclass(frozen=True)
class FailStart:
    """Fail the waiter with the error of the start it counted on."""

    waiter: Waiter
    error: EnvironmentStartError


@dataclass(frozen=True)
class FailClosed:
    """Fail the waiter with ``pool.PoolClosed``."""

    waiter: Waiter


@dataclass(frozen=True)
class Stop:
    """Stop the (draining) environment with the backend."""

    env_id: str
    reason: str


@dataclass(frozen=True)
class HandBack:
    """Give the (draining) provisioned environment back to its keeper (the backend's ``release``)."""

    env_id: str
    reason: str


@dataclass(frozen=True)
class RefillAt:
    """Send ``RefillDue`` at this time."""

    at: float


Command = StartEnv | CancelStart | Hand | FailThrottled | FailStart | FailClosed | Stop | HandBack | RefillAt
