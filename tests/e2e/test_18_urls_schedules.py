"""Function URLs and schedules on the real node: the chart's router (``--auth
tokenreview``) answers a URL of real pods, public for authType NONE and only with a
token for KUBERNETES; a cron every minute fires the function (real time, through the
durable queue) with EventBridge's Scheduled Event."""

from __future__ import annotations

import json

from tests.e2e.cluster import Cluster, function_manifest, wait_for

URL_HANDLER = """\
import base64, json

def handler(event, context):
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else (event.get("body") or "").encode()
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream", "x-path": event["rawPath"]},
        "cookies": ["seen=1"],
        "body": base64.b64encode(body[::-1]).decode(),
        "isBase64Encoded": True,
    }
"""
TICK_HANDLER = """\
def handler(event, context):
    return {"time": event["time"]}
"""


def test_function_urls_through_the_routers_service(release: Cluster, ns: str):
    release.apply(function_manifest("public", URL_HANDLER, url={"authType": "NONE"}), ns)
    release.apply(function_manifest("private", URL_HANDLER, url={"authType": "KUBERNETES"}), ns)
    for name in ("public", "private"):
        wait_for(lambda name=name: release.router_function(name, ns), 60, f"router to see {name}")
    data = bytes(range(256))
    headers = {"Content-Type": "application/octet-stream"}
    reply = release.request("POST", f"/lambdakube/url/{ns}/public/a/b?x=1", data, headers, token="")
    assert reply.status == 200, reply.body
    assert reply.body == data[::-1]
    assert reply.header("x-path") == "/a/b" and reply.header("set-cookie") == "seen=1"
    assert release.request("POST", f"/lambdakube/url/{ns}/private/", data, headers, token="").status == 401
    reply = release.request("POST", f"/lambdakube/url/{ns}/private/", data, headers)  # the suite's admin token
    assert reply.status == 200 and reply.body == data[::-1], reply.body
    assert release.request("GET", f"/lambdakube/url/{ns}/nosuch/").status == 404


def test_a_cron_every_minute_fires_once_per_tick(release: Cluster, ns: str):
    release.apply(
        function_manifest(
            "ticker",
            TICK_HANDLER,
            schedule={"expression": "cron(* * * * ? *)"},
            **{"async": {"onSuccess": {"queue": "ticks"}}},
        ),
        ns,
    )

    def fired():
        r = release.request("GET", f"/lambdakube/v1/namespaces/{ns}/queues/ticks/messages")
        messages = r.json()["messages"] if r.status == 200 else []
        return messages or None

    messages = wait_for(fired, 150, "the next minute's tick to reach the onSuccess queue", interval=2)
    events = [m["body"]["requestPayload"] for m in messages]
    assert all(e["detail-type"] == "Scheduled Event" and e["source"] == "aws.events" for e in events), events
    assert events[0]["resources"] == [f"arn:aws:events:lambdakube:{ns}:rule/ticker"]
    times = [e["time"] for e in events]
    assert len(set(times)) == len(times), json.dumps(events)
    assert [m["body"]["responsePayload"]["time"] for m in messages] == times
