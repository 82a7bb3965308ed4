"""The router's pod cache against a real kube-apiserver: it lists, then follows the
watch (a new pod, a label change, a deletion), wakes a waiter on the change itself, keeps
to its namespaces, ignores pods that are not environments, and reports a refused list.
No kubelet: pods are only objects here."""

from __future__ import annotations

import asyncio

import pytest

from lambdakube.resources import labels
from lambdakube_router.backends.pod_cache import PodCache
from lambdakube_router.informer import ApiSession

pytestmark = pytest.mark.cluster


def pod(name: str, role: str | None = labels.ROLE_GENERIC) -> dict:
    meta: dict = {"name": name, "labels": {labels.ROLE: role} if role else {}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
    }


@pytest.fixture
async def api(control_plane):
    from kubernetes import client, config  # noqa: PLC0415

    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    yield api_client, client.CoreV1Api(api_client)
    api_client.close()


async def test_the_cache_follows_creates_label_changes_and_deletes(api, namespace, control_plane):
    api_client, core = api
    other = f"{namespace}-other"
    control_plane.kubectl("create", "namespace", other)
    watcher = ApiSession(api_client.configuration)
    cache = PodCache(watcher, api_client.configuration, [namespace])
    try:
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod("before"))
        await cache.synced()
        assert [p["metadata"]["name"] for p in cache.select(namespace)] == ["before"]

        seen = cache.version
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod("after"))
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod("not-ours", role=None))
        await asyncio.to_thread(core.create_namespaced_pod, other, pod("elsewhere"))
        await cache.next_change(seen, 10)
        await wait(cache, lambda: cache.get(namespace, "after") is not None)
        assert cache.get(namespace, "not-ours") is None  # no role label: not an environment
        assert cache.get(other, "elsewhere") is None  # not a served namespace

        await asyncio.to_thread(
            core.patch_namespaced_pod, "after", namespace, {"metadata": {"labels": {labels.DRAINING: "true"}}}
        )
        await wait(
            cache,
            lambda: [p["metadata"]["name"] for p in cache.select(namespace, **{labels.DRAINING: "true"})] == ["after"],
        )
        assert [p["metadata"]["name"] for p in cache.select(namespace, **{labels.DRAINING: None})] == ["before"]

        await asyncio.to_thread(core.delete_namespaced_pod, "before", namespace, grace_period_seconds=0)
        await wait(cache, lambda: cache.get(namespace, "before") is None)
        assert cache.error is None
    finally:
        await cache.close()
        await watcher.close()
        control_plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


async def test_a_refused_list_is_reported(api, namespace):
    api_client, _ = api
    cfg = api_client.configuration
    cfg.refresh_api_key_hook = None
    cfg.api_key, cfg.api_key_prefix = {"BearerToken": "not-a-valid-token"}, {"BearerToken": "Bearer"}
    watcher = ApiSession(api_client.configuration)
    cache = PodCache(watcher, api_client.configuration, [namespace])
    try:
        cache.start()
        await wait(cache, lambda: cache.error is not None, poll=True)
        assert "HTTP 401" in cache.error
    finally:
        await cache.close()
        await watcher.close()


async def wait(cache: PodCache, predicate, timeout: float = 15, poll: bool = False) -> None:
    """Until ``predicate()``; woken by the cache's changes (``poll``: on a timer, for a
    cache that has no changes to report)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "the cache did not get there"
        if poll:
            await asyncio.sleep(0.05)
        else:
            await cache.next_change(cache.version, left)
