"""Environments that die by themselves, and requests that could not be delivered.

Real faults, no mocks: runtime processes are SIGKILLed behind the router's back, and an
environment "address" where nothing listens is a port the kernel refuses. What must
hold: an environment that dies while idle is retired without waiting for a request
(``EnvLost``), no request is answered 502 because it was handed a dead environment,
and a request that could not be connected to (nothing was sent) goes to another
environment at most ``MAX_DELIVERY_ATTEMPTS`` times, counted in
``lambdakube_invoke_redeliveries_total``.
"""

from __future__ import annotations

import os
import re
import signal
import socket

from lambdakube_router import keys
from lambdakube_router.backends.base import EnvironmentHandle
from lambdakube_router.backends.local import LocalBackend
from lambdakube_router.invocations import MAX_DELIVERY_ATTEMPTS
from tests.router.conftest import function
from tests.router.test_router_lifecycle import COUNTER


def metric(router, name: str, function_name: str) -> float:
    text = router.app[keys.METRICS].render().decode()
    pattern = rf'^{name}\{{function="{function_name}",namespace="default"\}} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found[1]) if found else 0.0


def closed_port() -> str:
    """An address on loopback that refuses connections (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class RefusingBackend(LocalBackend):
    """The local backend, except that its first ``refusing`` starts hand the pool an
    environment at an address that refuses connections (as a runtime that died while
    idle does, before the router noticed)."""

    def __init__(self, refusing: int, **kw) -> None:
        super().__init__(**kw)
        self.refusing = refusing
        self.refused_ids: list[str] = []

    async def start(self, fn, spec, env_id, provisioned):
        if self.refusing > 0:
            self.refusing -= 1
            self.refused_ids.append(env_id)
            return EnvironmentHandle(address=closed_port(), env_id=env_id, init_duration=0.0)
        return await super().start(fn, spec, env_id, provisioned)


async def test_an_environment_that_dies_while_idle_is_retired_without_a_request(make_router):
    router = await make_router(function("fn", COUNTER))
    status, h, body = await router.invoke_json("fn", {"pid": True})
    assert status == 200
    pool = router.pool("fn")
    assert pool.counts()["idle"] == 1
    os.kill(body["pid"], signal.SIGKILL)
    await router.eventually(lambda: pool.envs == {})  # noticed by its exit alone
    assert pool.stats.lost == 1
    status, h2, body = await router.invoke_json("fn", {})
    assert status == 200 and body["count"] == 1
    assert h2["X-Cold-Start"] == "true" and h2["X-Environment-Id"] != h["X-Environment-Id"]
    assert metric(router, "lambdakube_invoke_redeliveries_total", "fn") == 0


async def test_a_refused_connection_is_retried_on_another_environment_and_counted(make_router):
    backend = RefusingBackend(1, stop_grace=0.5)
    router = await make_router(function("fn", COUNTER), backend=backend)
    status, h, body = await router.invoke_json("fn", {})
    assert status == 200 and body["count"] == 1, body
    assert h["X-Environment-Id"] not in backend.refused_ids
    assert metric(router, "lambdakube_invoke_redeliveries_total", "fn") == 1
    pool = router.pool("fn")
    assert [e.env_id for e in pool.envs.values()] == [h["X-Environment-Id"]]  # the refusing one retired
    assert pool.stats.retired_unhealthy == 1


async def test_a_request_nothing_can_be_connected_to_fails_after_the_last_attempt(make_router):
    backend = RefusingBackend(MAX_DELIVERY_ATTEMPTS + 1, stop_grace=0.5)
    router = await make_router(function("fn", COUNTER), backend=backend)
    status, h, body = await router.invoke_json("fn", {})
    assert status == 502 and body["errorType"] == "EnvironmentFailureException", body
    assert "not delivered" in body["errorMessage"]
    assert len(backend.refused_ids) == MAX_DELIVERY_ATTEMPTS
    assert metric(router, "lambdakube_invoke_redeliveries_total", "fn") == MAX_DELIVERY_ATTEMPTS - 1
    status, _, body = await router.invoke_json("fn", {})  # the next request: a working environment
    assert status == 200 and body["count"] == 1
