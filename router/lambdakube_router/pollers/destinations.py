"""``destinationConfig.onFailure`` records: what a poller writes where. Pure.

The record is Lambda's invocation record (the async dispatcher's shape:
``requestContext``, ``responseContext``, ``requestPayload``), so one consumer reads
failed async events and failed polled records alike; the payload is the batch of the
failed record alone, in the source's own event shape (``{"Records": [record]}``).
"""

from __future__ import annotations

import json
import uuid

from lambdakube.models import Destination
from lambdakube_router.asyncq.store import NewEvent, QueueMessage
from lambdakube_router.invocation_records import invocation_record


def failure_record(
    *,
    namespace: str,
    function: str,
    qualifier: str | None,
    condition: str,
    invocations: int,
    payload: dict,
    now: float,
    request_id: str,
    status: int | None = None,
    function_error: str | None = None,
    executed_version: str | None = None,
) -> dict:
    record = invocation_record(
        namespace=namespace,
        function=function,
        qualifier=qualifier,
        condition=condition,
        request_id=request_id,
        invocations=invocations,
        now=now,
        status=status,
        executed_version=executed_version,
        function_error=function_error,
    )
    record["requestPayload"] = payload
    return record


def writes_for(
    destination: Destination, *, namespace: str, record: dict, message_id: str, now: float
) -> tuple[list[QueueMessage], list[NewEvent]]:
    """The store rows that deliver ``record`` to ``destination`` (a queue message, or an
    async invocation of a function), in the mapping's namespace."""
    body = json.dumps(record, separators=(",", ":")).encode()
    if destination.queue is not None:
        return [QueueMessage(namespace, destination.queue, message_id, body, now)], []
    assert destination.function is not None
    return [], [NewEvent(str(uuid.uuid4()), namespace, destination.function, body, None, now)]
