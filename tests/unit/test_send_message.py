"""SendMessage / SendMessageBatch bodies (``send_message.parse_request``), as tables."""

import hashlib
import json

import pytest

from lambdakube_router.send_message import MAX_BODY_BYTES, BadMessage, parse_request


def req(doc) -> bytes:
    return json.dumps(doc).encode()


def test_a_single_message_with_attributes_in_lambdas_event_shape():
    [m] = parse_request(
        req(
            {
                "MessageBody": "hello",
                "DelaySeconds": 5,
                "MessageAttributes": {
                    "kind": {"DataType": "String", "StringValue": "order"},
                    "n": {"DataType": "Number.int", "StringValue": "3"},
                    "blob": {"DataType": "Binary", "BinaryValue": "aGk="},
                },
            }
        )
    )
    assert (m.entry_id, m.body, m.md5, m.delay_seconds) == (None, b"hello", hashlib.md5(b"hello").hexdigest(), 5)
    assert json.loads(m.attributes) == {
        "kind": {"stringValue": "order", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "n": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number.int"},
        "blob": {"binaryValue": "aGk=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }


def test_a_batch_keeps_its_ids_and_order():
    got = parse_request(req({"Entries": [{"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}]}))
    assert [(m.entry_id, m.body, m.attributes) for m in got] == [("a", b"1", None), ("b", b"2", None)]


REFUSED = [
    ("not-json", b"{", "must be a JSON object"),
    ("not-an-object", b"[]", "must be a JSON object"),
    ("no-body", req({}), "MessageBody is required"),
    ("empty-body", req({"MessageBody": ""}), "MessageBody is required"),
    ("body-too-large", req({"MessageBody": "x" * (MAX_BODY_BYTES + 1)}), "at most 262144"),
    ("unknown-field", req({"MessageBody": "x", "QueueUrl": "q"}), "QueueUrl: not a field of SendMessage"),
    ("delay-too-long", req({"MessageBody": "x", "DelaySeconds": 901}), "DelaySeconds must be an integer"),
    ("delay-not-int", req({"MessageBody": "x", "DelaySeconds": True}), "DelaySeconds must be an integer"),
    ("no-entries", req({"Entries": []}), "Entries must be a list of 1 to 10"),
    ("eleven-entries", req({"Entries": [{"Id": str(i), "MessageBody": "x"} for i in range(11)]}), "1 to 10"),
    ("entries-and-body", req({"Entries": [], "MessageBody": "x"}), "has Entries only"),
    ("bad-id", req({"Entries": [{"Id": "a b", "MessageBody": "x"}]}), "Entries[0].Id must be"),
    ("same-ids", req({"Entries": [{"Id": "a", "MessageBody": "x"}] * 2}), "ids must be distinct"),
    ("entry-without-body", req({"Entries": [{"Id": "a"}]}), "Entries[0].MessageBody is required"),
    (
        "reserved-attribute-name",
        req({"MessageBody": "x", "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}}),
        "not a valid attribute name",
    ),
    (
        "bad-data-type",
        req({"MessageBody": "x", "MessageAttributes": {"a": {"DataType": "Text", "StringValue": "v"}}}),
        "DataType must be String, Number or Binary",
    ),
    (
        "number-not-a-number",
        req({"MessageBody": "x", "MessageAttributes": {"a": {"DataType": "Number", "StringValue": "three"}}}),
        "is not a number",
    ),
    (
        "binary-not-base64",
        req({"MessageBody": "x", "MessageAttributes": {"a": {"DataType": "Binary", "BinaryValue": "!!"}}}),
        "is not base64",
    ),
    (
        "eleven-attributes",
        req(
            {
                "MessageBody": "x",
                "MessageAttributes": {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)},
            }
        ),
        "at most 10 attributes",
    ),
]


@pytest.mark.parametrize("raw, message", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_the_reason(raw, message):
    with pytest.raises(BadMessage) as info:
        parse_request(raw)
    assert message in str(info.value)
