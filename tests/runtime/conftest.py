from __future__ import annotations

import pytest

from tests.runtime.harness import HANDLERS_DIR, RuntimeProcess


@pytest.fixture
def start_runtime():
    """Start a runtime subprocess: ``start_runtime(handler="basic.count", env={...})``.

    ``wait`` is "ready" (readyz 200), "settled" (Init finished, either way) or None
    (just listening). Every process is terminated at teardown.
    """
    started: list[RuntimeProcess] = []

    def start(
        handler: str | None = None,
        *,
        env: dict[str, str] | None = None,
        inline_code: str | None = None,
        code_dir: str | None = str(HANDLERS_DIR),
        wait: str | None = "ready",
    ) -> RuntimeProcess:
        full_env = {"LAMBDAKUBE_FUNCTION_NAME": "fn", "LAMBDAKUBE_ENV_ID": "env-test"}
        if handler is not None:
            full_env["LAMBDAKUBE_HANDLER"] = handler
        if code_dir is not None and inline_code is None:
            full_env["LAMBDAKUBE_CODE_DIR"] = code_dir
        if inline_code is not None:
            full_env["LAMBDAKUBE_INLINE_CODE"] = inline_code
        full_env.update(env or {})
        runtime = RuntimeProcess(full_env)
        started.append(runtime)
        if wait == "ready":
            runtime.wait_ready()
        elif wait == "settled":
            runtime.wait_settled()
        return runtime

    yield start
    for runtime in started:
        runtime.stop()
