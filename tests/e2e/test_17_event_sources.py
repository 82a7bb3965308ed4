"""A queue event source mapping on the real node: the router's informer brings the
EventSourceMapping, its pollers invoke the function's pods with Lambda's SQS event
within the function's reserved concurrency, partial batch failures come back and then
go to onFailure, and the router writes the mapping's status (``kubectl get esm``)."""

from __future__ import annotations

import json

from tests.e2e.cluster import Cluster, function_manifest, wait_for

HANDLER = """
def handler(event, context):
    failed = []
    for r in event["Records"]:
        print("record", r["body"], "receive", r["attributes"]["ApproximateReceiveCount"], r["eventSource"])
        if r["body"].startswith("fail"):
            failed.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failed}
"""


def mapping() -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "orders"},
        "spec": {
            "functionName": "consumer",
            "queue": {"name": "orders", "visibilityTimeoutSeconds": 3},
            "batchSize": 5,
            "maximumBatchingWindowInSeconds": 1,
            "functionResponseTypes": ["ReportBatchItemFailures"],
            "maximumRetryAttempts": 1,
            "destinationConfig": {"onFailure": {"queue": "dead"}},
            "scalingConfig": {"maximumConcurrency": 2},
        },
    }


def test_a_queue_mapping_on_the_real_node(release: Cluster, ns: str):
    release.apply([function_manifest("consumer", HANDLER, reservedConcurrency=1, timeoutSeconds=10)], ns)
    wait_for(lambda: release.router_function("consumer", ns), 60, "the router to see the Function")
    release.apply([mapping()], ns)

    def status() -> dict:
        return release.get("eventsourcemapping", "orders", ns).get("status") or {}

    wait_for(lambda: status().get("state") == "Enabled", 60, "the router to write the mapping's state")
    assert status()["observedGeneration"] == 1

    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(["ok-1", "fail-1", "ok-2", "ok-3"])]
    sent = release.request(
        "POST",
        f"/lambdakube/v1/namespaces/{ns}/queues/orders/messages",
        json.dumps({"Entries": entries}).encode(),
        {"Content-Type": "application/json"},
    )
    assert sent.status == 200, sent.body

    def queue(name: str) -> list[dict]:
        r = release.request("GET", f"/lambdakube/v1/namespaces/{ns}/queues/{name}/messages")
        assert r.status == 200, r.body
        return r.json()["messages"]

    [dead] = wait_for(lambda: queue("dead"), 90, "the failed item to reach onFailure")
    record = dead["body"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    [failed] = record["requestPayload"]["Records"]
    assert (failed["body"], failed["attributes"]["ApproximateReceiveCount"]) == ("fail-1", "2")
    wait_for(lambda: queue("orders") == [], 60, "the queue to drain")
    done = wait_for(
        lambda: (s := status()).get("lag") == 0 and s.get("pollers") == 0 and s, 30, "lag and pollers back to 0"
    )
    assert done["lastProcessingResult"] == "PROBLEM: Function reported batch item failures"
    table = release.kubectl("get", "esm", "orders", "-n", ns).stdout.splitlines()
    assert table[1].split()[:6] == ["orders", "consumer", "orders", "Enabled", "0", "0"], table

    def printed() -> list[str]:
        pods = release.pods(ns)
        return [
            line
            for pod in pods
            for line in release.logs(f"pod/{pod['metadata']['name']}", ns).splitlines()
            if line.startswith("record ")
        ]

    lines = wait_for(lambda: len(printed()) >= 5 and printed(), 30, "the handler's output")
    assert sorted(lines) == sorted(
        [
            "record ok-1 receive 1 aws:sqs",
            "record ok-2 receive 1 aws:sqs",
            "record ok-3 receive 1 aws:sqs",
            "record fail-1 receive 1 aws:sqs",
            "record fail-1 receive 2 aws:sqs",
        ]
    ), lines
