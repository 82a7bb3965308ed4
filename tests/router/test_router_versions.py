"""Published versions and aliases on the local backend, with real runtime processes: a
version runs its own code (and says so in ``context.function_version`` and
``X-Amz-Executed-Version``) while ``$LATEST`` runs the new one; an alias splits
invocations by weight, measured; reserved concurrency is the function's, shared by
all its versions."""

from __future__ import annotations

import asyncio
import math
import textwrap

import pytest

from lambdakube_router import keys
from tests.router.conftest import function

LATEST_SOURCE = """
def handler(event, context):
    return {"code": "latest", "version": context.function_version}
"""


def version_source(n: int) -> str:
    return f"""
def handler(event, context):
    return {{"code": "v{n}", "version": context.function_version}}
"""


SLOW_SOURCE = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"version": context.function_version}
"""


def version(function_name: str, number: int, source: str, description: str | None = None, **config) -> dict:
    extra = {"description": description} if description else {}
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": f"{function_name}-v{number}"},
        "spec": {
            "function": function_name,
            "version": number,
            "config": {"handler": "index.handler", "code": {"inline": {"source": textwrap.dedent(source)}}, **config},
            **extra,
        },
    }


def alias(function_name: str, name: str, function_version: str, weights: dict | None = None) -> dict:
    spec: dict = {"function": function_name, "functionVersion": function_version}
    if weights:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "FunctionAlias", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
async def router(make_router):
    r = await make_router(
        function("hello", LATEST_SOURCE),
        version("hello", 1, version_source(1)),
        version("hello", 2, version_source(2)),
        alias("hello", "live", "1"),
        alias("hello", "canary", "1", {"2": 0.1}),
        alias("hello", "head", "$LATEST"),
    )
    r.app[keys.ENGINE].settings.random.seed(16)
    return r


@pytest.mark.parametrize(
    "name, params, code, version",
    [
        pytest.param("hello", None, "latest", "$LATEST", id="unqualified"),
        pytest.param("hello:$LATEST", None, "latest", "$LATEST", id="latest"),
        pytest.param("hello:1", None, "v1", "1", id="name:1"),
        pytest.param("hello", {"Qualifier": "2"}, "v2", "2", id="Qualifier=2"),
        pytest.param("hello:live", None, "v1", "1", id="alias"),
        pytest.param("hello", {"Qualifier": "head"}, "latest", "$LATEST", id="alias-of-latest"),
        pytest.param("lambdakube:default:function:hello:2", None, "v2", "2", id="arn:2"),
    ],
)
async def test_a_qualifier_runs_its_versions_code(router, name, params, code, version):
    status, headers, body = await router.invoke_json(name, {}, params=params)
    assert status == 200, body
    assert body == {"code": code, "version": version}
    assert headers["X-Amz-Executed-Version"] == version


@pytest.mark.parametrize(
    "name, message",
    [
        pytest.param("hello:3", "Function not found: default/hello:3", id="version"),
        pytest.param("hello:nope", "Function not found: default/hello:nope", id="alias"),
        pytest.param("gone:1", "Function not found: default/gone:1", id="function"),
    ],
)
async def test_unknown_versions_and_aliases_are_not_found(router, name, message):
    status, headers, body = await router.invoke_json(name, {})
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert body["errorMessage"] == message


async def test_a_qualified_event_runs_its_version(make_router):
    """An Event invoke of a version or an alias keeps its qualifier in the durable store:
    it runs that version, and the destination record names both (Lambda's functionArn
    with the qualifier, executedVersion the version that ran)."""
    from tests.router.test_router_async import wait_queue

    router = await make_router(
        function("hello", LATEST_SOURCE, **{"async": {"onSuccess": {"queue": "ok"}}}),
        version("hello", 1, version_source(1)),
        alias("hello", "live", "1"),
    )
    sent = {}
    for name in ("hello", "hello:1", "hello:live"):
        status, headers, _ = await router.invoke(name, {}, headers={"X-Amz-Invocation-Type": "Event"})
        assert status == 202
        sent[headers["X-Amz-Request-Id"]] = name
    records = {m["body"]["requestContext"]["requestId"]: m["body"] for m in await wait_queue(router, "ok", 3)}
    got = {
        sent[rid]: (r["requestContext"]["functionArn"], r["responseContext"]["executedVersion"], r["responsePayload"])
        for rid, r in records.items()
    }
    arn = "lambdakube:default:function:hello"
    assert got == {
        "hello": (arn, "$LATEST", {"code": "latest", "version": "$LATEST"}),
        "hello:1": (f"{arn}:1", "1", {"code": "v1", "version": "1"}),
        "hello:live": (f"{arn}:live", "1", {"code": "v1", "version": "1"}),
    }


async def test_an_event_to_an_unknown_qualifier_is_not_found(router):
    status, headers, _ = await router.invoke_json("hello:9", {}, headers={"X-Amz-Invocation-Type": "Event"})
    assert status == 404 and headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


async def test_an_alias_splits_invocations_by_weight(router):
    """2,000 invocations of an alias with 10% on version 2: the count of version 2 is
    binomial (n=2000, p=0.1; sd 13.4), asserted within 4.5 sd of 200."""
    n, p = 2000, 0.1
    counts = {"1": 0, "2": 0}
    for _ in range(n // 50):
        results = await asyncio.gather(*(router.invoke_json("hello:canary", {}) for _ in range(50)))
        for status, headers, body in results:
            assert status == 200, body
            assert body["version"] == headers["X-Amz-Executed-Version"]
            counts[body["version"]] += 1
    tolerance = 4.5 * math.sqrt(n * p * (1 - p))
    assert sum(counts.values()) == n
    assert abs(counts["2"] - n * p) <= tolerance, counts


async def test_an_updated_function_keeps_its_versions_code(router):
    """$LATEST is the mutable head: a new spec runs at once, version 1 keeps its own."""
    from tests.router.conftest import snapshot

    engine = router.app[keys.ENGINE]
    assert (await router.invoke_json("hello:1", {}))[2]["code"] == "v1"
    new = LATEST_SOURCE.replace('"latest"', '"latest-2"')
    engine.apply(snapshot(function("hello", new), version("hello", 1, version_source(1)), alias("hello", "live", "1")))
    assert (await router.invoke_json("hello", {}))[2]["code"] == "latest-2"
    assert (await router.invoke_json("hello:live", {}))[2] == {"code": "v1", "version": "1"}
    assert (await router.invoke_json("hello:2", {}))[0] == 404  # version 2 is gone


async def test_reserved_concurrency_is_shared_by_all_versions(make_router):
    r = await make_router(function("slow", SLOW_SOURCE, reservedConcurrency=1), version("slow", 1, SLOW_SOURCE))
    busy = asyncio.create_task(r.invoke_json("slow", {"sleep": 1.0}))
    await r.eventually(lambda: r.app[keys.ENGINE].get("default", "slow").limits.functions["slow"].in_flight == 1)
    status, headers, body = await r.invoke_json("slow:1", {})
    assert status == 429, body
    assert body["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert (await busy)[0] == 200
    status, headers, body = await r.invoke_json("slow:1", {})
    assert (status, body) == (200, {"version": "1"})


def lambda_client(router):
    from tests.router.test_lambda_read_api import client

    return client(router)


async def call(fn, **kw):
    return await asyncio.to_thread(fn, **kw)


async def test_boto3_reads_versions_and_aliases(make_router):
    r = await make_router(
        function("hello", LATEST_SOURCE, timeoutSeconds=5, reservedConcurrency=3),
        version("hello", 1, version_source(1), description="first", timeoutSeconds=9),
        version("hello", 2, version_source(2)),
        alias("hello", "live", "1"),
        alias("hello", "canary", "1", {"2": 0.1}),
    )
    lam = lambda_client(r)
    arn = "lambdakube:default:function:hello"
    versions = (await call(lam.list_versions_by_function, FunctionName="hello"))["Versions"]
    assert [(v["Version"], v["FunctionArn"], v["Timeout"], v["Description"]) for v in versions] == [
        ("$LATEST", arn, 5, ""),
        ("1", f"{arn}:1", 9, "first"),
        ("2", f"{arn}:2", 3, ""),
    ]
    aliases = (await call(lam.list_aliases, FunctionName="hello"))["Aliases"]
    assert [(a["Name"], a["AliasArn"], a["FunctionVersion"]) for a in aliases] == [
        ("canary", f"{arn}:canary", "1"),
        ("live", f"{arn}:live", "1"),
    ]
    canary = await call(lam.get_alias, FunctionName="hello", Name="canary")
    assert canary["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    assert canary["RevisionId"] == aliases[0]["RevisionId"]
    assert "RoutingConfig" not in await call(lam.get_alias, FunctionName="hello", Name="live")
    one = await call(lam.get_function, FunctionName="hello", Qualifier="1")
    assert (one["Configuration"]["Version"], one["Configuration"]["FunctionArn"]) == ("1", f"{arn}:1")
    assert one["Configuration"]["Timeout"] == 9 and one["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    by_alias = await call(lam.get_function_configuration, FunctionName="hello:live")
    assert (by_alias["Version"], by_alias["FunctionArn"]) == ("1", f"{arn}:live")
    from botocore.exceptions import ClientError

    for method, kw in (
        (lam.get_alias, {"FunctionName": "hello", "Name": "nope"}),
        (lam.get_function, {"FunctionName": "hello", "Qualifier": "7"}),
        (lam.get_function_configuration, {"FunctionName": "hello:nope"}),
    ):
        with pytest.raises(ClientError) as err:
            await call(method, **kw)
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
