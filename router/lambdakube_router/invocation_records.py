"""Lambda's invocation record: the envelope every destination receives. Pure.

Why one builder: async events (``asyncq.dispatcher``), failed queue messages
(``pollers.destinations``) and failed Kafka batches (``pollers.kafka_event``) all send
Lambda's invocation record to ``onSuccess``/``onFailure``, so one consumer reads them
alike; each source adds its own part (``requestPayload``, ``KafkaBatchInfo``, ...) to
the same ``requestContext`` and ``responseContext``.
"""

from __future__ import annotations

from typing import Any

from lambdakube.formats import function_arn, rfc3339_millis


def invocation_record(
    *,
    namespace: str,
    function: str,
    qualifier: str | None,
    condition: str,
    request_id: str,
    invocations: int,
    now: float,
    status: int | None,
    executed_version: str | None,
    function_error: str | None = None,
) -> dict[str, Any]:
    """``functionArn`` is the ARN the caller invoked, its qualifier included."""
    response: dict[str, Any] = {"statusCode": status, "executedVersion": executed_version}
    if function_error:
        response["functionError"] = function_error
    return {
        "version": "1.0",
        "timestamp": rfc3339_millis(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn(namespace, function) + (f":{qualifier}" if qualifier else ""),
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": response,
    }
