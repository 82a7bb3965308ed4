"""The routes of event source mappings: SendMessage onto a queue, and the mappings' state.

``POST /lambdakube/v1/namespaces/{ns}/queues/{q}/messages`` puts messages on a durable
queue (``send_message``: SQS's SendMessage or SendMessageBatch body) and wakes its
pollers; ``GET .../eventsourcemappings`` lists the namespace's mappings with their
status (state, lag, pollers, lastProcessingResult), which a cluster also writes into
each object's ``status``.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from lambdakube_router import keys, params, request_body, send_message
from lambdakube_router.asyncq.store import QueueMessage
from lambdakube_router.introspection import _json, _params, _store_unavailable
from lambdakube_router.introspection import _body as error_body

#: A batch of ten of SQS's largest messages, plus their JSON.
MAX_REQUEST_BYTES = send_message.MAX_ENTRIES * send_message.MAX_BODY_BYTES * 2


@_store_unavailable
async def send(request: web.Request) -> web.Response:
    p = _params(request, params.SEND_QUEUE_MESSAGES)
    ns, queue = p["namespace"], p["queue"]
    assert isinstance(ns, str) and isinstance(queue, str)
    try:
        raw = await request_body.read(request, MAX_REQUEST_BYTES)
    except request_body.TooLarge as exc:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES,
            actual_size=exc.size if exc.size is not None else MAX_REQUEST_BYTES + 1,
            text=error_body("RequestTooLargeException", f"the request is larger than {MAX_REQUEST_BYTES} bytes"),
            content_type="application/json",
            headers={"x-amzn-ErrorType": "RequestTooLargeException"},
        ) from None
    try:
        outgoing = send_message.parse_request(raw)
    except send_message.BadMessage as exc:
        raise web.HTTPBadRequest(
            text=error_body("InvalidParameterValueException", str(exc)),
            content_type="application/json",
            headers={"x-amzn-ErrorType": "InvalidParameterValueException"},
        ) from None
    now = request.app[keys.CONFIG].wall_clock()
    ids = [str(uuid.uuid4()) for _ in outgoing]
    rows = [
        QueueMessage(ns, queue, mid, o.body, now, o.attributes, now + o.delay_seconds if o.delay_seconds else None)
        for mid, o in zip(ids, outgoing, strict=True)
    ]
    await request.app[keys.STORE].send_messages(rows)
    if len(outgoing) == 1 and outgoing[0].entry_id is None:
        return _json({"MessageId": ids[0], "MD5OfMessageBody": outgoing[0].md5})
    return _json(
        {
            "Successful": [
                {"Id": o.entry_id, "MessageId": mid, "MD5OfMessageBody": o.md5}
                for mid, o in zip(ids, outgoing, strict=True)
            ],
            "Failed": [],
        }
    )


async def list_mappings(request: web.Request) -> web.Response:
    ns = _params(request, params.LIST_EVENT_SOURCE_MAPPINGS)["namespace"]
    assert isinstance(ns, str)
    return _json({"namespace": ns, "eventSourceMappings": request.app[keys.MAPPINGS].describe(ns)})


def add_routes(app: web.Application) -> None:
    base = "/lambdakube/v1/namespaces/{namespace}"
    app.router.add_post(base + "/queues/{queue}/messages", send)
    app.router.add_get(base + "/eventsourcemappings", list_mappings)
