"""Lambda's self-managed Kafka event (``pollers.kafka_event``): the dict shape, and the
hot path's direct JSON writer held equal to it for every kind of record."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from lambdakube_router.pollers import kafka_event


@dataclass
class Rec:
    topic: str = "orders.v1"
    partition: int = 0
    offset: int = 0
    timestamp: int = 1_796_000_000_000
    timestamp_type: int = 0
    key: bytes | None = b"k"
    value: bytes | None = b'{"n": 1}'
    headers: tuple = ()


CASES = [
    ("one record", [Rec()]),
    ("no key, no value", [Rec(key=None, value=None)]),
    ("empty key and value", [Rec(key=b"", value=b"")]),
    ("binary value", [Rec(value=bytes(range(256)))]),
    ("log append time", [Rec(timestamp_type=1)]),
    ("unknown timestamp type", [Rec(timestamp_type=-1)]),
    ("headers, one empty, one named with quotes", [Rec(headers=(("trace", b"ab"), ('we"ird\\', b""), ("n", None)))]),
    ("two partitions", [Rec(offset=1), Rec(partition=1, offset=7), Rec(offset=2)]),
]


@pytest.mark.parametrize("name,records", CASES, ids=[c[0] for c in CASES])
def test_event_bytes_is_the_event_as_json(name, records):
    assert json.loads(kafka_event.event_bytes(records, 'b1:9092,"b2":9092')) == kafka_event.event(
        records, 'b1:9092,"b2":9092'
    )


def test_the_event_is_lambdas_shape():
    got = kafka_event.event([Rec(headers=(("h", b"hi"),))], "b1:9092")
    assert got == {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "b1:9092",
        "records": {
            "orders.v1-0": [
                {
                    "topic": "orders.v1",
                    "partition": 0,
                    "offset": 0,
                    "timestamp": 1_796_000_000_000,
                    "timestampType": "CREATE_TIME",
                    "key": "aw==",
                    "value": "eyJuIjogMX0=",
                    "headers": [{"h": [104, 105]}],
                }
            ]
        },
    }
