"""``spec.runtime`` and ``code.inline.filename``: what the schema accepts, and how the
choice reaches an environment (``POST /init`` for inline code, the pod's variables for
code in an image), parsed by the runtime's own ``from_init_body``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lambdakube.models import FunctionSpec
from lambdakube.resources import code, pods
from lambdakube_runtime.config import from_init_body


def spec(**kw) -> FunctionSpec:
    base = {"handler": "index.handler", "code": {"inline": {"source": "x"}}}
    base.update(kw)
    return FunctionSpec.model_validate(base)


@pytest.mark.parametrize(
    "runtime", ["python3.12", "python3.9", "nodejs20.x", "nodejs22.x", "provided", "provided.al2", "provided.al2023"]
)
def test_lambdas_runtimes_are_accepted(runtime):
    assert spec(runtime=runtime).runtime == runtime


@pytest.mark.parametrize("runtime", ["java21", "nodejs", "python2.7", "provided.al1", "", "go1.x"])
def test_other_runtimes_are_refused(runtime):
    with pytest.raises(ValidationError):
        spec(runtime=runtime)


@pytest.mark.parametrize("filename", ["../index.js", "a/b.js", ".hidden", ""])
def test_inline_filenames_are_plain_names(filename):
    with pytest.raises(ValidationError):
        spec(code={"inline": {"source": "x", "filename": filename}})


CASES = {
    "default: the built-in path, no new fields": ({}, {}, ("", None)),
    "node": ({"runtime": "nodejs20.x"}, {"runtime": "nodejs20.x"}, ("nodejs20.x", None)),
    "commonjs file": (
        {"runtime": "nodejs20.x", "code": {"inline": {"source": "x", "filename": "index.js"}}},
        {"runtime": "nodejs20.x", "inlineFilename": "index.js"},
        ("nodejs20.x", "index.js"),
    ),
    "provided": ({"runtime": "provided.al2023"}, {"runtime": "provided.al2023"}, ("provided.al2023", None)),
}


@pytest.mark.parametrize("name", CASES)
def test_the_init_body_carries_the_runtime_only_when_set(name):
    fields, extra, (runtime, filename) = CASES[name]
    body = code.init_body("fn", "default", spec(**fields))
    assert {k: body[k] for k in ("runtime", "inlineFilename") if k in body} == extra
    config, _ = from_init_body(body)
    assert (config.runtime, config.inline_filename) == (runtime, filename)


def test_an_image_functions_pod_names_its_runtime():
    image = FunctionSpec.model_validate({"handler": "main.handler", "image": "fn:1", "runtime": "provided.al2023"})
    env = {var["name"]: var.get("value") for var in pods._env("fn", "default", image)}
    assert env["LAMBDAKUBE_RUNTIME"] == "provided.al2023"
    python = FunctionSpec.model_validate({"handler": "main.handler", "image": "fn:1"})
    assert "LAMBDAKUBE_RUNTIME" not in {var["name"] for var in pods._env("fn", "default", python)}
