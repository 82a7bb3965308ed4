"""One reservation authority: the router applies the operator's published decision.

The router watches Functions and ConcurrencyQuotas through a real kube-apiserver
(KubernetesSource); environments are local runtime processes. No operator runs here:
the test writes ``ConcurrencyQuota/default``'s status itself (``--subresource=status``),
exactly as the operator publishes it, and chooses a decision the router would *not* have
made on its own (it rejects a reservation that fits), so obeying it is observable.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from lambdakube_router.app import init_app
from lambdakube_router.limits import CONCURRENT_EXCEEDED, RESERVED_EXCEEDED
from tests.router.conftest import Router, function, kubectl, quota, router_config

pytestmark = pytest.mark.cluster


SLOW = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"""

REJECTION = "reservedConcurrency 2 does not fit: namespace quota 10, already reserved 1, 2 must stay unreserved"


async def publish(cp, namespace: str, granted: dict, rejected: list, reason: str = "") -> None:
    """Write the quota's status as the operator does (reconcile.QuotaKeeper._publish)."""
    if rejected:
        cond = {
            "type": "ReservationsFit",
            "status": "False",
            "reason": "Rejected",
            "message": "; ".join(f"{n}: {reason}" for n in rejected),
        }
    else:
        cond = {"type": "ReservationsFit", "status": "True", "reason": "AllGranted", "message": ""}
    cond["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    status = {
        "reserved": sum(granted.values()),
        "unreserved": 10 - sum(granted.values()),
        "granted": granted,
        "rejected": rejected,
        "conditions": [cond],
        "rejectedReasons": {n: reason for n in rejected},
    }
    # A JSON merge patch merges maps: names no longer granted must be nulled; replace instead.
    await kubectl(
        cp,
        "patch",
        "concurrencyquota",
        "default",
        "-n",
        namespace,
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps([{"op": "add", "path": "/status", "value": status}]),
    )


async def burst(router: Router, name: str, n: int, sleep: float = 1.0) -> list[tuple[int, str | None]]:
    """n concurrent invocations; (status, throttle reason) each, sorted."""

    async def one():
        status, _, body = await router.invoke_json(name, {"sleep": sleep})
        return status, (body or {}).get("Reason") if status == 429 else None

    return sorted(await asyncio.gather(*(one() for _ in range(n))), key=lambda r: (r[0], r[1] or ""))


@pytest.fixture
async def router(control_plane, namespace, crds, aiohttp_client, tmp_path):
    from lambdakube_router.sources import KubernetesSource

    docs = [
        quota(namespace, concurrentExecutions=10, minimumUnreserved=2),
        function("granted", SLOW, namespace=namespace, reservedConcurrency=1),
        function("rejected", SLOW, namespace=namespace, reservedConcurrency=2),
        function("pending", SLOW, namespace=namespace, reservedConcurrency=1),
    ]
    for doc in docs:
        await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    await publish(control_plane, namespace, {"granted": 1, "rejected": 0}, ["rejected"], REJECTION)
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace, generic_pool_size=0)
    config.snapshot = None
    app = await init_app(config)
    return Router(await aiohttp_client(app), app, config)


async def concurrency(router: Router, namespace: str, name: str) -> dict:
    return (await router.get_json(f"/lambdakube/v1/namespaces/{namespace}/functions/{name}"))["concurrency"]


async def test_granted_rejected_and_pending_follow_the_published_status(router, namespace):
    granted = await concurrency(router, namespace, "granted")
    assert (granted["reservedGranted"], granted["reservationRejected"], granted["cap"]) == (1, None, 1)
    rejected = await concurrency(router, namespace, "rejected")
    # Locally 2 would fit (10 - 1 - 2 leaves room); the operator said no, and it decides.
    assert rejected["reservedGranted"] is None and rejected["reservationRejected"] == REJECTION
    assert rejected["cap"] == 2  # still capped at what was requested
    pending = await concurrency(router, namespace, "pending")
    assert pending["reservedGranted"] is None and pending["cap"] == 1
    assert "not granted yet" in pending["reservationPending"]
    assert granted["unreservedPool"] == 9  # 10 - the one grant

    # granted: a reservation of 1 -> the second concurrent call hits the reserved limit
    assert await burst(router, "granted", 2) == [(200, None), (429, RESERVED_EXCEEDED)]
    # rejected: no reservation, capped at its request of 2, unreserved reason
    assert await burst(router, "rejected", 3) == [(200, None), (200, None), (429, CONCURRENT_EXCEEDED)]
    # pending (not in the status yet): like rejected
    assert await burst(router, "pending", 2) == [(200, None), (429, CONCURRENT_EXCEEDED)]


async def test_a_new_decision_is_applied_without_restart(router, namespace, control_plane):
    await publish(control_plane, namespace, {"granted": 1, "rejected": 2, "pending": 1}, [])

    async def applied():
        c = await concurrency(router, namespace, "rejected")
        p = await concurrency(router, namespace, "pending")
        return c["reservedGranted"] == 2 and p["reservedGranted"] == 1

    await router.eventually(applied, timeout=20, interval=0.1)
    assert (await concurrency(router, namespace, "granted"))["unreservedPool"] == 6
    assert await burst(router, "rejected", 3) == [(200, None), (200, None), (429, RESERVED_EXCEEDED)]

    # The operator takes a grant away again (e.g. an older function grew): back to capped.
    await publish(control_plane, namespace, {"granted": 1, "rejected": 0, "pending": 1}, ["rejected"], REJECTION)

    async def revoked():
        return (await concurrency(router, namespace, "rejected"))["reservationRejected"] == REJECTION

    await router.eventually(revoked, timeout=20, interval=0.1)
    assert await burst(router, "rejected", 3, sleep=0.5) == [(200, None), (200, None), (429, CONCURRENT_EXCEEDED)]
