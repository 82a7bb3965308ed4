from __future__ import annotations

import pytest

from tests.runtime.harness import HANDLERS_DIR, RuntimeProcess


def launch(
    handler: str | None = None,
    *,
    env: dict[str, str] | None = None,
    inline_code: str | None = None,
    code_dir: str | None = str(HANDLERS_DIR),
    wait: str | None = "ready",
) -> RuntimeProcess:
    """A runtime subprocess; ``wait`` is "ready" (readyz 200), "settled" (Init finished,
    either way) or None (just listening)."""
    full_env = {"LAMBDAKUBE_FUNCTION_NAME": "fn", "LAMBDAKUBE_ENV_ID": "env-test"}
    if handler is not None:
        full_env["LAMBDAKUBE_HANDLER"] = handler
    if code_dir is not None and inline_code is None:
        full_env["LAMBDAKUBE_CODE_DIR"] = code_dir
    if inline_code is not None:
        full_env["LAMBDAKUBE_INLINE_CODE"] = inline_code
    full_env.update(env or {})
    runtime = RuntimeProcess(full_env)
    try:
        if wait == "ready":
            runtime.wait_ready()
        elif wait == "settled":
            runtime.wait_settled()
    except BaseException:
        runtime.stop()
        raise
    return runtime


@pytest.fixture
def start_runtime():
    """Start a runtime subprocess of the test's own: ``start_runtime(handler="basic.count",
    env={...})`` (the arguments of ``launch``). For tests that change what the process is:
    kill it, time it out, make it unhealthy, specialise it, count from its cold start.
    Every process is terminated at teardown."""
    started: list[RuntimeProcess] = []

    def start(handler: str | None = None, **kwargs) -> RuntimeProcess:
        # Registered only once up: a process that fails to start is stopped by launch.
        runtime = launch(handler, **kwargs)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()


@pytest.fixture(scope="module")
def shared_runtime():
    """One runtime process per module and configuration, for tests that only need a plain
    runtime and leave it as they found it: ``shared_runtime("basic.echo")``, same
    arguments as ``launch``. A process start is a good part of such a test's time.

    Such a test must not depend on what earlier tests did to the process: it reads
    counters relative to its own first reading (``basic.count``), and matches stdout
    lines by its own request ids. A shared process that has exited (an earlier test broke
    it) fails the test that asks for it, with that process's stderr."""
    running: dict[tuple, RuntimeProcess] = {}

    def get(handler: str | None = None, **kwargs) -> RuntimeProcess:
        key = (handler, repr(sorted(kwargs.items())))
        runtime = running.get(key)
        if runtime is None:
            runtime = running[key] = launch(handler, **kwargs)
        elif runtime.proc.poll() is not None:
            pytest.fail(
                f"the module's shared runtime {key} exited ({runtime.proc.returncode}) "
                f"in an earlier test; stderr={runtime.stderr}"
            )
        return runtime

    yield get
    for runtime in running.values():
        runtime.stop()
