"""EventSourceMapping specs, valid and not, as one table for both judges: the pydantic
models (``tests/unit/test_esm_models.py``) and the real kube-apiserver's schema and CEL
rules (``tests/cluster/test_esm_crd.py``). Each case: (spec, the models' message, the
API server's message); both None for a valid spec."""

from __future__ import annotations

QUEUE = {"functionName": "consumer", "queue": {"name": "orders"}}
KAFKA = {
    "functionName": "consumer",
    "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:9092"]}},
    "topics": ["orders"],
    "startingPosition": "TRIM_HORIZON",
    "selfManagedKafkaEventSourceConfig": {"consumerGroupId": "consumers"},
}
NOT_KAFKA = "startingPosition, parallelizationFactor and selfManagedKafkaEventSourceConfig are Kafka's"
ONE_SOURCE = "an EventSourceMapping reads exactly one source"

CASES: dict[str, tuple[dict, str | None, str | None]] = {
    "a queue, defaults": (QUEUE, None, None),
    "a queue, everything set": (
        {
            **QUEUE,
            "functionName": "consumer:live",
            "queue": {"name": "orders", "visibilityTimeoutSeconds": 120},
            "batchSize": 100,
            "maximumBatchingWindowInSeconds": 5,
            "maximumRetryAttempts": 3,
            "maximumRecordAgeInSeconds": 3600,
            "functionResponseTypes": ["ReportBatchItemFailures"],
            "destinationConfig": {"onFailure": {"queue": "dead"}},
            "scalingConfig": {"maximumConcurrency": 5},
            "filterCriteria": {"filters": [{"pattern": '{"body": {"kind": ["order"]}}'}]},
            "enabled": False,
        },
        None,
        None,
    ),
    "kafka": (KAFKA, None, None),
    "kafka at a timestamp": (
        {**KAFKA, "startingPosition": "AT_TIMESTAMP", "startingPositionTimestamp": "2026-12-01T00:00:00Z"},
        None,
        None,
    ),
    "kafka, parallelization": ({**KAFKA, "parallelizationFactor": 10}, None, None),
    "no source": ({"functionName": "consumer"}, ONE_SOURCE, ONE_SOURCE),
    "two sources": ({**KAFKA, "queue": {"name": "orders"}}, ONE_SOURCE, ONE_SOURCE),
    "kafka without topics": (
        {k: v for k, v in KAFKA.items() if k != "topics"},
        "topics go with selfManagedEventSource",
        "topics go with selfManagedEventSource",
    ),
    "two topics": ({**KAFKA, "topics": ["a", "b"]}, "at most 1 item", "must have at most 1 item"),
    "kafka without a starting position": (
        {k: v for k, v in KAFKA.items() if k != "startingPosition"},
        "a Kafka mapping needs startingPosition",
        "a Kafka mapping needs startingPosition",
    ),
    "a timestamp without AT_TIMESTAMP": (
        {**KAFKA, "startingPositionTimestamp": "2026-12-01T00:00:00Z"},
        "startingPositionTimestamp is set exactly when",
        "startingPositionTimestamp is set exactly when",
    ),
    "AT_TIMESTAMP without a timestamp": (
        {**KAFKA, "startingPosition": "AT_TIMESTAMP"},
        "startingPositionTimestamp is set exactly when",
        "startingPositionTimestamp is set exactly when",
    ),
    "a queue with a starting position": ({**QUEUE, "startingPosition": "LATEST"}, NOT_KAFKA, NOT_KAFKA),
    "a queue with parallelization": ({**QUEUE, "parallelizationFactor": 2}, NOT_KAFKA, NOT_KAFKA),
    "parallelization above 10": (
        {**KAFKA, "parallelizationFactor": 11},
        "less than or equal to 10",
        "less than or equal to 10",
    ),
    "a big queue batch without a window": (
        {**QUEUE, "batchSize": 11},
        "needs maximumBatchingWindowInSeconds of at least 1",
        "needs maximumBatchingWindowInSeconds of at least 1",
    ),
    "batch size above 10000": (
        {**QUEUE, "batchSize": 10001, "maximumBatchingWindowInSeconds": 1},
        "less than or equal to 10000",
        "less than or equal to 10000",
    ),
    "maximum concurrency below 2": (
        {**QUEUE, "scalingConfig": {"maximumConcurrency": 1}},
        "greater than or equal to 2",
        "greater than or equal to 2",
    ),
    "maximum concurrency above 1000": (
        {**QUEUE, "scalingConfig": {"maximumConcurrency": 1001}},
        "less than or equal to 1000",
        "less than or equal to 1000",
    ),
    "scaling config on kafka": (
        {**KAFKA, "scalingConfig": {"maximumConcurrency": 2}},
        "scalingConfig.maximumConcurrency is a queue mapping's",
        "scalingConfig.maximumConcurrency is a queue mapping's",
    ),
    "record age between -1 and 60": (
        {**QUEUE, "maximumRecordAgeInSeconds": 30},
        "maximumRecordAgeInSeconds is -1 (no limit) or 60 to 604800",
        "maximumRecordAgeInSeconds is -1 (no limit) or 60 to 604800",
    ),
    "retries below -1": (
        {**QUEUE, "maximumRetryAttempts": -2},
        "greater than or equal to -1",
        "greater than or equal to -1",
    ),
    "an unknown response type": (
        {**QUEUE, "functionResponseTypes": ["Everything"]},
        "Input should be 'ReportBatchItemFailures'",
        'supported values: "ReportBatchItemFailures"',
    ),
    "a function name with a bad qualifier": (
        {**QUEUE, "functionName": "consumer:a/b"},
        "String should match pattern",
        "spec.functionName: Invalid value",
    ),
    "an on-failure destination naming both": (
        {**QUEUE, "destinationConfig": {"onFailure": {"queue": "a", "function": "b"}}},
        "exactly one of function or queue",
        "exactly one of function or queue",
    ),
    "six filters": (
        {**QUEUE, "filterCriteria": {"filters": [{"pattern": '{"a": [1]}'}] * 6}},
        "at most 5 items",
        "must have at most 5 items",
    ),
    "no bootstrap servers": (
        {**KAFKA, "selfManagedEventSource": {"endpoints": {"KAFKA_BOOTSTRAP_SERVERS": []}}},
        "at least 1 item",
        "should have at least 1 items",
    ),
    "bisect on a queue": (
        {**QUEUE, "bisectBatchOnFunctionError": True},
        "bisectBatchOnFunctionError is Kafka's",
        "bisectBatchOnFunctionError is Kafka's",
    ),
    "bisect on kafka": ({**KAFKA, "bisectBatchOnFunctionError": True}, None, None),
    "an unknown field": (
        {**QUEUE, "surprise": True},
        "Extra inputs are not permitted",
        'unknown field "spec.surprise"',
    ),
}
