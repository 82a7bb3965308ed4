"""Lambda's read API as the real boto3 reads it, against a router on the local backend:
ListFunctions (with paging), GetFunction, GetFunctionConfiguration,
GetFunctionConcurrency, ListVersionsByFunction, ListAliases and GetAccountSettings,
in the namespace of a plain name; unknown functions and qualifiers are Lambda's
ResourceNotFoundException; and with ``--auth token-file`` they need a token like
every other route."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdakube_router import lambda_shapes
from lambdakube_router.access import AuthSettings
from tests.router.conftest import function, quota

SOURCE = "def handler(event, context):\n    return event\n"


def client(router, *, token: str | None = None, namespace: str | None = None):
    session = boto3.session.Session(
        aws_access_key_id="LK", aws_secret_access_key="unused", aws_session_token=token, region_name="lambdakube"
    )
    lam = session.client("lambda", endpoint_url=router.url("/").rstrip("/"), config=Config(retries={"max_attempts": 1}))
    if namespace:
        lam.meta.events.register(
            "before-sign.lambda.*",
            lambda request, **_: request.headers.__setitem__("X-Lambdakube-Namespace", namespace),
        )
    return lam


async def call(fn, **kw):
    """A boto3 call off the event loop: the router under test runs on it."""
    return await asyncio.to_thread(fn, **kw)


@pytest.fixture
async def router(make_router):
    return await make_router(
        function("alpha", SOURCE, env={"GREETING": "hi"}, reservedConcurrency=5, timeoutSeconds=9),
        function("beta", SOURCE, resources={"memorySize": 256}),
        function("gamma", SOURCE),
        function("other", SOURCE, namespace="team-b"),
        quota(concurrentExecutions=50, minimumUnreserved=10),
    )


async def test_list_functions_pages_through_the_namespace(router):
    lam = client(router)
    first = await call(lam.list_functions, MaxItems=2)
    assert [f["FunctionName"] for f in first["Functions"]] == ["alpha", "beta"]
    rest = await call(lam.list_functions, MaxItems=2, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in rest["Functions"]] == ["gamma"] and "NextMarker" not in rest
    everything = await call(
        lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}).build_full_result
    )
    assert [f["FunctionName"] for f in everything["Functions"]] == ["alpha", "beta", "gamma"]
    team_b = await call(client(router, namespace="team-b").list_functions)
    assert [f["FunctionName"] for f in team_b["Functions"]] == ["other"]
    with pytest.raises(ClientError) as err:
        await call(lam.list_functions, Marker="!!not-ours!!")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"


async def test_get_function_and_its_configuration(router):
    lam = client(router)
    got = await call(lam.get_function, FunctionName="alpha")
    config = got["Configuration"]
    assert config["FunctionArn"] == "lambdakube:default:function:alpha"
    assert (config["Handler"], config["Timeout"], config["MemorySize"]) == ("index.handler", 9, 128)
    assert config["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert (config["Version"], config["State"], config["PackageType"], config["Runtime"]) == (
        "$LATEST",
        "Active",
        "Zip",
        "python3.11",
    )
    assert config["CodeSize"] == len(SOURCE) and config["EphemeralStorage"] == {"Size": 512}
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(SOURCE.encode()).digest()).decode()
    assert got["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    by_arn = await call(lam.get_function_configuration, FunctionName="lambdakube:default:function:beta")
    by_arn.pop("ResponseMetadata")
    assert by_arn == (await call(lam.get_function, FunctionName="beta"))["Configuration"]


async def test_concurrency_versions_and_aliases(router):
    lam = client(router)
    assert (await call(lam.get_function_concurrency, FunctionName="alpha"))["ReservedConcurrentExecutions"] == 5
    assert "ReservedConcurrentExecutions" not in await call(lam.get_function_concurrency, FunctionName="beta")
    versions = await call(lam.list_versions_by_function, FunctionName="beta")
    assert [(v["Version"], v["MemorySize"]) for v in versions["Versions"]] == [("$LATEST", 256)]
    assert (await call(lam.list_aliases, FunctionName="beta"))["Aliases"] == []


async def test_account_settings_are_the_namespace_quota(router):
    settings = await call(client(router).get_account_settings)
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 50
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 45  # 50 - alpha's 5
    assert settings["AccountUsage"] == {"TotalCodeSize": 3 * len(SOURCE), "FunctionCount": 3}
    empty = await call(client(router, namespace="nobody-here").get_account_settings)
    assert empty["AccountLimit"]["ConcurrentExecutions"] == 1000 and empty["AccountUsage"]["FunctionCount"] == 0


@pytest.mark.parametrize(
    "name, qualifier",
    [
        pytest.param("nope", None, id="an unknown function"),
        pytest.param("alpha", "live", id="a qualifier that does not exist"),
        pytest.param("lambdakube:team-b:function:alpha", None, id="in another namespace"),
    ],
)
async def test_what_does_not_exist_is_resource_not_found(router, name, qualifier):
    lam = client(router)
    kw = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
    for method in (lam.get_function, lam.get_function_configuration):
        with pytest.raises(ClientError) as err:
            await call(method, **kw)
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_the_read_api_needs_a_token(make_router, tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("tok-viewer,viewer,uid-v\n")
    router = await make_router(function("alpha", SOURCE), auth=AuthSettings(mode="token-file", token_file=str(tokens)))
    with pytest.raises(ClientError) as err:
        await call(client(router).list_functions)
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    got = await call(client(router, token="tok-viewer").list_functions)
    assert [f["FunctionName"] for f in got["Functions"]] == ["alpha"]


@pytest.mark.parametrize(
    "raw, want",
    [(None, 50), ("", 50), ("1", 1), ("10000", 10000)],
)
def test_max_items(raw, want):
    assert lambda_shapes.max_items(raw) == want


@pytest.mark.parametrize("raw", ["0", "10001", "-3", "ten", "1.5"])
def test_bad_max_items(raw):
    with pytest.raises(lambda_shapes.InvalidParameter):
        lambda_shapes.max_items(raw)


@pytest.mark.parametrize(
    "names, limit, pages",
    [
        pytest.param([], 5, [[]], id="nothing"),
        pytest.param(["b", "a", "c"], 5, [["a", "b", "c"]], id="one page, sorted"),
        pytest.param(["a", "b", "c"], 2, [["a", "b"], ["c"]], id="two pages"),
        pytest.param(["a", "b"], 2, [["a", "b"]], id="exactly full: no marker"),
        pytest.param(["a", "b", "c"], 1, [["a"], ["b"], ["c"]], id="one at a time"),
    ],
)
def test_pages(names, limit, pages):
    got, marker = [], None
    while True:
        chunk, marker = lambda_shapes.page(names, marker, limit)
        got.append(chunk)
        if marker is None:
            break
    assert got == pages


@pytest.mark.parametrize("machine, arch", [("x86_64", "x86_64"), ("aarch64", "arm64"), ("arm64", "arm64")])
def test_architecture(machine, arch):
    assert lambda_shapes.architecture(machine) == arch
