"""The JSON a Kafka mapping hands a function, and the one it hands ``onFailure``: Lambda's
self-managed Kafka shapes, pure, so a handler written for Lambda reads them unchanged.

The event (one invocation = one partition's batch, so ``records`` has one key)::

    {"eventSource": "SelfManagedKafka", "bootstrapServers": "b1:9092,b2:9092",
     "records": {"orders-0": [{"topic": "orders", "partition": 0, "offset": 15,
        "timestamp": 1545084650987, "timestampType": "CREATE_TIME",
        "key": "<base64>", "value": "<base64>",
        "headers": [{"traceId": [104, 105]}]}]}}

A record without a key or value has none of that field (Lambda leaves it out).

The onFailure record is Lambda's stream failure record (``requestContext``,
``responseContext``, ``KafkaBatchInfo``) plus ``payload``: the event of the records
that failed, so that nothing is lost (Lambda adds the payload only for S3
destinations; here a queue message or an async event is the only copy left).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from lambdakube_router.invocation_records import invocation_record


EVENT_SOURCE = "SelfManagedKafka"
#: Kafka's timestamp types (aiokafka's ``timestamp_type``) by Lambda's names.
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}
_TIMESTAMP_TYPES_BYTES = {k: v.encode() for k, v in TIMESTAMP_TYPES.items()}


def record_json(r: Any) -> dict:
    """One aiokafka ``ConsumerRecord`` as Lambda shows it."""
    out: dict[str, Any] = {
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestampType": TIMESTAMP_TYPES.get(r.timestamp_type, "NO_TIMESTAMP_TYPE"),
    }
    if r.key is not None:
        out["key"] = base64.b64encode(r.key).decode()
    if r.value is not None:
        out["value"] = base64.b64encode(r.value).decode()
    out["headers"] = [{name: list(value or b"")} for name, value in (r.headers or ())]
    return out


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def event(records: Sequence[Any], bootstrap_servers: str) -> dict:
    """The invocation's payload for ``records`` (in offset order, of one partition or more)."""
    grouped: dict[str, list[dict]] = {}
    for r in records:
        grouped.setdefault(partition_key(r.topic, r.partition), []).append(record_json(r))
    return {"eventSource": EVENT_SOURCE, "bootstrapServers": bootstrap_servers, "records": grouped}


def event_bytes(records: Sequence[Any], bootstrap_servers: str) -> bytes:
    """``json.dumps(event(records, bootstrap_servers))``, compact, written directly as
    bytes: the invocation's hot path (a batch of 100 records costs a third of what
    building the dicts and encoding them does). A lane's batch is one partition's, so
    the part of each record that names it is made once a partition. Topic names
    ([a-zA-Z0-9._-]) and base64 need no JSON escaping; header names go through
    ``json.dumps``. A unit test holds it equal to ``event``."""
    b64 = binascii.b2a_base64
    types = _TIMESTAMP_TYPES_BYTES
    groups: dict[tuple[str, int], tuple[bytes, list[bytes]]] = {}
    for r in records:
        group = groups.get((r.topic, r.partition))
        if group is None:
            head = f'{{"topic":"{r.topic}","partition":{r.partition},"offset":'.encode()
            group = groups[(r.topic, r.partition)] = (head, [])
        head, items = group
        key, value, headers = r.key, r.value, r.headers
        items.append(
            b'%s%d,"timestamp":%d,"timestampType":"%s"%s%s%s'
            % (
                head,
                r.offset,
                r.timestamp,
                types.get(r.timestamp_type, b"NO_TIMESTAMP_TYPE"),
                b"" if key is None else b',"key":"%s"' % b64(key, newline=False),
                b"" if value is None else b',"value":"%s"' % b64(value, newline=False),
                _headers_json(headers) if headers else b',"headers":[]}',
            )
        )
    grouped = b",".join(
        b'"%s":[%s]' % (partition_key(topic, partition).encode(), b",".join(items))
        for (topic, partition), (_, items) in groups.items()
    )
    return b'{"eventSource":"%s","bootstrapServers":%s,"records":{%s}}' % (
        EVENT_SOURCE.encode(),
        json.dumps(bootstrap_servers).encode(),
        grouped,
    )


def _headers_json(headers) -> bytes:
    items = ",".join(f"{{{json.dumps(name)}:[{','.join(map(str, value or b''))}]}}" for name, value in headers)
    return f',"headers":[{items}]}}'.encode()


def failure_record(
    records: Sequence[Any],
    condition: str,
    *,
    namespace: str,
    function: str,
    qualifier: str | None,
    bootstrap_servers: str,
    request_id: str,
    invocations: int,
    now: float,
    status: int | None = None,
    function_error: str | None = None,
    executed_version: str | None = None,
) -> dict:
    """What ``onFailure`` receives for ``records`` (one partition's, in order) whose
    retries (``RetryAttemptsExhausted``) or age (``RecordAgeExceeded``) are spent."""
    first, last = records[0], records[-1]
    record = invocation_record(
        namespace=namespace,
        function=function,
        qualifier=qualifier,
        condition=condition,
        request_id=request_id,
        invocations=invocations,
        now=now,
        status=status if status is not None else 200,
        executed_version=executed_version or "$LATEST",
        function_error=function_error,
    )
    return record | {
        "KafkaBatchInfo": {
            "batchSize": len(records),
            "topic": first.topic,
            "partition": first.partition,
            "firstOffset": first.offset,
            "lastOffset": last.offset,
            "firstRecordTimestamp": first.timestamp,
            "lastRecordTimestamp": last.timestamp,
            "bootstrapServers": bootstrap_servers,
        },
        "payload": event(records, bootstrap_servers),
    }
