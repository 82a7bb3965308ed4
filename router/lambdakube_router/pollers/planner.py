"""What each EventSourceMapping's poller should be doing, and its status. Pure.

Inputs are the mapping (as parsed, or why it does not parse), what the router knows of
its function and source kind, what its poller last did, and ``now``; the answer is a
``Decision``: the state and reason to show, and whether a poller with this spec runs
(``RUN``), stops (``STOP``), or waits for a restart time (``WAIT``). The manager
(``pollers.manager``) carries it out.

============================================  =========  ==========================
the mapping                                   state      poller
============================================  =========  ==========================
does not parse / filter patterns refused      Failed     stop
``enabled: false``                            Disabled   stop
no poller for its source kind                 Failed     stop
its function does not exist (yet)             Creating   stop (waiting for it)
its poller failed (``SourceFailed``)          Failed     stop until the spec changes
its poller crashed, restart time not reached  Enabled    wait (then run)
running, reading                              Enabled    run
running, not yet reading (or about to start)  Creating   run
============================================  =========  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdakube.models import EventSourceMappingSpec

RUN = "run"
STOP = "stop"
WAIT = "wait"

CREATING = "Creating"
ENABLED = "Enabled"
DISABLED = "Disabled"
FAILED = "Failed"


@dataclass(frozen=True)
class PollerSeen:
    """What the manager knows of a mapping's poller (for the spec it runs)."""

    spec: EventSourceMappingSpec
    running: bool
    #: It reported ``started()``.
    started: bool = False
    #: ``SourceFailed``'s message: do not restart this spec.
    failed: str | None = None
    #: It ended with another error: restart at ``restart_at``.
    crashed: str | None = None
    restart_at: float | None = None


@dataclass(frozen=True)
class Decision:
    state: str
    reason: str | None
    poller: str
    #: ``WAIT``: when to look again.
    wake_at: float | None = None


def decide(
    *,
    spec: EventSourceMappingSpec | None,
    error: str | None,
    function: str | None,
    function_exists: bool,
    unavailable: str | None,
    seen: PollerSeen | None,
    now: float,
) -> Decision:
    """``function``: "namespace/name" for the messages; ``unavailable``: why no poller of
    the spec's kind exists here (``source.SourceUnavailable``), else None."""
    if spec is None:
        return Decision(FAILED, error or "the mapping's spec is invalid", STOP)
    if not spec.enabled:
        return Decision(DISABLED, "enabled is false", STOP)
    if unavailable is not None:
        return Decision(FAILED, unavailable, STOP)
    if not function_exists:
        return Decision(CREATING, f"waiting for Function {function}", STOP)
    if seen is not None and seen.spec == spec:
        if seen.failed is not None:
            return Decision(FAILED, seen.failed, STOP)
        if not seen.running and seen.crashed is not None:
            if seen.restart_at is not None and now < seen.restart_at:
                return Decision(ENABLED, f"poller restarts after: {seen.crashed}", WAIT, seen.restart_at)
            return Decision(ENABLED, f"poller restarted after: {seen.crashed}", RUN)
        if seen.running and seen.started:
            return Decision(ENABLED, "the poller reads its source", RUN)
    return Decision(CREATING, "starting the poller", RUN)
