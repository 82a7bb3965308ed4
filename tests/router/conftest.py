"""Router integration fixtures: a real router app (aiohttp test server on 127.0.0.1)
with the local backend, i.e. real ``lambdakube_runtime`` processes on loopback.

Functions are declared as manifests (the same YAML shape as ``examples/``), so every
test also goes through registry validation. Timeouts and retry delays are shrunk so the
whole suite stays fast; nothing asserts on timings.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
from dataclasses import dataclass

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from yarl import URL

from lambdakube_router import keys
from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.asyncq.policy import RetryPolicy
from lambdakube_router.fast_invoke import listen
from lambdakube_router.snapshot import parse_documents
from tests.operator.conftest import operator_crds, start_operator  # noqa: F401 - fixtures for the router's operator tests

INVOKE = "/2015-03-31/functions/{}/invocations"


def function(name: str, source: str, namespace: str | None = None, **spec) -> dict:
    """A Function manifest with inline code (handler ``index.handler`` by default)."""
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": meta,
        "spec": {"handler": "index.handler", "code": {"inline": {"source": textwrap.dedent(source)}}, **spec},
    }


def quota(namespace: str | None = None, **spec) -> dict:
    meta = {"name": "default"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "ConcurrencyQuota", "metadata": meta, "spec": spec}


def snapshot(*docs: dict):
    # Round-trip through YAML: exactly what a manifest file would produce.
    snap, errors = parse_documents(yaml.safe_load_all(yaml.safe_dump_all(docs)), "test", "default")
    assert not errors, errors
    return snap


@dataclass
class Router:
    client: object  # aiohttp TestClient
    app: object
    config: RouterConfig

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def invoke(
        self,
        name: str,
        payload=None,
        *,
        data: bytes | None = None,
        headers: dict | None = None,
        session: aiohttp.ClientSession | None = None,
        params: dict | None = None,
    ):
        """Returns (status, headers, body bytes)."""
        import json

        body = data if data is not None else json.dumps({} if payload is None else payload).encode()
        target = session or self.client.session
        async with target.post(self.url(INVOKE.format(name)), data=body, headers=headers or {}, params=params) as resp:
            return resp.status, resp.headers, await resp.read()

    async def invoke_json(self, name: str, payload=None, **kw):
        import json

        status, headers, body = await self.invoke(name, payload, **kw)
        return status, headers, json.loads(body) if body else None

    async def get_json(self, path: str):
        async with self.client.session.get(self.url(path)) as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())
            return await resp.json()

    def pool(self, name: str, namespace: str = "default"):
        from lambdakube_router import keys

        return self.app[keys.ENGINE].get(namespace, name).pool

    async def eventually(self, predicate, timeout: float = 15.0, interval: float = 0.02):
        return await eventually(predicate, timeout, interval)


async def eventually(predicate, timeout: float = 15.0, interval: float = 0.02, what: str = "condition"):
    """Poll an (async or sync) predicate until truthy; bounded in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


def router_config(tmp_path, *docs, **overrides) -> RouterConfig:
    kw = dict(
        snapshot=snapshot(*docs),
        backend="local",
        state_dir=tmp_path / "state",
        invoke_grace_seconds=1.0,
        init_timeout_seconds=20.0,
        reap_interval_seconds=0.05,
        async_retry=RetryPolicy(function_error_delays=(0.05, 0.1), backoff_base=0.02, backoff_max=0.2),
        async_poll_interval=0.1,
        sqlite_synchronous="NORMAL",
    )
    kw.update(overrides)
    return RouterConfig(**kw)


class RouterServer(TestServer):
    """aiohttp's test server, listening as the router's main does (``fast_invoke.listen``:
    the front, then aiohttp for what the front hands over), so the tests' requests take
    production's way, and without aiohttp's test-only handler cancellation."""

    listening = None

    async def start_server(self, loop=None, **kwargs) -> None:
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(**kwargs)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = sock.getsockname()[:2]
        self.listening = await listen(self.app, self.runner, sock)
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        if self.listening is not None:
            listening, self.listening = self.listening, None
            await listening.close()
        await super().close()


@pytest.fixture
def make_router(aiohttp_client, tmp_path):
    """``await make_router(*manifests, **config_overrides) -> Router``."""

    async def make(*docs, **overrides) -> Router:
        config = router_config(tmp_path, *docs, **overrides)
        app = await init_app(config)
        client = await aiohttp_client(RouterServer(app))
        # As the router's main gives it (there, before the start): local environments
        # call this router with a stock SDK (environments started at startup have none).
        backend = app[keys.ENGINE].backend
        if getattr(backend, "function_endpoint", "") is None:
            backend.function_endpoint = str(client.make_url("")).rstrip("/")
        return Router(client, app, config)

    return make


@pytest.fixture
async def wide_session():
    """A client session without the default 100-connection limit (many concurrent clients)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def kubectl(cp, *args, input=None, check=True):
    """kubectl from async tests, off the event loop (the router under test runs on it)."""
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


@pytest.fixture
async def crds(control_plane):
    await asyncio.to_thread(control_plane.install_crds)
