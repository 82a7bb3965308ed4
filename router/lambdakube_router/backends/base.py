"""The one interface the pool needs from whatever runs environments.

Why so small: the pool owns every decision (when to start, which env to lease, when to
reap); a backend only turns "start env X for function F" into a ready ``host:port`` and
"stop it" into nothing left running. That keeps the local (subprocess) backend used by
tests and the Kubernetes (pod) backend interchangeable.

Features only one backend has (draining, handing environments back, pre-warming,
announces) are methods of ``Backend`` with do-nothing defaults, so callers call them
instead of probing with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdakube.formats import function_arn
from lambdakube.models import LATEST, FunctionSpec

if TYPE_CHECKING:
    from lambdakube_router.generic_pool import GenericPool

#: Where a cold start's environment came from (``X-Environment-Source``).
SOURCE_FRESH = "fresh"
SOURCE_GENERIC = "generic"
SOURCE_PROVISIONED = "provisioned"


@dataclass(frozen=True)
class FunctionRef:
    """Identifies a function; ``uid`` is the Function object's UID when known (owner refs).
    ``version``: which of its versions an environment runs (``$LATEST``, or a published
    version's number: the runtime's ``context.function_version``)."""

    namespace: str
    name: str
    uid: str | None = None
    version: str = LATEST

    @property
    def arn(self) -> str:
        return function_arn(self.namespace, self.name)

    def __str__(self) -> str:
        shown = f"{self.namespace}/{self.name}"
        return shown if self.version == LATEST else f"{shown}:{self.version}"


@dataclass
class EnvironmentHandle:
    """A ready environment: where to send ``POST /invoke``."""

    address: str  # host:port
    env_id: str
    init_duration: float  # seconds, as reported by the runtime's /readyz
    #: The environment's own token (``lambdakube.resources.env_token``), sent with every
    #: request to it; "" for a runtime that takes none.
    token: str = ""
    #: Backend-private state (the subprocess, the pod name...).
    private: Any = field(default=None, repr=False, compare=False)


class EnvironmentStartError(Exception):
    """The environment could not be started; the message includes the runtime's Init error."""

    def __init__(self, message: str, *, error_type: str = "InitError") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class Backend:
    """Subclassed by each backend; ``start`` and ``stop`` are required."""

    #: Pre-warmed generic environments (the local backend's), for metrics; None: none.
    generic_pool: GenericPool | None = None
    #: Announces of environments accepted/refused (``announced``); None: no announces.
    announces: dict[str, int] | None = None
    #: Called with an environment's id when the backend sees it die by itself (its
    #: process exited, its pod failed or is being deleted), so that its pool retires it
    #: before a request is handed a dead environment. Set by the engine.
    lost_listener: Callable[[str], None] | None = None
    #: True when environments of a published version can be started (they run the
    #: version's code and report its number): both backends do (local processes get it
    #: in ``POST /init``, pods carry ``lambdakube.dev/version``).
    runs_versions: bool = False

    async def start(self, fn: FunctionRef, spec: FunctionSpec, env_id: str, provisioned: bool) -> EnvironmentHandle:
        """Return once the environment is ready (its /readyz said so).

        Raises EnvironmentStartError (with the runtime's Init error when there is one).
        """
        raise NotImplementedError

    async def stop(self, handle: EnvironmentHandle) -> None:
        """Make sure nothing of the environment keeps running. Idempotent."""
        raise NotImplementedError

    async def release(self, handle: EnvironmentHandle) -> None:
        """Give a provisioned environment back to whoever keeps it (shutdown, spec
        change, lowered target). Without a keeper: stop it."""
        await self.stop(handle)

    def is_draining(self, handle: EnvironmentHandle) -> bool:
        """True when the environment's keeper wants it finished (an older spec)."""
        return False

    def is_lost(self, handle: EnvironmentHandle) -> bool:
        """True when the environment is known dead (as last seen; cheap, no I/O): the
        pool never hands it out, whether or not ``lost_listener`` was called yet."""
        return False

    def prewarm(self) -> None:
        """Start pre-warming (needs a running loop); called once at router start."""

    def announced(self, env_id: str, address: str, token: str, peer: str | None) -> bool:
        """An environment says where it listens; True when accepted."""
        return False

    async def close(self) -> None:
        """Stop every environment this backend started."""
