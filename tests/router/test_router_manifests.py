"""Manifests: validated through the pydantic models; an invalid one stops the router."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.snapshot import ManifestError, load_directory

REPO = Path(__file__).resolve().parents[2]

GOOD = """
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata: {name: ok}
spec:
  handler: index.handler
  code: {inline: {source: "def handler(e, c):\\n    return e\\n"}}
"""

BAD_FIELD = """
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata: {name: bad}
spec:
  handler: index.handler
  timeoutSeconds: 5000
  code: {inline: {source: "def handler(e, c):\\n    return e\\n"}}
"""


def write(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "fns"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.yaml").write_text(text)
    return d


def test_examples_are_valid():
    snap = load_directory(REPO / "examples")
    names = {name for _, name in snap.functions}
    assert {"hello", "provisioned", "reserved", "async-dlq"} <= names
    assert snap.functions[("default", "provisioned")].spec.provisioned_concurrency == 2
    assert snap.functions[("default", "reserved")].spec.reserved_concurrency == 5
    assert "default" in snap.quotas
    dlq = snap.functions[("default", "async-dlq")].spec.async_
    assert dlq.on_failure.queue and dlq.dead_letter.queue
    orders = snap.mappings[("default", "orders")].spec
    assert orders is not None and orders.function == "order-consumer" and orders.report_batch_item_failures


@pytest.mark.parametrize(
    "text,needle",
    [
        (BAD_FIELD, "bad.yaml: Function 'bad': spec.timeoutSeconds: Input should be less than or equal to 900"),
        (
            GOOD.replace("handler: index.handler", "handler: index.handler\n  replicas: 3"),
            "spec.replicas: Extra inputs are not permitted",
        ),
        (GOOD.replace("name: ok", "name: Not_Valid"), "metadata.name must be a DNS-1123 label"),
        (GOOD.replace("v1alpha1", "v9"), "apiVersion must be lambdakube.dev/v1alpha1"),
        (GOOD.replace("kind: Function", "kind: Deployment"), "kind must be one of Function, FunctionVersion"),
        (
            GOOD.replace("handler: index.handler", "handler: main.handler"),
            "handler must be <code.inline.module>.<function>",
        ),
        (
            GOOD + "---\napiVersion: lambdakube.dev/v1alpha1\nkind: ConcurrencyQuota\n"
            "metadata: {name: other}\nspec: {}\n",
            "must be named 'default'",
        ),
        ("key: [unclosed", "invalid YAML"),
    ],
)
def test_invalid_manifest_named_with_file_and_field(tmp_path, text, needle):
    d = write(tmp_path, good=GOOD, bad=text)
    with pytest.raises(ManifestError) as exc:
        load_directory(d)
    assert needle in str(exc.value)
    assert "bad.yaml" in str(exc.value)


def test_duplicate_function_rejected(tmp_path):
    d = write(tmp_path, a=GOOD, b=GOOD)
    with pytest.raises(ManifestError, match="duplicate Function default/ok"):
        load_directory(d)


async def test_init_app_refuses_invalid_manifests(tmp_path):
    d = write(tmp_path, bad=BAD_FIELD)
    with pytest.raises(ManifestError, match="timeoutSeconds"):
        await init_app(RouterConfig(functions_dir=d, state_dir=tmp_path / "state"))


def test_dev_command_refuses_to_start(tmp_path):
    d = write(tmp_path, bad=BAD_FIELD)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdakube_router.cli",
            "dev",
            str(d),
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'router'}:{REPO / 'runtime-image'}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "spec.timeoutSeconds" in proc.stderr and "bad.yaml" in proc.stderr
    assert "LAMBDAKUBE_ROUTER_LISTENING" not in proc.stdout


async def test_directory_source_applies_changes_and_ignores_bad_edits(make_router, tmp_path):
    from lambdakube_router import keys

    d = write(tmp_path, good=GOOD)
    router = await make_router(snapshot=None, functions_dir=d, watch_interval_seconds=0.05)
    status, _, _ = await router.invoke_json("ok", {})
    assert status == 200
    (d / "second.yaml").write_text(GOOD.replace("name: ok", "name: ok2"))
    await router.eventually(lambda: router.app[keys.ENGINE].get("default", "ok2") is not None)
    (d / "broken.yaml").write_text(BAD_FIELD)  # invalid edit: previous functions stay
    await asyncio.sleep(0.3)
    assert router.app[keys.ENGINE].get("default", "ok2") is not None
    status, _, _ = await router.invoke_json("ok2", {})
    assert status == 200
