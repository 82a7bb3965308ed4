"""Pre-warmed generic environments on the local backend: real runtime processes on
127.0.0.1, specialised with ``POST /init`` by cold starts. Nothing asserts on timings;
"refilled" and "gone" are awaited with bounded polls."""

from __future__ import annotations

import asyncio
import os

from tests.router.conftest import function

COUNTER = """
import os, time
count = 0

def handler(event, context):
    global count
    count += 1
    if event.get("hold"):  # wait (bounded) until the test releases the barrier file
        deadline = time.monotonic() + 10
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"count": count, "env": os.environ["LAMBDAKUBE_ENV_ID"], "pid": os.getpid(),
            "stream": context.log_stream_name, "greeting": os.environ.get("GREETING"),
            "dir": os.path.dirname(__file__)}
"""

# Function A leaves traces everywhere a shared process would keep them.
LEAKY_A = """
import builtins, os, sys
SECRET = "from-a"
builtins.A_WAS_HERE = True
os.environ["A_SET_THIS"] = "1"
sys.modules["a_private_module"] = sys.modules[__name__]

def handler(event, context):
    return {"secret": SECRET, "pid": os.getpid()}
"""

SNOOPY_B = """
import builtins, os, sys

def handler(event, context):
    return {
        "secret": globals().get("SECRET"),
        "builtins": hasattr(builtins, "A_WAS_HERE"),
        "environ": [k for k in ("A_SET_THIS", "ONLY_A") if k in os.environ],
        "modules": "a_private_module" in sys.modules,
        "pid": os.getpid(),
    }
"""

BROKEN_INIT = """
import nonexistent_module_xyz

def handler(event, context):
    return {}
"""


def generic_pool(router):
    from lambdakube_router import keys

    return router.app[keys.ENGINE].backend.generic_pool


async def filled(router, n: int | None = None):
    gp = generic_pool(router)
    want = gp.size if n is None else n
    await router.eventually(lambda: gp.available >= want)
    return list(gp._spares)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def metrics_text(router) -> str:
    async with router.client.session.get(router.url("/metrics")) as resp:
        return await resp.text()


async def test_cold_start_specialises_a_generic_env_then_warm_and_pool_refills(make_router):
    router = await make_router(function("fn", COUNTER, env={"GREETING": "hello"}), generic_pool_size=1)
    [spare] = await filled(router)

    status, h1, b1 = await router.invoke_json("fn", {})
    assert status == 200
    assert h1["X-Environment-Source"] == "generic"
    assert h1["X-Cold-Start"] == "true"
    assert float(h1["X-Init-Duration-Ms"]) >= 0
    for key in ("X-Queue-Wait-Ms", "X-Run-Duration-Ms"):
        assert float(h1[key]) >= 0
    # one id everywhere: the router's header, the runtime's env var and log stream
    assert h1["X-Environment-Id"] == spare.env_id == b1["env"] == b1["stream"]
    assert b1["pid"] == spare.proc.pid
    assert b1["greeting"] == "hello"  # spec.env travelled in the /init body

    status, h2, b2 = await router.invoke_json("fn", {})
    assert status == 200 and h2["X-Cold-Start"] == "false"
    assert h2["X-Environment-Source"] == "warm" and "X-Init-Duration-Ms" not in h2
    assert h2["X-Environment-Id"] == h1["X-Environment-Id"] and b2["count"] == 2

    # the pool refills in the background with a new, different process
    [refill] = await filled(router)
    assert refill.env_id != spare.env_id and refill.proc.pid != spare.proc.pid

    text = await metrics_text(router)
    assert 'lambdakube_generic_specialisations_total{result="specialised"} 1.0' in text
    assert "lambdakube_generic_pool_available 1.0" in text
    assert ('lambdakube_cold_start_seconds_count{function="fn",namespace="default",source="generic"} 1.0') in text


async def test_pool_size_zero_falls_back_to_fresh(make_router):
    router = await make_router(function("fn", COUNTER), generic_pool_size=0)
    assert generic_pool(router) is None
    status, h, body = await router.invoke_json("fn", {})
    assert status == 200 and h["X-Cold-Start"] == "true"
    assert h["X-Environment-Source"] == "fresh" and "X-Init-Duration-Ms" in h
    assert h["X-Environment-Id"] == body["env"]
    text = await metrics_text(router)
    assert ('lambdakube_cold_start_seconds_count{function="fn",namespace="default",source="fresh"} 1.0') in text
    assert "lambdakube_generic_pool_available" not in text


async def test_drained_pool_falls_back_to_fresh(make_router, tmp_path):
    """Two cold starts at once, one spare, refilling held back: one of them is served
    by the spare, the other by a fresh process; neither fails."""
    router = await make_router(function("fn", COUNTER), generic_pool_size=1)
    gp = generic_pool(router)
    [spare] = await filled(router)
    release = asyncio.Event()
    real_spawn = gp._spawn

    async def held_spawn():
        await release.wait()
        return await real_spawn()

    gp._spawn = held_spawn  # refills block until the test says so
    barrier = tmp_path / "go"
    calls = [asyncio.ensure_future(router.invoke_json("fn", {"hold": str(barrier)})) for _ in range(2)]
    await router.eventually(lambda: router.pool("fn").counts()["busy"] == 2)
    barrier.touch()
    results = await asyncio.gather(*calls)
    assert [r[0] for r in results] == [200, 200]
    assert sorted(r[1]["X-Environment-Source"] for r in results) == ["fresh", "generic"]
    assert all(r[1]["X-Cold-Start"] == "true" for r in results)
    by_source = {r[1]["X-Environment-Source"]: r for r in results}
    assert by_source["generic"][2]["pid"] == spare.proc.pid
    assert by_source["fresh"][2]["pid"] != spare.proc.pid
    assert gp.available == 0
    release.set()
    await filled(router)


async def test_dead_spare_falls_back_to_fresh(make_router):
    """A spare that died (killed, crashed) is never a failed cold start: whether the pool
    notices first (discarded) or the /init cannot connect, a fresh process serves."""
    import signal

    router = await make_router(function("fn", COUNTER), generic_pool_size=1)
    [spare] = await filled(router)
    os.kill(spare.proc.pid, signal.SIGKILL)
    status, h, body = await router.invoke_json("fn", {})
    assert status == 200 and h["X-Cold-Start"] == "true"
    assert h["X-Environment-Source"] == "fresh" and body["pid"] != spare.proc.pid
    stats = generic_pool(router).stats
    assert stats.discarded + stats.failed == 1 and stats.specialised == 0
    await filled(router)


async def test_specialised_env_never_goes_to_another_function(make_router):
    router = await make_router(function("a", COUNTER), function("b", COUNTER), generic_pool_size=1)
    [spare1] = await filled(router)
    _, ha, ba = await router.invoke_json("a", {})
    assert ha["X-Environment-Source"] == "generic" and ba["pid"] == spare1.proc.pid
    [spare2] = await filled(router)
    assert spare2.proc.pid != spare1.proc.pid

    _, hb, bb = await router.invoke_json("b", {})
    assert hb["X-Environment-Source"] == "generic" and hb["X-Cold-Start"] == "true"
    assert bb["pid"] == spare2.proc.pid != ba["pid"]
    assert hb["X-Environment-Id"] != ha["X-Environment-Id"]
    assert bb["count"] == 1  # b's own module, not a's counter
    # a keeps its environment; b's is its own; neither is a spare any more
    _, ha2, ba2 = await router.invoke_json("a", {})
    assert ha2["X-Environment-Id"] == ha["X-Environment-Id"] and ba2["count"] == 2
    assert set(router.pool("a").envs) == {ha["X-Environment-Id"]}
    assert set(router.pool("b").envs) == {hb["X-Environment-Id"]}
    [spare3] = await filled(router)
    assert spare3.proc.pid not in (ba["pid"], bb["pid"])


async def test_environment_retired_is_stopped_not_returned(make_router):
    router = await make_router(function("fn", COUNTER, idleTimeoutSeconds=0), generic_pool_size=1)
    gp = generic_pool(router)
    await filled(router)
    _, h, body = await router.invoke_json("fn", {})
    assert h["X-Environment-Source"] == "generic"
    await router.eventually(lambda: router.pool("fn").envs == {})  # reaped
    await router.eventually(lambda: gone(body["pid"]))
    await filled(router)
    assert body["pid"] not in [s.proc.pid for s in gp._spares]


async def test_module_state_is_isolated_between_functions(make_router):
    router = await make_router(
        function("a", LEAKY_A, env={"ONLY_A": "1"}), function("b", SNOOPY_B), generic_pool_size=2
    )
    await filled(router)
    _, ha, ba = await router.invoke_json("a", {})
    _, hb, bb = await router.invoke_json("b", {})
    assert ha["X-Environment-Source"] == hb["X-Environment-Source"] == "generic"
    assert ba == {"secret": "from-a", "pid": ba["pid"]}
    assert bb == {"secret": None, "builtins": False, "environ": [], "modules": False, "pid": bb["pid"]}
    assert bb["pid"] != ba["pid"]


async def test_init_error_through_init_is_the_same_502(make_router):
    router = await make_router(function("broken", BROKEN_INIT), generic_pool_size=1)
    [spare] = await filled(router)
    status, h, body = await router.invoke_json("broken", {})
    assert status == 502
    assert h["x-amzn-ErrorType"] == "InitError"
    assert body["errorMessage"].startswith(
        "default/broken: Init failed: Runtime.ImportModuleError: Unable to import module 'index'"
    )
    assert "nonexistent_module_xyz" in body["errorMessage"]
    state = await router.get_json("/lambdakube/v1/namespaces/default/functions/broken")
    assert "nonexistent_module_xyz" in state["pool"]["lastStartError"]
    assert state["pool"]["environments"] == []
    await router.eventually(lambda: gone(spare.proc.pid))  # the broken process is stopped
    assert generic_pool(router).stats.init_errors == 1
    text = await metrics_text(router)
    assert 'lambdakube_generic_specialisations_total{result="init_error"} 1.0' in text


async def test_init_error_matches_a_fresh_start(make_router, tmp_path):
    """The same broken function with and without the pool: the same answer."""
    answers = []
    for size in (0, 1):
        router = await make_router(
            function("broken", BROKEN_INIT), generic_pool_size=size, state_dir=tmp_path / f"state-{size}"
        )
        if size:
            await filled(router)
        status, h, body = await router.invoke_json("broken", {})
        answers.append((status, h["x-amzn-ErrorType"], body["errorType"], body["errorMessage"].splitlines()[0]))
    assert answers[0] == answers[1]


async def test_module_that_kills_its_process_fails_like_today(make_router):
    router = await make_router(function("exits", "import os\nos._exit(3)\n"), generic_pool_size=1)
    [spare] = await filled(router)
    status, h, body = await router.invoke_json("exits", {})
    assert status == 502 and h["x-amzn-ErrorType"] == "InitError"
    assert "exited with code 3 during Init" in body["errorMessage"]
    assert router.pool("exits").envs == {}
    await router.eventually(lambda: gone(spare.proc.pid))


async def test_provisioned_environments_do_not_use_spares(make_router):
    router = await make_router(function("prov", COUNTER, provisionedConcurrency=1), generic_pool_size=1)
    gp = generic_pool(router)
    [spare] = await filled(router)
    await router.eventually(lambda: router.pool("prov").counts()["idle"] == 1)
    status, h, body = await router.invoke_json("prov", {})
    assert status == 200 and h["X-Cold-Start"] == "false"
    assert h["X-Environment-Source"] == "provisioned"
    assert body["pid"] != spare.proc.pid
    assert list(gp._spares) == [spare] and gp.stats.taken == 0


async def test_interpreter_startup_env_gets_a_fresh_process(make_router):
    router = await make_router(function("fn", COUNTER, env={"PYTHONHASHSEED": "0"}), generic_pool_size=1)
    await filled(router)
    _, h, _ = await router.invoke_json("fn", {})
    assert h["X-Environment-Source"] == "fresh" and h["X-Cold-Start"] == "true"
    assert generic_pool(router).available == 1


async def test_shutdown_leaves_no_runtime_processes(make_router):
    router = await make_router(function("fn", COUNTER), generic_pool_size=2)
    await filled(router)
    _, h, body = await router.invoke_json("fn", {})
    assert h["X-Environment-Source"] == "generic"
    spares = await filled(router)
    pids = [body["pid"]] + [s.proc.pid for s in spares]
    assert len(set(pids)) == 3 and not any(gone(p) for p in pids)
    assert os.path.isdir(body["dir"])
    await router.client.close()  # runs the app's cleanup: pools, then the backend
    assert all(gone(p) for p in pids)
    # SIGTERM, not SIGKILL: the runtime removed its private inline-code directory
    assert not os.path.exists(body["dir"])


def test_router_and_dev_flags(tmp_path, capsys):
    import pytest

    from lambdakube_router.cli import main as cli_main
    from lambdakube_router.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(["--functions", str(tmp_path), "--generic-pool-size", "0"])
    assert config_from_args(args).generic_pool_size == 0
    args = build_parser().parse_args(["--functions", str(tmp_path)])
    assert config_from_args(args).generic_pool_size == 2
    for argv in (["--functions", str(tmp_path), "--generic-pool-size", "-1"],):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
    with pytest.raises(SystemExit):
        cli_main(["dev", str(tmp_path), "--generic-pool-size", "-1"])
    assert "--generic-pool-size" in capsys.readouterr().err
