"""Secret and ConfigMap references on the local backend (``--secrets-dir``,
``--configmaps-dir``): real runtime processes read them in their handler; an
unresolvable reference is an invalid manifest at deploy time and a clear start error
later; the value never reaches the router's log, introspection or ``POST /init``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from lambdakube.models import FunctionSpec
from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.backends.base import FunctionRef
from lambdakube_router.backends.local import init_body
from lambdakube_router.snapshot import ManifestError
from tests.procs import stop_process
from tests.router.conftest import function

REPO = Path(__file__).resolve().parents[2]
VALUE = "s3cr3t-value"

SOURCE = """
import os

def handler(event, context):
    return {k: os.environ.get(k) for k in ("DB_PASSWORD", "LEVEL", "S_user", "OPTIONAL", "PLAIN")}
"""
SPEC = {
    "env": {"PLAIN": "literal"},
    "envValueFrom": {
        "DB_PASSWORD": {"secretKeyRef": {"name": "db", "key": "password"}},
        "LEVEL": {"configMapKeyRef": {"name": "settings", "key": "level"}},
        "OPTIONAL": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
    },
    "envFrom": [{"secretRef": {"name": "db"}, "prefix": "S_"}],
}


def layout(tmp_path: Path, **spec) -> tuple[Path, Path, Path]:
    """(manifest dir, secrets dir, configmaps dir) holding the function ``sec``."""
    fns, secrets, configmaps = tmp_path / "fns", tmp_path / "secrets", tmp_path / "configmaps"
    (secrets / "default" / "db").mkdir(parents=True)
    (secrets / "default" / "db" / "password").write_text(VALUE)
    (secrets / "default" / "db" / "user").write_text("app")
    (configmaps / "default" / "settings").mkdir(parents=True)
    (configmaps / "default" / "settings" / "level").write_text("debug")
    fns.mkdir()
    (fns / "sec.yaml").write_text(yaml.safe_dump(function("sec", SOURCE, **(spec or SPEC))))
    return fns, secrets, configmaps


EXPECTED = {"DB_PASSWORD": VALUE, "LEVEL": "debug", "S_user": "app", "OPTIONAL": None, "PLAIN": "literal"}


async def test_references_resolve_in_the_handler_and_their_values_stay_there(make_router, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fns, secrets, configmaps = layout(tmp_path)
    router = await make_router(
        snapshot=None, functions_dir=fns, secrets_dir=secrets, configmaps_dir=configmaps, generic_pool_size=2
    )
    status, headers, body = await router.invoke_json("sec", {})
    assert (status, body) == (200, EXPECTED)
    # a spare generic process would get variables only in /init: never used for these
    assert headers["X-Environment-Source"] == "fresh"
    described = json.dumps(await router.get_json("/lambdakube/v1/namespaces/default/functions/sec"))
    spec = FunctionSpec.model_validate(SPEC | {"handler": "index.handler", "code": {"inline": {"source": SOURCE}}})
    sent = json.dumps(init_body(FunctionRef("default", "sec"), spec))
    assert '"PLAIN": "literal"' in sent  # the literal env is there ...
    for where, text in {"log": caplog.text, "introspection": described, "/init body": sent}.items():
        assert VALUE not in text, where  # ... a referenced value is not


async def test_a_file_gone_after_deploy_fails_the_cold_start_clearly(make_router, tmp_path):
    fns, secrets, configmaps = layout(tmp_path)
    router = await make_router(snapshot=None, functions_dir=fns, secrets_dir=secrets, configmaps_dir=configmaps)
    (secrets / "default" / "db" / "password").unlink()
    status, headers, body = await router.invoke_json("sec", {})
    assert status == 502 and headers["x-amzn-ErrorType"] == "InitError"
    assert f'env DB_PASSWORD: secret "db" key "password" not found in {secrets}/default/db' in body["errorMessage"]


async def test_an_unresolvable_reference_is_an_invalid_manifest_at_deploy(tmp_path):
    fns, secrets, configmaps = layout(tmp_path)
    (secrets / "default" / "db" / "password").unlink()
    config = RouterConfig(
        functions_dir=fns, secrets_dir=secrets, configmaps_dir=configmaps, state_dir=tmp_path / "state"
    )
    with pytest.raises(ManifestError) as err:
        await init_app(config)
    assert (
        f"{fns}/sec.yaml: Function 'sec': function default/sec: env DB_PASSWORD:"
        f' secret "db" key "password" not found in {secrets}/default/db'
    ) in str(err.value)
    without = RouterConfig(functions_dir=fns, state_dir=tmp_path / "state2")
    with pytest.raises(ManifestError) as err:
        await init_app(without)
    for problem in (
        'envFrom[0]: secret "db": no --secrets-dir given',
        'env DB_PASSWORD: secret "db" key "password": no --secrets-dir given',
        'env LEVEL: configmap "settings" key "level": no --configmaps-dir given',
    ):
        assert f"function default/sec: {problem}" in str(err.value)


def test_router_process_keeps_values_out_of_its_log(tmp_path):
    """A real ``lambdakube-router`` at DEBUG: the handler answers with the value, and
    neither its log nor its introspection ever shows it."""
    fns, secrets, configmaps = layout(tmp_path)
    log_path = tmp_path / "router.log"
    argv = [sys.executable, "-m", "lambdakube_router", "--functions", str(fns), "--backend", "local"]
    argv += ["--port", "0", "--log-level", "DEBUG", "--state-dir", str(tmp_path / "state")]
    argv += ["--secrets-dir", str(secrets), "--configmaps-dir", str(configmaps), "--generic-pool-size", "0"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the router prints it or exits
        assert line.startswith("LAMBDAKUBE_ROUTER_LISTENING "), (line, log_path.read_text())
        base = line.split()[1]
        request = urllib.request.Request(f"{base}/2015-03-31/functions/sec/invocations", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert json.loads(resp.read()) == EXPECTED
        with urllib.request.urlopen(f"{base}/lambdakube/v1/namespaces/default/functions/sec", timeout=10) as resp:
            described = resp.read().decode()
        assert '"sec"' in described and VALUE not in described
    finally:
        stop_process(proc)
    logged = log_path.read_text()
    assert "lambdakube_router" in logged  # it did log (at DEBUG, its most talkative)
    assert VALUE not in logged


async def test_the_example_reads_its_secret_as_make_dev_serves_it(make_router):
    router = await make_router(
        snapshot=None, functions_dir=REPO / "examples", secrets_dir=REPO / "examples" / "secrets"
    )
    status, _, body = await router.invoke_json("secret-greeting", {})
    assert (status, body) == (200, {"greeting": "hello from a Secret"})
