"""The queue read API refuses bad parameters with Lambda's 400, and a refused DELETE
deletes nothing (issue 13, item 5).

Before: ``after`` or ``upTo`` beyond 64 bits was a 500 (SQLite's OverflowError), a DELETE
without ``upTo`` deleted nothing and answered 200, and a bad ``limit`` was clamped.
"""

from __future__ import annotations

import pytest

from lambdakube_router.params import MAX_INT64
from tests.router.conftest import function

ECHO = """
def handler(event, context):
    return event
"""

MESSAGES = "/lambdakube/v1/namespaces/{}/queues/{}/messages"

# name: (method, namespace, queue, query string, fragment of the errorMessage)
REFUSED = {
    "after beyond 64 bits": ("GET", "default", "done", f"after={MAX_INT64 + 1}", "after must be an integer from 0"),
    "after negative": ("GET", "default", "done", "after=-1", "after must be an integer from 0"),
    "after huge negative": ("GET", "default", "done", "after=-27470055814626667397120", "after must be an integer"),
    "after not a number": ("GET", "default", "done", "after=null", "after must be an integer"),
    "after twice": ("GET", "default", "done", "after=1&after=2", "after must be given once"),
    "limit zero": ("GET", "default", "done", "limit=0", "limit must be an integer from 1 to 1000"),
    "limit above the max": ("GET", "default", "done", "limit=1001", "limit must be an integer from 1 to 1000"),
    "namespace not a name": ("GET", "No_Such", "done", "", "namespace must be a Kubernetes name"),
    "upTo missing": ("DELETE", "default", "done", "", "upTo is required"),
    "upTo empty": ("DELETE", "default", "done", "upTo=", "upTo must be an integer"),
    "upTo beyond 64 bits": ("DELETE", "default", "done", f"upTo={MAX_INT64 + 1}", "upTo must be an integer from 0"),
    "upTo negative": ("DELETE", "default", "done", "upTo=-27470055814626667397120", "upTo must be an integer"),
    "queue not a name": ("DELETE", "default", "Done", f"upTo={MAX_INT64}", "queue must be a Kubernetes name"),
}


@pytest.fixture
async def router_with_a_message(make_router):
    router = await make_router(function("echo", ECHO, **{"async": {"onSuccess": {"queue": "done"}}}))
    status, _, _ = await router.invoke("echo", {"n": 1}, headers={"X-Amz-Invocation-Type": "Event"})
    assert status == 202

    async def one_message():
        async with router.client.session.get(router.url(MESSAGES.format("default", "done"))) as resp:
            return len((await resp.json())["messages"]) == 1

    await router.eventually(one_message)
    return router


async def request(router, method: str, namespace: str, queue: str, query: str):
    url = router.url(MESSAGES.format(namespace, queue)) + (f"?{query}" if query else "")
    async with router.client.session.request(method, url) as resp:
        return resp.status, resp.headers, await resp.json()


async def test_bad_parameters_are_refused_and_nothing_is_deleted(router_with_a_message):
    router = router_with_a_message
    for name, (method, namespace, queue, query, fragment) in REFUSED.items():
        status, headers, body = await request(router, method, namespace, queue, query)
        assert status == 400, (name, status, body)
        assert headers["x-amzn-ErrorType"] == "InvalidParameterValueException", name
        assert body["errorType"] == "InvalidParameterValueException", name
        assert fragment in body["errorMessage"] and body["message"] == body["errorMessage"], (name, body)
    # no refused DELETE deleted the message
    status, _, body = await request(router, "GET", "default", "done", "")
    assert status == 200 and len(body["messages"]) == 1


async def test_the_largest_values_are_accepted(router_with_a_message):
    router = router_with_a_message
    status, _, body = await request(router, "GET", "default", "done", f"after={MAX_INT64}&limit=1000")
    assert (status, body["messages"]) == (200, [])
    status, _, body = await request(router, "GET", "default", "done", "after=0&limit=1")
    assert status == 200 and [m["body"] for m in body["messages"]][0]["responsePayload"] == {"n": 1}
    status, _, body = await request(router, "DELETE", "default", "done", f"upTo={MAX_INT64}")
    assert (status, body) == (200, {"deleted": 1})
