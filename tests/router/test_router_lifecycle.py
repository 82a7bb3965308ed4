"""Environment lifecycle: reaping, provisioned concurrency, spill-over, failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from lambdakube.resources import env_token
from tests.router.conftest import function

COUNTER = """
import os, time
count = 0

def handler(event, context):
    global count
    count += 1
    if event.get("mark"):  # tell the test the handler is running
        open(event["mark"], "w").close()
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("hold"):  # wait (bounded) until the test releases the barrier file
        deadline = time.monotonic() + 10
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    if event.get("pid"):
        return {"pid": os.getpid()}
    return {"count": count, "env": os.environ["LAMBDAKUBE_ENV_ID"]}
"""

SLOW = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"""

BROKEN_INIT = """
import nonexistent_module_xyz

def handler(event, context):
    return {}
"""


async def test_scale_to_zero_after_idle_then_cold_start(make_router):
    router = await make_router(function("fn", COUNTER, idleTimeoutSeconds=1))
    _, h1, _ = await router.invoke_json("fn", {})
    assert h1["X-Cold-Start"] == "true"
    # the reaper runs every 50 ms with the real clock; the env goes once idle > 1 s
    await router.eventually(lambda: router.pool("fn").envs == {}, timeout=10)
    _, h2, body = await router.invoke_json("fn", {})
    assert h2["X-Cold-Start"] == "true" and body["count"] == 1
    assert h2["X-Environment-Id"] != h1["X-Environment-Id"]
    assert router.pool("fn").stats.reaped == 1


async def test_reaper_with_injected_clock(make_router):
    """Same rule driven by the engine's clock: nothing is reaped before idleTimeoutSeconds."""
    from lambdakube_router import keys

    now = [1000.0]
    router = await make_router(
        function("fn", COUNTER, idleTimeoutSeconds=300), clock=lambda: now[0], reap_interval_seconds=3600
    )
    engine = router.app[keys.ENGINE]
    await router.invoke_json("fn", {})
    now[0] += 299
    assert engine.reap(now[0]) == 0
    now[0] += 2
    assert engine.reap(now[0]) == 1
    await router.eventually(lambda: router.pool("fn").envs == {})


async def test_provisioned_warm_never_reaped_and_spillover_counted(make_router, tmp_path):
    router = await make_router(function("prov", COUNTER, provisionedConcurrency=2, idleTimeoutSeconds=0))
    pool = router.pool("prov")
    await router.eventually(lambda: pool.counts()["idle"] == 2)
    status, h, _ = await router.invoke_json("prov", {})
    assert status == 200 and h["X-Cold-Start"] == "false"
    # three at once: two provisioned envs, one on-demand spill-over (a cold start)
    barrier = tmp_path / "go"
    calls = [asyncio.ensure_future(router.invoke_json("prov", {"hold": str(barrier)})) for _ in range(3)]
    await router.eventually(lambda: pool.counts()["busy"] == 3)
    barrier.touch()
    results = await asyncio.gather(*calls)
    assert [r[0] for r in results] == [200, 200, 200]
    assert sorted(r[1]["X-Cold-Start"] for r in results) == ["false", "false", "true"]
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/prov")
    assert state["pool"]["spilloverInvocations"] == 1
    async with router.client.session.get(router.url("/metrics")) as resp:
        text = await resp.text()
    assert ('lambdakube_provisioned_spillover_invocations_total{function="prov",namespace="default"} 1.0') in text
    # idleTimeoutSeconds=0: the on-demand env is reaped at once, the provisioned ones never
    await router.eventually(lambda: len(pool.envs) == 2)
    await asyncio.sleep(0.3)  # several reaper passes
    assert pool.counts()["idle"] == 2
    assert all(e.provisioned for e in pool.envs.values())


async def test_provisioned_env_replaced_after_it_dies(make_router):
    """A provisioned environment killed while idle is retired and replaced; the request
    right after the kill is served (by the replacement, or by an on-demand spill-over
    while it starts), never answered 502."""
    router = await make_router(function("prov", COUNTER, provisionedConcurrency=1))
    pool = router.pool("prov")
    await router.eventually(lambda: pool.counts()["idle"] == 1)
    _, h0, body = await router.invoke_json("prov", {"pid": True})
    os.kill(body["pid"], signal.SIGKILL)
    await router.eventually(lambda: pool.stats.lost == 1)  # seen by its exit, no request needed
    status, h, _ = await router.invoke_json("prov", {})
    assert status == 200 and h["X-Environment-Id"] != h0["X-Environment-Id"]
    await router.eventually(lambda: pool.describe()["provisioned"]["live"] == 1 and pool.counts()["starting"] == 0)
    await router.eventually(lambda: pool.counts()["busy"] == 0)
    status, h, _ = await router.invoke_json("prov", {})
    assert status == 200 and h["X-Cold-Start"] == "false" and h["X-Environment-Source"] == "provisioned"


async def test_timeout_retires_env_and_next_request_cold_starts(make_router):
    router = await make_router(function("slow", SLOW, timeoutSeconds=1))
    status, h1, body = await router.invoke_json("slow", {"sleep": 5})
    assert status == 200 and h1["X-Amz-Function-Error"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    await router.eventually(lambda: router.pool("slow").envs == {})
    status, h2, body = await router.invoke_json("slow", {})
    assert status == 200 and body == {"ok": True}
    assert h2["X-Cold-Start"] == "true" and h2["X-Environment-Id"] != h1["X-Environment-Id"]


async def test_env_killed_mid_request_gets_502_and_next_works(make_router, tmp_path):
    router = await make_router(function("fn", COUNTER))
    _, _, body = await router.invoke_json("fn", {"pid": True})
    pid = body["pid"]
    mark = tmp_path / "running"
    pending = asyncio.ensure_future(router.invoke_json("fn", {"sleep": 5, "mark": str(mark)}))
    await router.eventually(mark.exists)  # the request reached the handler
    os.kill(pid, signal.SIGKILL)
    status, h, body = await asyncio.wait_for(pending, 10)
    assert status == 502
    assert body["errorType"] == "EnvironmentFailureException"
    assert "failed during the invocation" in body["errorMessage"]
    status, h, body = await router.invoke_json("fn", {})
    assert status == 200 and h["X-Cold-Start"] == "true" and body["count"] == 1


async def test_init_error_is_a_clear_502(make_router):
    router = await make_router(function("broken", BROKEN_INIT))
    status, h, body = await router.invoke_json("broken", {})
    assert status == 502
    assert h["x-amzn-ErrorType"] == "InitError"
    assert "nonexistent_module_xyz" in body["errorMessage"]
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/broken")
    assert "nonexistent_module_xyz" in state["pool"]["lastStartError"]
    assert state["pool"]["environments"] == []


async def test_cancelled_invocation_returns_slot_and_env(make_router, tmp_path):
    """A caller that goes away mid-invocation (cancellation) frees its concurrency slot;
    the environment, whose state is then unknown, is retired, and the next call works."""
    from lambdakube_router import keys

    router = await make_router(function("fn", COUNTER, reservedConcurrency=1))
    engine = router.app[keys.ENGINE]
    mark = tmp_path / "running"
    payload = json.dumps({"sleep": 5, "mark": str(mark)}).encode()
    task = asyncio.ensure_future(engine.invoke("default", "fn", payload))
    await router.eventually(mark.exists)  # the request reached the handler
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.namespaces["default"].functions["fn"].in_flight == 0
    await router.eventually(lambda: router.pool("fn").envs == {})
    status, h, _ = await router.invoke_json("fn", {})
    assert status == 200 and h["X-Cold-Start"] == "true"


async def test_cancelled_while_waiting_for_cold_start(make_router):
    from lambdakube_router import keys

    router = await make_router(function("fn", COUNTER))
    engine = router.app[keys.ENGINE]
    task = asyncio.ensure_future(engine.invoke("default", "fn", b"{}"))
    await router.eventually(lambda: router.pool("fn").waiting == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.pool("fn").waiting == 0
    assert engine.namespaces["default"].in_flight == 0
    await router.eventually(lambda: router.pool("fn").counts()["idle"] == 1)  # start completes
    status, h, _ = await router.invoke_json("fn", {})
    assert status == 200 and h["X-Cold-Start"] == "true"  # first use of that env


INLINE_DIR = """
import os

def handler(event, context):
    return {"dir": os.path.dirname(os.path.abspath(__file__)), "pid": os.getpid()}
"""


async def test_local_backend_removes_environment_temp_dirs_even_after_sigkill(tmp_path):
    """Each local environment gets its own TMPDIR in the backend's private directory
    (the runtime writes inline code there): removed when the backend stops the
    environment, whichever signal that took (here: SIGKILLed behind its back, and a
    stopped process that ignores SIGTERM until the grace runs out), and the whole
    directory on close, including environments that died unnoticed."""
    from lambdakube.models import FunctionSpec
    from lambdakube_router.backends.base import FunctionRef
    from lambdakube_router.backends.local import LocalBackend

    backend = LocalBackend(stop_grace=0.3, log_dir=tmp_path / "logs")
    fn = FunctionRef("default", "tmpdirs")
    spec = FunctionSpec.model_validate(function("tmpdirs", INLINE_DIR)["spec"])
    try:
        handles = [await backend.start(fn, spec, f"tmpdirs-{i}", False) for i in range(3)]
        root = backend._root
        assert root is not None and root.name.startswith("lambdakube-envs-")
        session = backend._http()
        dirs, pids = [], []
        for h in handles:
            async with session.post(f"http://{h.address}/invoke", json={}, headers={env_token.HEADER: h.token}) as resp:
                body = await resp.json()
            assert resp.status == 200, body
            code_dir = body["dir"]
            # the runtime's inline-code dir is inside this environment's own TMPDIR
            assert os.path.dirname(code_dir) == str(root / f"{h.env_id}.tmp"), code_dir
            assert os.path.isdir(code_dir)
            dirs.append(code_dir)
            pids.append(body["pid"])

        os.kill(pids[0], signal.SIGKILL)  # died without cleaning up; then stopped
        await asyncio.sleep(0.2)
        assert os.path.isdir(dirs[0])  # the runtime could not remove it
        await backend.stop(handles[0])
        assert not os.path.exists(os.path.dirname(dirs[0]))

        os.kill(pids[1], signal.SIGSTOP)  # SIGTERM cannot act: stop has to SIGKILL it
        await backend.stop(handles[1])
        assert not os.path.exists(os.path.dirname(dirs[1]))

        os.kill(pids[2], signal.SIGKILL)  # never stopped: close cleans up
    finally:
        await backend.close()
    assert not root.exists()
    assert not any(os.path.exists(d) for d in dirs)
