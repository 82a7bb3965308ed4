"""One namespace at a glance: the quota, and each function's environments and recent numbers.

Why a view of its own next to the pool API (``introspection``): ``lambdakube get``,
``lambdakube describe`` and the web view (``ui``) all want the same summary - counts by
state, reservations against the unreserved pool, throttles per Reason, p50/p99 of the
last minutes, each environment's age - and each would otherwise rebuild it from several
calls. The builders here are pure (plain inputs and ``now`` in, JSON-ready dicts out);
``namespace_overview`` is the thin driver that reads the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lambdakube_router import recent as recent_mod
from lambdakube_router.limits import NamespaceLimits

STATES = ("starting", "idle", "busy", "draining")


def quota_view(limits: NamespaceLimits) -> dict:
    """Used (in flight), reserved (granted reservations) and the unreserved pool, with
    what is in flight in each, and which reservations are granted, rejected or pending."""
    plan = limits.plan
    reserved = sum(plan.granted.values())
    in_flight = limits.in_flight
    return {
        "concurrentExecutions": limits.quota.concurrent_executions,
        "minimumUnreserved": limits.quota.minimum_unreserved,
        "inFlight": in_flight,
        "reserved": reserved,
        "reservedInFlight": in_flight - limits.unreserved_in_flight,
        "unreserved": plan.unreserved,
        "unreservedInFlight": limits.unreserved_in_flight,
        "granted": dict(sorted(plan.granted.items())),
        "rejected": dict(sorted(plan.rejected.items())),
        "pending": dict(sorted(plan.pending.items())),
    }


def environment_view(described: Mapping[str, Any], *, age_seconds: float | None, version: str) -> dict:
    """One environment (``Environment.describe``) with its age and the version it runs."""
    return {
        "id": described["id"],
        "state": described["state"],
        "provisioned": described.get("role") == "provisioned",
        "version": version,
        "invocations": described.get("invocations", 0),
        "ageSeconds": None if age_seconds is None else round(max(0.0, age_seconds), 3),
        "initDurationMs": described.get("initDurationMs"),
    }


def function_view(
    described: Mapping[str, Any],
    environments: Iterable[dict],
    *,
    throttles: Mapping[str, int],
    recent: Mapping[str, Any],
) -> dict:
    """A function's row: counts by state over all its pools ($LATEST and versions),
    provisioned, its reservation, cumulative cold starts and throttles per Reason, and the
    last minutes (``recent.summary``)."""
    envs = list(environments)
    counts = {s: sum(1 for e in envs if e["state"] == s) for s in STATES}
    pools = [described["pool"], *described.get("versions", {}).values()]
    conc = described["concurrency"]
    return {
        "name": described["name"],
        "namespace": described["namespace"],
        "arn": described.get("arn"),
        "counts": counts,
        "ready": counts["idle"] + counts["busy"],
        "provisioned": {
            "target": sum(p["provisioned"]["target"] for p in pools),
            "live": sum(p["provisioned"]["live"] for p in pools),
        },
        "waiting": sum(p["waiting"] for p in pools),
        "inFlight": conc["inFlight"],
        "reservedConcurrency": conc["reservedConcurrency"],
        "reservedGranted": conc["reservedGranted"],
        "reservationRejected": conc["reservationRejected"],
        "maxConcurrency": conc["maxConcurrency"],
        "cap": conc["cap"],
        "coldStarts": sum(p["coldStarts"] for p in pools),
        "warmStarts": sum(p["warmStarts"] for p in pools),
        "spilloverInvocations": sum(p["spilloverInvocations"] for p in pools),
        "throttles": dict(sorted(throttles.items())),
        "throttlesTotal": sum(throttles.values()),
        "lastStartError": described["pool"].get("lastStartError"),
        "recent": dict(recent),
        "environments": sorted(envs, key=lambda e: (e["version"], e["id"])),
    }


def namespace_overview(engine: Any, namespace: str) -> dict | None:
    """The driver: reads the engine's pools, limits and rings (None: nothing in ``namespace``)."""
    limits = engine.namespaces.get(namespace)
    names = sorted(name for ns, name in engine.functions if ns == namespace)
    if limits is None and not names:
        return None
    now = engine.settings.clock()
    functions = []
    for name in names:
        state = engine.get(namespace, name)
        described = engine.describe(namespace, name)
        if state is None or described is None:
            continue
        envs: list[dict] = []
        for version, pool in [("$LATEST", state.pool), *((str(n), p) for n, p in sorted(state.version_pools.items()))]:
            by_id = pool.envs
            for e in pool.describe()["environments"]:
                env = by_id.get(e["id"])
                age = now - env.created_at if env is not None else None
                envs.append(environment_view(e, age_seconds=age, version=version))
        ring = state.metrics.recent
        functions.append(
            function_view(
                described, envs, throttles=state.activity.throttles, recent=recent_mod.summary(ring, ring.clock())
            )
        )
    return {
        "namespace": namespace,
        "quota": quota_view(limits) if limits is not None else None,
        "functions": functions,
    }
