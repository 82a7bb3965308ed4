"""SendMessage / SendMessageBatch on the router's durable queues: the request, checked. Pure.

Why a queue API that writes: a queue mapping (``pollers.queue``) reads these queues
with SQS semantics, so users and tests need SQS's way in. The body is SQS's JSON
protocol shape (``MessageBody``, ``MessageAttributes``, ``DelaySeconds``; or
``Entries`` of those with an ``Id``), the limits are SQS's (256 KiB a message, 10
entries, 10 attributes, a delay of at most 900 s). Attributes are stored in the shape
Lambda's SQS event gives them (``stringValue``, ``binaryValue``, ``dataType``, the two
list fields), so a poller passes them through as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

MAX_BODY_BYTES = 262144
MAX_ENTRIES = 10
MAX_ATTRIBUTES = 10
MAX_DELAY_SECONDS = 900
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,200})?")
_MESSAGE_KEYS = {"MessageBody", "MessageAttributes", "DelaySeconds"}


class BadMessage(ValueError):
    """400 InvalidParameterValueException with ``str(exc)``."""


@dataclass(frozen=True)
class Outgoing:
    #: The batch entry's ``Id`` (None: a single SendMessage).
    entry_id: str | None
    body: bytes
    md5: str
    #: Lambda's event shape, as JSON text; None: no attributes.
    attributes: str | None
    delay_seconds: int


def parse_request(raw: bytes) -> list[Outgoing]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadMessage("the body must be a JSON object (SendMessage or SendMessageBatch)") from None
    if not isinstance(doc, dict):
        raise BadMessage("the body must be a JSON object (SendMessage or SendMessageBatch)")
    if "Entries" in doc:
        if set(doc) != {"Entries"}:
            raise BadMessage("a SendMessageBatch body has Entries only")
        entries = doc["Entries"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
            raise BadMessage(f"Entries must be a list of 1 to {MAX_ENTRIES} messages")
        out, seen = [], set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise BadMessage(f"Entries[{i}] must be an object")
            ident = entry.get("Id")
            if not isinstance(ident, str) or not _ENTRY_ID.fullmatch(ident):
                raise BadMessage(f"Entries[{i}].Id must be 1 to 80 letters, digits, '-' or '_'")
            if ident in seen:
                raise BadMessage(f"Entries[{i}].Id {ident!r}: ids must be distinct")
            seen.add(ident)
            out.append(_message({k: v for k, v in entry.items() if k != "Id"}, ident, f"Entries[{i}]."))
        return out
    return [_message(doc, None, "")]


def _message(doc: dict, entry_id: str | None, where: str) -> Outgoing:
    unknown = sorted(set(doc) - _MESSAGE_KEYS)
    if unknown:
        raise BadMessage(f"{where}{unknown[0]}: not a field of SendMessage ({', '.join(sorted(_MESSAGE_KEYS))})")
    body = doc.get("MessageBody")
    if not isinstance(body, str) or not body:
        raise BadMessage(f"{where}MessageBody is required: a non-empty string")
    encoded = body.encode()
    if len(encoded) > MAX_BODY_BYTES:
        raise BadMessage(f"{where}MessageBody is {len(encoded)} bytes; at most {MAX_BODY_BYTES}")
    delay = doc.get("DelaySeconds", 0)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise BadMessage(f"{where}DelaySeconds must be an integer from 0 to {MAX_DELAY_SECONDS}")
    attributes = _attributes(doc.get("MessageAttributes"), where)
    return Outgoing(
        entry_id,
        encoded,
        hashlib.md5(encoded, usedforsecurity=False).hexdigest(),
        json.dumps(attributes, separators=(",", ":")) if attributes else None,
        delay,
    )


def _attributes(raw: object, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_ATTRIBUTES:
        raise BadMessage(f"{where}MessageAttributes must be an object of at most {MAX_ATTRIBUTES} attributes")
    out = {}
    for name, value in raw.items():
        at = f"{where}MessageAttributes.{name}"
        if not _ATTRIBUTE_NAME.fullmatch(name) or name.lower().startswith(("aws.", "amazon.")):
            raise BadMessage(f"{at}: not a valid attribute name")
        if not isinstance(value, dict) or set(value) - {"DataType", "StringValue", "BinaryValue"}:
            raise BadMessage(f"{at}: must be {{DataType, StringValue | BinaryValue}}")
        data_type = value.get("DataType")
        if not isinstance(data_type, str) or not _DATA_TYPE.fullmatch(data_type):
            raise BadMessage(f"{at}.DataType must be String, Number or Binary (with an optional .suffix)")
        string, binary = value.get("StringValue"), value.get("BinaryValue")
        entry: dict = {"stringListValues": [], "binaryListValues": [], "dataType": data_type}
        if data_type.startswith("Binary"):
            if not isinstance(binary, str) or string is not None:
                raise BadMessage(f"{at}: a Binary attribute has a BinaryValue (base64) only")
            try:
                base64.b64decode(binary, validate=True)
            except binascii.Error:
                raise BadMessage(f"{at}.BinaryValue is not base64") from None
            entry["binaryValue"] = binary
        else:
            if not isinstance(string, str) or binary is not None:
                raise BadMessage(f"{at}: a {data_type} attribute has a StringValue only")
            if data_type.startswith("Number"):
                try:
                    float(string)
                except ValueError:
                    raise BadMessage(f"{at}.StringValue is not a number") from None
            entry["stringValue"] = string
        out[name] = entry
    return out
