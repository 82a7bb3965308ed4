"""Reserved concurrency and the namespace quota answer 429 with Lambda's Reason, on real
pods, and no pod ever runs two requests at once."""

from __future__ import annotations

import json
import uuid
from collections import Counter

from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for
from tests.e2e.helpers import (
    assert_one_request_per_environment,
    invoke_concurrently,
    router_envs,
    throttle_reasons,
)

QUOTA = {
    "apiVersion": "lambdakube.dev/v1alpha1",
    "kind": "ConcurrencyQuota",
    "metadata": {"name": "default"},
    "spec": {"concurrentExecutions": 4, "minimumUnreserved": 1},
}


def test_reserved_and_namespace_limits_throttle_with_their_reason(release: Cluster, ns: str):
    release.apply(
        [
            QUOTA,
            function_manifest("res", recording_handler(), reservedConcurrency=2, timeoutSeconds=30),
            function_manifest("open", recording_handler(), timeoutSeconds=30),
        ],
        ns,
    )
    wait_for(
        lambda: release.get("concurrencyquota", "default", ns).get("status", {}).get("granted") == {"res": 2},
        60,
        "the operator to grant res its 2",
    )
    wait_for(
        lambda: ((release.router_function("res", ns) or {}).get("concurrency") or {}).get("reservedGranted") == 2,
        60,
        "the router to apply the grant",
    )

    # 4 in the namespace, 2 reserved for res: the unreserved pool is 2.
    res = invoke_concurrently(release, "res", [{"sleep": 4}] * 5, ns)
    assert Counter(r.status for r in res) == {200: 2, 429: 3}, [r.body for r in res]
    assert throttle_reasons(res) == ["ReservedFunctionConcurrentInvocationLimitExceeded"] * 3

    opened = invoke_concurrently(release, "open", [{"sleep": 4}] * 5, ns)
    assert Counter(r.status for r in opened) == {200: 2, 429: 3}, [r.body for r in opened]
    assert throttle_reasons(opened) == ["ConcurrentInvocationLimitExceeded"] * 3

    # Warm environments now: a second round reuses them, still one request each.
    again = invoke_concurrently(release, "open", [{"sleep": 1}] * 2, ns)
    assert [r.status for r in again] == [200, 200]
    assert assert_one_request_per_environment(res + opened + again) == 4
    assert len(router_envs(release, "open", ns)) == 2


def test_a_reservation_in_a_namespace_without_quota_gets_the_default_one(release: Cluster):
    ns = f"e2e-{uuid.uuid4().hex[:8]}"
    release.kubectl("create", "namespace", ns)
    try:
        release.apply(function_manifest("solo", recording_handler(), reservedConcurrency=3), ns)
        quota = wait_for(
            lambda: (
                (
                    q := release.kubectl("get", "concurrencyquota", "default", "-n", ns, "-o", "json", check=False)
                ).returncode
                == 0
                and json.loads(q.stdout)
            ),
            60,
            "the operator to create ConcurrencyQuota default",
        )
        assert quota["spec"]["concurrentExecutions"] == 1000
        wait_for(
            lambda: release.get("concurrencyquota", "default", ns).get("status", {}).get("granted") == {"solo": 3},
            60,
            "the grant published",
        )
        assert release.invoke("solo", {}, ns).status == 200
    finally:
        release.kubectl("delete", "namespace", ns, "--wait=false", check=False)
