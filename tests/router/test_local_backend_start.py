"""How the local backend starts an environment: the ready pipe, the isolated interpreter,
the compiled copy of the runtime, spawns off the event loop.

Real processes throughout. A "runtime" that misbehaves before listening is a small
shell script given to the backend as its interpreter (``python=``): it ignores the
command line and does exactly one wrong thing. Nothing here asserts on timings: a
runtime that dies before listening must give its error long before ``listen_timeout``
(60 s here), so waiting on the start with a much shorter bound says that the pipe's end
woke the backend, not a timer.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from lambdakube.models import FunctionSpec
from lambdakube.resources import env_token
from lambdakube_router.backends import local, runtime_copy
from lambdakube_router.backends.base import EnvironmentStartError, FunctionRef
from lambdakube_router.backends.local import LocalBackend
from tests.router.conftest import function

FN = FunctionRef("default", "start")

PROBE = """
import os, sys

def handler(event, context):
    import lambdakube_runtime
    return {
        "isolated": sys.flags.isolated,
        "no_site": sys.flags.no_site,
        "optimize": sys.flags.optimize,
        "runtime": lambdakube_runtime.__file__,
        "ready_fd": "LAMBDAKUBE_READY_FD" in os.environ,
        "pid": os.getpid(),
        "yaml": __import__("yaml").__name__,
    }
"""


def spec_of(source: str, **fields) -> FunctionSpec:
    return FunctionSpec.model_validate(function("start", source, **fields)["spec"])


def fake_runtime(tmp_path: Path, body: str) -> str:
    """An executable that stands in for the interpreter: ``bash -c body``, whatever its
    arguments."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def invoke(backend: LocalBackend, handle, payload=None) -> dict:
    headers = {env_token.HEADER: handle.token}  # the environment's own: only its router has it
    async with backend._http().post(f"http://{handle.address}/invoke", json=payload or {}, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


# (name, the fake runtime's script, listen_timeout, what the error says)
NOT_LISTENING = [
    (
        "exits before listening",
        "echo 'bad things happened'; exit 3",
        60.0,
        ["exited with code 3 before listening", "bad things happened"],
    ),
    (
        "killed before listening",
        "echo 'about to die'; kill -9 $$",
        60.0,
        ["exited with code -9 before listening", "about to die"],
    ),
    (
        "never listens",
        "echo 'thinking'; exec sleep 60",
        0.3,
        ["did not report listening within 0.3s", "thinking"],
    ),
    (
        "closes the ready pipe and stays",
        'eval "exec $LAMBDAKUBE_READY_FD>&-"; echo still here; exec sleep 60',
        60.0,
        ["did not report its port", "still here"],
    ),
    (
        "writes something else on the ready pipe",
        'echo "hello there" >&$LAMBDAKUBE_READY_FD; exec sleep 60',
        60.0,
        ["did not report its port", "hello there"],
    ),
]


@pytest.mark.parametrize(
    ("script", "listen_timeout", "says"), [c[1:] for c in NOT_LISTENING], ids=[c[0] for c in NOT_LISTENING]
)
async def test_a_runtime_that_does_not_listen_fails_its_start_with_its_output(
    tmp_path, monkeypatch, script, listen_timeout, says
):
    monkeypatch.setattr(local, "_EXIT_WAIT_SECONDS", 0.2)  # a live runtime that closed its pipe
    backend = LocalBackend(
        python=fake_runtime(tmp_path, script), stop_grace=0.2, listen_timeout=listen_timeout, bytecode_cache=None
    )
    try:
        with pytest.raises(EnvironmentStartError) as caught:
            await asyncio.wait_for(backend.start(FN, spec_of(PROBE), "start-1", False), 20)
        for text in says:
            assert text in str(caught.value), str(caught.value)
        assert backend._procs == {}  # stopped and forgotten
        assert backend._root is not None and not (backend._root / "start-1.tmp").exists()
    finally:
        await backend.close()


# (name, the function's spec.env, sys.flags the handler sees)
INTERPRETERS = [
    ("isolated by default", {}, {"isolated": 1, "no_site": 1, "optimize": 0}),
    ("a variable the interpreter reads", {"PYTHONOPTIMIZE": "1"}, {"isolated": 0, "no_site": 0, "optimize": 1}),
]


@pytest.mark.parametrize(("env", "flags"), [c[1:] for c in INTERPRETERS], ids=[c[0] for c in INTERPRETERS])
async def test_the_interpreter_is_isolated_unless_the_function_configures_it(tmp_path, env, flags):
    backend = LocalBackend(stop_grace=0.5, bytecode_cache=tmp_path / "cache")
    try:
        handle = await backend.start(FN, spec_of(PROBE, env=env), "start-1", False)
        seen = await invoke(backend, handle)
        assert {k: seen[k] for k in flags} == flags
        # either way: the router's site-packages are importable, the ready fd is gone
        assert seen["yaml"] == "yaml" and seen["ready_fd"] is False
        # and the runtime is the compiled copy, never the checkout's sources
        copy = Path(seen["runtime"]).parent
        assert copy.parent.parent == tmp_path / "cache", seen["runtime"]
        assert any(p.suffix == ".pyc" for p in (copy / "__pycache__").iterdir())
    finally:
        await backend.close()


async def test_without_a_writable_cache_environments_import_the_runtime_from_source(tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # the cache root cannot be created below a file
    backend = LocalBackend(stop_grace=0.5, bytecode_cache=blocked / "cache")
    try:
        handle = await backend.start(FN, spec_of(PROBE), "start-1", False)
        seen = await invoke(backend, handle)
        assert Path(seen["runtime"]).parent == runtime_copy.source_dir() / "lambdakube_runtime"
    finally:
        await backend.close()


def test_the_compiled_copy_is_named_by_its_content(tmp_path):
    source = tmp_path / "src"
    (source / "lambdakube_runtime").mkdir(parents=True)
    module = source / "lambdakube_runtime" / "__init__.py"
    module.write_text("VALUE = 1\n")
    cache = tmp_path / "cache"

    first = runtime_copy.prepare(sys.executable, source, cache)
    again = runtime_copy.prepare(sys.executable, source, cache)
    module.write_text("VALUE = 2\n")
    changed = runtime_copy.prepare(sys.executable, source, cache)

    assert first == again != changed
    assert (first / "lambdakube_runtime" / "__init__.py").read_text() == "VALUE = 1\n"
    assert (changed / "lambdakube_runtime" / "__init__.py").read_text() == "VALUE = 2\n"
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, changed.name])  # no leftovers
    assert not (source / "lambdakube_runtime" / "__pycache__").exists()  # the source is only read


def pipes_of(pid: int) -> list[str]:
    """The pipes ``pid`` holds open (from /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    out = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("pipe:"):
            out.append(target)
    return out


async def test_concurrent_starts_give_each_runtime_only_its_own_pipes(tmp_path):
    """Starts run on several spawn threads at once: no runtime may inherit another's
    ready pipe (its end would then never come when that runtime dies). Each holds
    exactly one pipe, the liveness pipe's read end, the same one for all."""
    backend = LocalBackend(stop_grace=0.5, bytecode_cache=tmp_path / "cache")
    try:
        handles = await asyncio.gather(
            *(backend.start(FN, spec_of(PROBE), f"start-{i}", False) for i in range(2 * local.SPAWN_THREADS))
        )
        pids = [(await invoke(backend, h))["pid"] for h in handles]
        assert len(set(pids)) == len(pids)
        held = [pipes_of(pid) for pid in pids]
        assert all(len(p) == 1 for p in held), held
        assert len({p[0] for p in held}) == 1, held
    finally:
        await backend.close()


async def test_at_most_max_starting_runtimes_are_between_spawn_and_listening(tmp_path, monkeypatch):
    """A storm queues in the backend: the next runtime is spawned only once one that
    was starting has listened or failed (here: each fails, not listening in time)."""
    events: list[str] = []
    real_popen = local._popen

    def recording_popen(argv, env, log_path, tmp_dir, pass_fds):
        events.append(f"spawn {log_path.stem}")
        return real_popen(argv, env, log_path, tmp_dir, pass_fds)

    monkeypatch.setattr(local, "_popen", recording_popen)
    backend = LocalBackend(
        python=fake_runtime(tmp_path, "exec sleep 60"),
        stop_grace=0.2,
        listen_timeout=0.2,
        max_starting=1,
        bytecode_cache=None,
    )

    async def start(i: int) -> None:
        with pytest.raises(EnvironmentStartError):
            await backend.start(FN, spec_of(PROBE), f"start-{i}", False)
        events.append(f"failed start-{i}")

    try:
        await asyncio.gather(*(start(i) for i in range(3)))
    finally:
        await backend.close()
    spawned = [e.split()[1] for e in events if e.startswith("spawn")]
    assert events == [x for env in spawned for x in (f"spawn {env}", f"failed {env}")], events


async def test_a_start_cancelled_while_its_process_is_spawned_stops_that_process(tmp_path, monkeypatch):
    """The pool cancels a start (its init timeout, a router shutting down) whenever it
    must; a ``Popen`` already running on a spawn thread still starts its process, and
    that one must not live on unowned, nor its files."""
    entered, release = threading.Event(), threading.Event()
    started: list = []
    real_popen = local._popen

    def held_popen(*args):
        entered.set()
        release.wait(10)
        popen = real_popen(*args)
        started.append(popen)
        return popen

    monkeypatch.setattr(local, "_popen", held_popen)
    backend = LocalBackend(stop_grace=0.5, bytecode_cache=tmp_path / "cache")
    try:
        task = asyncio.ensure_future(backend.start(FN, spec_of(PROBE), "start-1", False))
        assert await asyncio.to_thread(entered.wait, 10)  # the spawn thread is in Popen
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        root = backend._root
        assert root is not None
        deadline = asyncio.get_running_loop().time() + 10

        def cleaned_up() -> bool:
            return bool(started) and started[0].returncode is not None and not (root / "start-1.tmp").exists()

        while not cleaned_up():  # bounded: the backend stops it once Popen returns
            assert asyncio.get_running_loop().time() < deadline, "the abandoned runtime was not stopped"
            await asyncio.sleep(0.01)
        assert backend._procs == {}
        assert not (root / "start-1.log").exists()
    finally:
        release.set()
        await backend.close()
