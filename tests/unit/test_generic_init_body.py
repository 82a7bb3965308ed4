"""The router's ``POST /init`` body against the runtime's parser: a specialised generic
environment must be configured exactly like a fresh one started with the variables."""

from __future__ import annotations

import pytest

from lambdakube.models import FunctionSpec
from lambdakube_router.backends.base import FunctionRef
from lambdakube.resources.code import needs_fresh_process
from lambdakube_router.backends.local import environment_variables, init_body
from lambdakube_runtime.config import from_environ, from_init_body


def spec(**kw) -> FunctionSpec:
    return FunctionSpec.model_validate({
        "handler": "app.main",
        "code": {"inline": {"source": "def main(e, c):\n    return e\n", "module": "app"}},
        **kw,
    })


@pytest.mark.parametrize("kw", [
    {},
    {"env": {"GREETING": "hi", "EMPTY": ""}, "timeoutSeconds": 30,
     "resources": {"memorySize": 512}},
])
def test_init_body_parses_to_the_same_config_as_the_variables(kw):
    fn = FunctionRef("team-a", "greeter")
    s = spec(**kw)
    config, env = from_init_body(init_body(fn, s))  # raises on unknown fields
    assert config == from_environ(environment_variables(fn, s, "env-1"))
    assert env == s.env


def test_needs_fresh_process_for_startup_variables():
    assert not needs_fresh_process(spec())
    assert not needs_fresh_process(spec(env={"DEBUG": "1", "MY_PYTHONISH": "x"}))
    for name in ("PYTHONPATH", "PYTHONHASHSEED", "LD_PRELOAD", "MALLOC_ARENA_MAX",
                 "LAMBDAKUBE_CODE_DIR"):
        assert needs_fresh_process(spec(env={name: "x"})), name
