"""The one interface the pool needs from whatever runs environments.

Why so small: the pool owns every decision (when to start, which env to lease, when to
reap); a backend only turns "start env X for function F" into a ready ``host:port`` and
"stop it" into nothing left running. That keeps the local (subprocess) backend used by
tests and the Kubernetes (pod) backend interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdakube.models import FunctionSpec


@dataclass(frozen=True)
class FunctionRef:
    """Identifies a function; ``uid`` is the Function object's UID when known (owner refs)."""

    namespace: str
    name: str
    uid: str | None = None

    @property
    def arn(self) -> str:
        return f"lambdakube:{self.namespace}:function:{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class EnvironmentHandle:
    """A ready environment: where to send ``POST /invoke``."""

    address: str  # host:port
    env_id: str
    init_duration: float  # seconds, as reported by the runtime's /readyz
    #: Backend-private state (the subprocess, the pod name...).
    private: Any = field(default=None, repr=False, compare=False)

    def alive(self) -> bool | None:
        """Best-effort liveness (None when the backend cannot tell cheaply)."""
        check = getattr(self.private, "alive", None)
        return check() if callable(check) else None


class EnvironmentStartError(Exception):
    """The environment could not be started; the message includes the runtime's Init error."""

    def __init__(self, message: str, *, error_type: str = "InitError") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class Backend(Protocol):
    async def start(
        self, fn: FunctionRef, spec: FunctionSpec, env_id: str, provisioned: bool
    ) -> EnvironmentHandle:
        """Return once the environment is ready (its /readyz said so).

        Raises EnvironmentStartError (with the runtime's Init error when there is one).
        """

    async def stop(self, handle: EnvironmentHandle) -> None:
        """Make sure nothing of the environment keeps running. Idempotent."""

    async def close(self) -> None:
        """Stop every environment this backend started."""
