"""The mapping planner (``pollers.planner.decide``): a table of named cases, a fixed NOW."""

import pytest

from lambdakube.models import EventSourceMappingSpec
from lambdakube_router.pollers import planner
from lambdakube_router.pollers.planner import CREATING, DISABLED, ENABLED, FAILED, RUN, STOP, WAIT, PollerSeen

NOW = 100.0
SPEC = EventSourceMappingSpec.model_validate({"functionName": "fn", "queue": {"name": "q"}})
OFF = SPEC.model_copy(update={"enabled": False})
OTHER = EventSourceMappingSpec.model_validate({"functionName": "fn", "queue": {"name": "q"}, "batchSize": 5})

BASE = dict(spec=SPEC, error=None, function="default/fn", function_exists=True, unavailable=None, seen=None)

# (name, overrides, state, reason fragment, poller, wake_at)
CASES = [
    ("new-mapping-starts", {}, CREATING, "starting", RUN, None),
    ("unparsable", {"spec": None, "error": "spec.batchSize: too big"}, FAILED, "too big", STOP, None),
    ("disabled", {"spec": OFF}, DISABLED, "enabled is false", STOP, None),
    (
        "disabled-stops-a-running-poller",
        {"spec": OFF, "seen": PollerSeen(SPEC, running=True)},
        DISABLED,
        "",
        STOP,
        None,
    ),
    ("kind-unavailable", {"unavailable": "no kafka here"}, FAILED, "no kafka here", STOP, None),
    ("function-missing", {"function_exists": False}, CREATING, "waiting for Function default/fn", STOP, None),
    ("running-not-yet-reading", {"seen": PollerSeen(SPEC, running=True)}, CREATING, "starting", RUN, None),
    ("running-and-reading", {"seen": PollerSeen(SPEC, running=True, started=True)}, ENABLED, "reads", RUN, None),
    (
        "source-failed",
        {"seen": PollerSeen(SPEC, running=False, failed="unknown topic")},
        FAILED,
        "unknown topic",
        STOP,
        None,
    ),
    (
        "source-failed-then-spec-changed",
        {"spec": OTHER, "seen": PollerSeen(SPEC, running=False, failed="unknown topic")},
        CREATING,
        "starting",
        RUN,
        None,
    ),
    (
        "crashed-waits-for-its-restart",
        {"seen": PollerSeen(SPEC, running=False, crashed="boom", restart_at=NOW + 2)},
        ENABLED,
        "restarts after: boom",
        WAIT,
        NOW + 2,
    ),
    (
        "crashed-restart-due",
        {"seen": PollerSeen(SPEC, running=False, crashed="boom", restart_at=NOW)},
        ENABLED,
        "restarted after: boom",
        RUN,
        None,
    ),
    (
        "spec-changed-while-running",
        {"spec": OTHER, "seen": PollerSeen(SPEC, running=True, started=True)},
        CREATING,
        "",
        RUN,
        None,
    ),
]


@pytest.mark.parametrize("overrides, state, reason, poller, wake_at", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_planner_table(overrides, state, reason, poller, wake_at):
    d = planner.decide(**{**BASE, **overrides}, now=NOW)
    assert (d.state, d.poller, d.wake_at) == (state, poller, wake_at)
    assert reason in (d.reason or "")
