"""Lambda's reserved-concurrency writes with the real boto3: on a cluster they patch the
Function's ``spec.reservedConcurrency`` through a real kube-apiserver and answer once the
router's own view has it; a reservation that does not fit is refused at the call with
Lambda's message; a router whose Functions are manifests refuses, naming them."""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.exceptions import ClientError

from lambdakube_router import keys, lambda_shapes
from lambdakube_router.app import init_app
from lambdakube_router.sources import DirectorySource, KubernetesSource
from tests.router.conftest import Router, function, kubectl, quota, router_config
from tests.router.test_lambda_read_api import SOURCE, call, client


def error_of(exc: pytest.ExceptionInfo) -> tuple[int, str, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


async def test_a_router_of_fixed_functions_refuses(make_router):
    router = await make_router(function("alpha", SOURCE))
    with pytest.raises(ClientError) as err:
        await call(client(router).put_function_concurrency, FunctionName="alpha", ReservedConcurrentExecutions=3)
    status, code, message = error_of(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "fixed at its start" in message


async def test_manifests_are_not_rewritten(tmp_path):
    source = DirectorySource(tmp_path, "default", interval=2)
    with pytest.raises(Exception, match=f"manifests in {tmp_path}: change Function default/alpha there"):
        await source.patch("Function", "default", "alpha", {"spec": {"reservedConcurrency": 1}})


@pytest.mark.parametrize(
    "others, reserved, provisioned, problem",
    [
        pytest.param(0, 80, 0, None, id="up to the quota less the unreserved minimum"),
        pytest.param(30, 50, 0, None, id="with the others'"),
        pytest.param(30, 51, 0, "below its minimum value of [20]", id="one too many"),
        pytest.param(0, 0, 0, None, id="zero: throttle everything"),
        pytest.param(0, 3, 5, "less than the function's provisioned concurrency (5)", id="below provisioned"),
    ],
)
def test_reservation_problem(others, reserved, provisioned, problem):
    from lambdakube.models import ConcurrencyQuotaSpec

    q = ConcurrencyQuotaSpec(concurrent_executions=100, minimum_unreserved=20)
    got = lambda_shapes.reservation_problem(q, others, reserved, provisioned)
    assert got is None if problem is None else problem in got


@pytest.mark.parametrize(
    "body", [None, {}, {"ReservedConcurrentExecutions": -1}, {"ReservedConcurrentExecutions": "3"}]
)
def test_reserved_value_is_a_non_negative_integer(body):
    with pytest.raises(lambda_shapes.InvalidParameter, match="reservedConcurrentExecutions"):
        lambda_shapes.count_value(body, "ReservedConcurrentExecutions", 0)


@pytest.fixture
async def cluster_router(control_plane, crds, namespace, tmp_path, aiohttp_client):
    docs = [
        function("alpha", SOURCE, namespace=namespace),
        function("beta", SOURCE, namespace=namespace, reservedConcurrency=30),
        function("gamma", SOURCE, namespace=namespace, provisionedConcurrency=0, maxConcurrency=9),
        quota(namespace=namespace, concurrentExecutions=100, minimumUnreserved=20),
    ]
    await kubectl(control_plane, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    return Router(await aiohttp_client(app), app, config), control_plane, namespace


async def reserved_in_api(cp, namespace: str, name: str):
    out = await kubectl(cp, "get", "function", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)["spec"].get("reservedConcurrency")


@pytest.mark.cluster
async def test_put_and_delete_patch_the_function(cluster_router):
    router, cp, ns = cluster_router
    lam = client(router)
    got = await call(lam.put_function_concurrency, FunctionName="alpha", ReservedConcurrentExecutions=40)
    assert got["ReservedConcurrentExecutions"] == 40
    assert await reserved_in_api(cp, ns, "alpha") == 40
    # read back at once: the call answered after the router's watch had it
    assert (await call(lam.get_function_concurrency, FunctionName="alpha"))["ReservedConcurrentExecutions"] == 40
    settings = await call(lam.get_account_settings)
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 100

    # 30 (beta) + 51 > 100 - 20: refused at the call, nothing written
    with pytest.raises(ClientError) as err:
        await call(lam.put_function_concurrency, FunctionName="alpha", ReservedConcurrentExecutions=51)
    status, code, message = error_of(err)
    assert (status, code) == (400, "InvalidParameterValueException")
    assert message == lambda_shapes.UNRESERVED_BELOW_MINIMUM.format(minimum=20)
    assert await reserved_in_api(cp, ns, "alpha") == 40

    await call(lam.put_function_concurrency, FunctionName="gamma", ReservedConcurrentExecutions=9)
    assert await reserved_in_api(cp, ns, "gamma") == 9

    await call(lam.delete_function_concurrency, FunctionName="alpha")
    assert await reserved_in_api(cp, ns, "alpha") is None
    assert "ReservedConcurrentExecutions" not in await call(lam.get_function_concurrency, FunctionName="alpha")

    with pytest.raises(ClientError) as err:
        await call(lam.put_function_concurrency, FunctionName="nope", ReservedConcurrentExecutions=1)
    assert error_of(err)[:2] == (404, "ResourceNotFoundException")


@pytest.mark.cluster
async def test_a_function_deleted_meanwhile_is_not_found(cluster_router):
    router, cp, ns = cluster_router
    await kubectl(cp, "delete", "function", "alpha", "-n", ns)
    await router.eventually(lambda: router.app[keys.ENGINE].get(ns, "alpha") is None)
    with pytest.raises(ClientError) as err:
        await call(client(router).put_function_concurrency, FunctionName="alpha", ReservedConcurrentExecutions=1)
    assert error_of(err)[:2] == (404, "ResourceNotFoundException")
