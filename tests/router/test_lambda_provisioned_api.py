"""Lambda's provisioned-concurrency calls with the real boto3 and aws CLI: on a version or
an alias, never ``$LATEST``; the counts are the environments the router holds (real
runtime processes); on a cluster a Put patches the alias or version through a real
kube-apiserver, the environments start, and a configuration that does not fit is refused
at the call with Lambda's message."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from botocore.exceptions import ClientError

from lambdakube.models import PROVISIONED_ON_LATEST, ConcurrencyQuotaSpec, FunctionSpec
from lambdakube_router import keys, lambda_shapes
from lambdakube_router.app import init_app
from lambdakube_router.sources import KubernetesSource
from tests.router.conftest import Router, function, kubectl, quota, router_config
from tests.router.test_aws_clients import aws_cli
from tests.router.test_lambda_read_api import call, client
from tests.router.test_lambda_write_api import error_of
from tests.router.test_provisioned_versions import provisioned_alias
from tests.router.test_router_versions import alias, version, version_source

# -- the rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, others, total, problem",
    [
        pytest.param({}, 0, 10, None, id="fits-the-unreserved-pool"),
        pytest.param({}, 70, 11, lambda_shapes.PROVISIONED_BELOW_MINIMUM.format(minimum=20), id="leaves-too-little"),
        pytest.param({}, 70, 10, None, id="leaves-exactly-the-minimum"),
        pytest.param({"reservedConcurrency": 5}, 0, 5, None, id="within-the-reservation"),
        pytest.param({"reservedConcurrency": 5}, 0, 6, lambda_shapes.PROVISIONED_OVER_RESERVED, id="over-reservation"),
        pytest.param({"maxConcurrency": 3}, 0, 4, "maxConcurrency (3)", id="over-max-concurrency"),
    ],
)
def test_provisioned_problem(spec, others, total, problem):
    fn = FunctionSpec.model_validate({"handler": "index.handler", "image": "x", **spec})
    got = lambda_shapes.provisioned_problem(
        ConcurrencyQuotaSpec(concurrentExecutions=100, minimumUnreserved=20), fn, others, total
    )
    assert got == problem if problem is None or "maxConcurrency" not in problem else problem in got


@pytest.mark.parametrize(
    "body", [None, {}, {"ProvisionedConcurrentExecutions": 0}, {"ProvisionedConcurrentExecutions": "2"}]
)
def test_provisioned_value_is_a_positive_integer(body):
    with pytest.raises(lambda_shapes.InvalidParameter, match="provisionedConcurrentExecutions"):
        lambda_shapes.count_value(body, "ProvisionedConcurrentExecutions", 1)


@pytest.mark.parametrize(
    "requested, allocated, available, status",
    [(3, 0, 0, "IN_PROGRESS"), (3, 2, 2, "IN_PROGRESS"), (3, 3, 1, "READY"), (3, 4, 4, "READY")],
)
def test_provisioned_config_status(requested, allocated, available, status):
    got = lambda_shapes.provisioned_config(requested, allocated, available, "t")
    assert got["Status"] == status
    assert got["AllocatedProvisionedConcurrentExecutions"] == min(allocated, requested)


# -- manifests (local backend) -----------------------------------------------------------


@pytest.fixture
async def router(make_router):
    r = await make_router(
        function("hello", "def handler(e, c):\n    return 'latest'\n"),
        version("hello", 1, version_source(1)),
        version("hello", 2, version_source(2)),
        provisioned_alias("live", "1", 3, function_name="hello"),
        alias("hello", "canary", "1", {"2": 0.5}),
        alias("hello", "head", "$LATEST"),
    )
    pools = r.app[keys.ENGINE].get("default", "hello").version_pools
    await r.eventually(lambda: 1 in pools and pools[1].provisioned_ready() == (3, 3), timeout=30)
    return r


async def test_get_and_list_read_what_the_router_holds(router):
    lam = client(router)
    got = await call(lam.get_provisioned_concurrency_config, FunctionName="hello", Qualifier="live")
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {
        "RequestedProvisionedConcurrentExecutions": 3,
        "AvailableProvisionedConcurrentExecutions": 3,
        "AllocatedProvisionedConcurrentExecutions": 3,
        "Status": "READY",
        "LastModified": got["LastModified"],
    }
    assert got["LastModified"].endswith("+0000")
    listed = await call(lam.list_provisioned_concurrency_configs, FunctionName="hello")
    assert [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]] == [
        "lambdakube:default:function:hello:live"
    ]


@pytest.mark.parametrize(
    "qualifier, status, code, message",
    [
        pytest.param("$LATEST", 400, "InvalidParameterValueException", PROVISIONED_ON_LATEST, id="latest"),
        pytest.param("head", 400, "InvalidParameterValueException", PROVISIONED_ON_LATEST, id="alias-of-latest"),
        pytest.param("9", 404, "ResourceNotFoundException", "Function not found: default/hello:9", id="unpublished"),
        pytest.param("nope", 404, "ResourceNotFoundException", "Function not found: default/hello:nope", id="no-alias"),
        pytest.param(
            "canary", 404, "ProvisionedConcurrencyConfigNotFoundException", lambda_shapes.NO_PROVISIONED_CONFIG,
            id="not-configured",
        ),
    ],
)  # fmt: skip
async def test_what_has_no_configuration(router, qualifier, status, code, message):
    with pytest.raises(ClientError) as err:
        await call(client(router).get_provisioned_concurrency_config, FunctionName="hello", Qualifier=qualifier)
    assert error_of(err) == (status, code, message)


async def test_a_router_of_fixed_functions_refuses_writes(router):
    with pytest.raises(ClientError) as err:
        await call(
            client(router).put_provisioned_concurrency_config,
            FunctionName="hello",
            Qualifier="canary",
            ProvisionedConcurrentExecutions=1,
        )
    status, code, message = error_of(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "fixed at its start" in message


# -- on a cluster: the writes ------------------------------------------------------------


@pytest.fixture
async def cluster_router(control_plane, crds, namespace, tmp_path, aiohttp_client):
    """A real kube-apiserver holds the objects; the router watches them and runs the
    environments itself (local backend): the writes go through the API server, the
    counts are of real runtime processes."""
    docs = [
        function("worker", "def handler(e, c):\n    return 'latest'\n", namespace=namespace),
        function("capped", "def handler(e, c):\n    return 1\n", namespace=namespace, reservedConcurrency=2),
        quota(namespace=namespace, concurrentExecutions=100, minimumUnreserved=20),
    ]
    for fn in ("worker", "capped"):
        for n in (1, 2):
            docs.append(
                version(fn, n, version_source(n)) | {"metadata": {"name": f"{fn}-v{n}", "namespace": namespace}}
            )
        name = "live" if fn == "worker" else "stable"  # an alias is an object: one name per namespace
        docs.append(alias(fn, name, "1") | {"metadata": {"name": name, "namespace": namespace}})
    await kubectl(control_plane, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    r = Router(await aiohttp_client(app), app, config)
    await r.eventually(lambda: len(app[keys.ENGINE].get(namespace, "capped").aliases) == 1, timeout=30)
    return r, control_plane, namespace


async def spec_of(cp, namespace: str, kind: str, name: str) -> dict:
    out = await kubectl(cp, "get", kind, name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)["spec"]


@pytest.mark.cluster
async def test_put_get_delete_on_a_cluster(cluster_router):
    router, cp, ns = cluster_router
    lam = client(router)
    put = await call(
        lam.put_provisioned_concurrency_config,
        FunctionName="worker",
        Qualifier="live",
        ProvisionedConcurrentExecutions=2,
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202 and put["RequestedProvisionedConcurrentExecutions"] == 2
    assert (await spec_of(cp, ns, "functionalias", "live"))["provisionedConcurrency"] == 2

    async def status(qualifier):
        got = await call(lam.get_provisioned_concurrency_config, FunctionName="worker", Qualifier=qualifier)
        return got["Status"], got["AllocatedProvisionedConcurrentExecutions"]

    async def ready(qualifier, n):
        deadline = asyncio.get_running_loop().time() + 30
        while (got := await status(qualifier)) != ("READY", n):
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.1)

    await ready("live", 2)
    status_code, headers, body = await router.invoke("worker:live")
    assert (status_code, headers["X-Cold-Start"], headers["X-Amz-Executed-Version"]) == (200, "false", "1")

    # on a version too; the two add up in the version's environments
    await call(
        lam.put_provisioned_concurrency_config, FunctionName="worker", Qualifier="2", ProvisionedConcurrentExecutions=1
    )
    assert (await spec_of(cp, ns, "functionversion", "worker-v2"))["provisionedConcurrency"] == 1
    await ready("2", 1)

    # the aws CLI reads the list
    out = await asyncio.to_thread(
        aws_cli,
        "lambda", "list-provisioned-concurrency-configs", "--function-name", "worker",
        "--endpoint-url", router.url("/"), "--output", "json",
        cwd=router.config.state_dir.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    listed = {c["FunctionArn"]: c["Status"] for c in json.loads(out.stdout)["ProvisionedConcurrencyConfigs"]}
    assert listed == {f"lambdakube:{ns}:function:worker:2": "READY", f"lambdakube:{ns}:function:worker:live": "READY"}

    await call(lam.delete_provisioned_concurrency_config, FunctionName="worker", Qualifier="live")
    assert (await spec_of(cp, ns, "functionalias", "live"))["provisionedConcurrency"] == 0
    pool = router.app[keys.ENGINE].get(ns, "worker").version_pools[1]
    await router.eventually(lambda: pool.provisioned_ready() == (0, 0), timeout=30)
    with pytest.raises(ClientError) as err:
        await call(lam.get_provisioned_concurrency_config, FunctionName="worker", Qualifier="live")
    assert error_of(err)[:2] == (404, "ProvisionedConcurrencyConfigNotFoundException")


@pytest.mark.cluster
async def test_what_does_not_fit_is_refused_at_the_call(cluster_router):
    router, cp, ns = cluster_router
    lam = client(router)
    cases = [
        ("capped", "stable", 3, lambda_shapes.PROVISIONED_OVER_RESERVED),
        ("worker", "live", 81, lambda_shapes.PROVISIONED_BELOW_MINIMUM.format(minimum=20)),  # 100 - 2 reserved - 20
        ("worker", "$LATEST", 1, PROVISIONED_ON_LATEST),
    ]
    for fn, qualifier, n, message in cases:
        with pytest.raises(ClientError) as err:
            await call(
                lam.put_provisioned_concurrency_config,
                FunctionName=fn,
                Qualifier=qualifier,
                ProvisionedConcurrentExecutions=n,
            )
        assert error_of(err) == (400, "InvalidParameterValueException", message)
    assert (await spec_of(cp, ns, "functionalias", "live")).get("provisionedConcurrency", 0) == 0
    # within the reservation: taken; then a reservation below it is refused
    await call(
        lam.put_provisioned_concurrency_config,
        FunctionName="capped",
        Qualifier="stable",
        ProvisionedConcurrentExecutions=2,
    )
    with pytest.raises(ClientError) as err:
        await call(lam.put_function_concurrency, FunctionName="capped", ReservedConcurrentExecutions=1)
    assert "less than the function's provisioned concurrency (2)" in error_of(err)[2]
