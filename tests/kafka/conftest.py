"""The Kafka layer: a real broker (``make kafka``; session scope, its log dir in tmp,
stopped by PID), topics made per test, and the router app of tests/router (the local
backend's real runtime processes) whose Engine the pollers invoke."""

from __future__ import annotations

import uuid

import pytest

from tests.kafka.broker import ToolMissing, locate_kafka, running
from tests.router.conftest import crds, make_router  # noqa: F401 - the router app and CRD fixtures


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    missing = None
    try:
        locate_kafka()
    except ToolMissing as exc:
        missing = str(exc)
    if missing:  # a failure, never a skip, naming `make kafka`; unchained
        pytest.fail(missing, pytrace=False)
    with running(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
async def make_topic(kafka_broker):
    """``await make_topic(partitions) -> name``: a fresh topic, so tests never share records."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()

    async def make(partitions: int = 1) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        return name

    try:
        yield make
    finally:
        await admin.close()
