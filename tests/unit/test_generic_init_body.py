"""The router's ``POST /init`` body against the runtime's parser, and what a fresh local
process starts with: the same configuration whether an environment was pre-started
(generic) or started for the function."""

from __future__ import annotations

import pytest

from lambdakube.models import FunctionSpec
from lambdakube_router.backends.base import FunctionRef
from lambdakube.resources.code import needs_fresh_process
from lambdakube_router.backends.local import init_body, process_variables
from lambdakube_runtime.config import from_environ, from_init_body


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate(
        {
            "handler": "app.main",
            "code": {"inline": {"source": "def main(e, c):\n    return e\n", "module": "app"}},
            **kw,
        }
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"env": {"GREETING": "hi", "EMPTY": ""}, "timeoutSeconds": 30, "resources": {"memorySize": 512}},
    ],
)
def test_init_body_configures_the_function_and_a_fresh_process_starts_without_it(kw):
    fn = FunctionRef("team-a", "greeter")
    s = spec(**kw)
    config, env = from_init_body(init_body(fn, s))  # raises on unknown fields
    assert (
        config.handler,
        config.inline_module,
        config.inline_code,
        config.function_name,
        config.namespace,
        config.memory_mb,
        config.timeout_seconds,
    ) == (
        "app.main",
        "app",
        s.code.inline.source,
        "greeter",
        "team-a",
        s.resources.memory_size,
        float(s.timeout_seconds),
    )
    assert env == s.env
    started = process_variables(fn, s, "env-1")
    assert from_environ(started) is None  # generic until its /init
    assert started == {**s.env, "LAMBDAKUBE_ENV_ID": "env-1", "LAMBDAKUBE_NAMESPACE": "team-a"}


def test_needs_fresh_process_for_references():
    """A generic process gets variables only in /init, which never carries their values."""
    assert needs_fresh_process(spec(envValueFrom={"DB": {"secretKeyRef": {"name": "db", "key": "k"}}}))
    assert needs_fresh_process(spec(envFrom=[{"configMapRef": {"name": "c", "optional": True}}]))


def test_needs_fresh_process_for_startup_variables():
    assert not needs_fresh_process(spec())
    assert not needs_fresh_process(spec(env={"DEBUG": "1", "MY_PYTHONISH": "x"}))
    for name in ("PYTHONPATH", "PYTHONHASHSEED", "LD_PRELOAD", "MALLOC_ARENA_MAX", "LAMBDAKUBE_CODE_DIR"):
        assert needs_fresh_process(spec(env={name: "x"})), name
