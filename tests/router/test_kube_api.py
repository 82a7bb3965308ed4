"""``kube_api.KubeApi``, the router's writes, against a real kube-apiserver: each kind of
patch does what its content type says, a failed call is an ``ApiError`` with the status
a caller branches on (404 gone, 409 conflict, 401 refused), and a stalled server ends
in ``TimeoutError`` instead of holding a cold start."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
import yaml
from aiohttp import web

from lambdakube_router import kube_api
from lambdakube_router.informer import ApiSession
from lambdakube_router.kube_api import ApiError, KubeApi
from tests.router.conftest import function, kubectl


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"a": "1", "b": "1"}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "lambdakube/none:test"}],
        },
    }


@pytest.fixture
async def kube(control_plane):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    http = ApiSession(client.configuration)
    client.close()
    yield KubeApi(http, client.configuration)
    await http.close()


@pytest.mark.cluster
async def test_pod_create_patch_delete_and_their_errors(control_plane, namespace, kube):
    created = await kube.create(kube_api.pods(namespace), pod("p"))
    assert created["metadata"]["name"] == "p" and created["metadata"]["uid"]
    with pytest.raises(ApiError) as exists:
        await kube.create(kube_api.pods(namespace), pod("p"))
    assert exists.value.status == 409

    # Strategic merge: the labels named change, the others stay.
    patched = await kube.patch(
        kube_api.pods(namespace, "p"), {"metadata": {"labels": {"b": "2"}}}, content_type=kube_api.STRATEGIC
    )
    assert patched["metadata"]["labels"] == {"a": "1", "b": "2"}
    # A resourceVersion precondition that no longer holds: 409, nothing written.
    stale = created["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as conflict:
        await kube.patch(
            kube_api.pods(namespace, "p"),
            {"metadata": {"resourceVersion": stale, "labels": {"b": "3"}}},
            content_type=kube_api.STRATEGIC,
        )
    assert conflict.value.status == 409
    assert (await kube.get(kube_api.pods(namespace, "p")))["metadata"]["labels"]["b"] == "2"

    await kube.delete(kube_api.pods(namespace, "p"), grace_period_seconds=0)
    with pytest.raises(ApiError) as gone:
        await kube.delete(kube_api.pods(namespace, "p"), grace_period_seconds=0)
    assert gone.value.status == 404
    with pytest.raises(ApiError) as missing:
        await kube.get(kube_api.pods(namespace, "p"))
    assert missing.value.status == 404 and missing.value.reason == "Not Found"


@pytest.mark.cluster
async def test_a_status_merge_patch_leaves_the_spec_and_other_status_keys(control_plane, namespace, crds, kube):
    doc = function("hello", "def handler(event, context):\n    return 1\n", namespace=namespace)
    await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    path = kube_api.functions(namespace, "hello", "status")
    await kube.patch(path, {"status": {"ready": 1, "busy": 0}})
    obj = await kube.patch(path, {"status": {"busy": 2}})
    assert (obj["status"]["ready"], obj["status"]["busy"]) == (1, 2)
    out = await kubectl(control_plane, "get", "function", "hello", "-n", namespace, "-o", "json")
    assert json.loads(out.stdout)["spec"] == obj["spec"]


@pytest.mark.cluster
async def test_unknown_credentials_are_refused_with_401(control_plane, namespace, kube):
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host, cfg.ssl_ca_cert = kube.cfg.host, kube.cfg.ssl_ca_cert
    cfg.api_key = {"authorization": "Bearer not-a-valid-token"}
    http = ApiSession(cfg)
    try:
        with pytest.raises(ApiError) as refused:
            await KubeApi(http, cfg).create(kube_api.pods(namespace), pod("q"))
        assert refused.value.status == 401
    finally:
        await http.close()


async def test_a_stalled_server_ends_in_a_timeout(aiohttp_server):
    """The request timeout covers the whole call: a server that accepts and never answers
    does not hold the caller (the pool's start, the publisher's tick) forever."""
    never = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    server = await aiohttp_server(app)
    cfg = SimpleNamespace(
        host=str(server.make_url("")).rstrip("/"), refresh_api_key_hook=None, get_api_key_with_prefix=lambda _: None
    )
    http = ApiSession(cfg)
    try:
        with pytest.raises(TimeoutError):
            await KubeApi(http, cfg, timeout=0.2).delete(kube_api.pods("ns", "p"))
    finally:
        never.set()
        await http.close()
