"""Provisioned concurrency on an alias, Lambda's own example, on the local backend with
real runtime processes and the real boto3 with its defaults (the environment carries
the router's endpoint, as on a cluster): an orchestrator handler fans out to
``worker:live`` concurrently with ``LogType: Tail``. With 10 provisioned, 10 at once
show no Init Duration in any Tail log; 11 at once show exactly one, and the 11th runs
an on-demand environment *of the alias's version* (the spill-over)."""

from __future__ import annotations

import pytest

from lambdakube_router import keys
from tests.router.conftest import function, snapshot
from tests.router.test_router_versions import alias, version, version_source

WORKER_LATEST = """
def handler(event, context):
    return {"code": "latest"}
"""

WORKER_V1 = """
import os, time
def handler(event, context):
    time.sleep(event["hold"])  # long enough for all of the fan-out to overlap
    return {"code": "v1", "env": os.environ["LAMBDAKUBE_ENV_ID"]}
"""

ORCHESTRATOR = """
import base64, json
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

def handler(event, context):
    # the environment says where the router is (AWS_ENDPOINT_URL_LAMBDA), its region and keys
    client = boto3.client("lambda", config=Config(max_pool_connections=64, retries={"max_attempts": 0}))

    def one(i):
        out = client.invoke(
            FunctionName=event["target"], LogType="Tail", Payload=json.dumps({"hold": event["hold"]})
        )
        tail = base64.b64decode(out["LogResult"]).decode()
        body = json.loads(out["Payload"].read())
        return {
            "status": out["StatusCode"],
            "version": out["ExecutedVersion"],
            "init": "Init Duration" in tail,
            "code": body["code"],
            "env": body["env"],
        }

    with ThreadPoolExecutor(event["n"]) as pool:
        return list(pool.map(one, range(event["n"])))
"""


def provisioned_alias(
    name: str, function_version: str, provisioned: int, weights: dict | None = None, function_name: str = "worker"
) -> dict:
    doc = alias(function_name, name, function_version, weights)
    doc["spec"]["provisionedConcurrency"] = provisioned
    return doc


@pytest.fixture
async def router(make_router):
    r = await make_router(
        function("worker", WORKER_LATEST),
        version("worker", 1, WORKER_V1),
        provisioned_alias("live", "1", 10),
        function("orchestrator", ORCHESTRATOR, timeoutSeconds=60),
    )
    pool = lambda: r.app[keys.ENGINE].get("default", "worker").version_pools.get(1)  # noqa: E731
    await r.eventually(lambda: pool() is not None and pool().counts()["idle"] == 10, timeout=60)
    return r


async def fan_out(router, n: int) -> list[dict]:
    event = {"target": "worker:live", "n": n, "hold": 1.0}
    status, headers, body = await router.invoke_json("orchestrator", event)
    assert status == 200 and "X-Amz-Function-Error" not in headers, body
    return body


async def test_ten_provisioned_serve_ten_at_once_without_an_init(router):
    calls = await fan_out(router, 10)
    assert [(c["status"], c["version"], c["code"], c["init"]) for c in calls] == [(200, "1", "v1", False)] * 10
    assert len({c["env"] for c in calls}) == 10  # one request per environment
    assert all(c["env"].startswith("worker-p") for c in calls), calls  # provisioned ids (pods.new_env_id)


async def test_the_eleventh_spills_to_one_on_demand_environment_of_the_same_version(router):
    calls = await fan_out(router, 11)
    assert [(c["status"], c["version"], c["code"]) for c in calls] == [(200, "1", "v1")] * 11
    assert sum(c["init"] for c in calls) == 1
    assert len({c["env"] for c in calls}) == 11
    [spilled] = [c for c in calls if c["init"]]
    assert not spilled["env"].startswith("worker-p")  # on-demand (fresh, or a generic spare)
    pool = router.app[keys.ENGINE].get("default", "worker").version_pools[1]
    assert pool.counts()["idle"] == 11  # ten provisioned, one on-demand, all of version 1
    state = router.app[keys.ENGINE].get("default", "worker")
    assert state.pool.counts()["idle"] == 0  # $LATEST ran nothing


async def test_provisioned_concurrency_follows_the_alias(make_router):
    """Lowered, the surplus drains; moved to another version, its environments move too;
    a weighted alias splits them (Lambda: in proportion to the weights)."""
    docs = [function("worker", WORKER_LATEST), version("worker", 1, WORKER_V1), version("worker", 2, version_source(2))]
    router = await make_router(*docs, provisioned_alias("live", "1", 4))
    engine = router.app[keys.ENGINE]

    def provisioned_idle() -> dict[int, int]:
        state = engine.get("default", "worker")
        return {n: p.counts()["idle"] for n, p in state.version_pools.items() if p.counts()["idle"]}

    await router.eventually(lambda: provisioned_idle() == {1: 4}, timeout=30)
    for spec, want in [
        (provisioned_alias("live", "1", 2), {1: 2}),
        (provisioned_alias("live", "1", 4, {"2": 0.5}), {1: 2, 2: 2}),
        (provisioned_alias("live", "2", 1), {2: 1}),
    ]:
        engine.apply(snapshot(*docs, spec))
        await router.eventually(lambda want=want: provisioned_idle() == want, timeout=30)
