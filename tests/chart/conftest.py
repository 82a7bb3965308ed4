"""Chart test fixtures: helm built by `make helm` (hack/build-tools.sh, cached by version
under ~/.cache/lambdakube/tools), and `helm template` rendering into parsed objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ToolMissing, locate

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lambdakube"
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary, only located: `make test-fast` builds it before pytest
    starts (about 2 min cold on 2 cores), since a build here would run into the test's
    timeout. Not built, every chart test fails naming `make helm`."""
    try:
        return locate(BUILD_TOOLS, "helm") / "helm"
    except ToolMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)  # outside the except: the message alone, unchained


class Rendered(list):
    """The objects of one `helm template` run, with lookups by kind and name."""

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self)

    def of(self, kind: str) -> list[dict]:
        return [o for o in self if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.of(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    @property
    def text(self) -> str:
        return yaml.safe_dump_all(list(self), sort_keys=False)


def helm_template(
    helm: Path,
    *,
    release: str = "lk",
    namespace: str = "lambdakube-system",
    values: dict | None = None,
    set_: list[str] = (),
    extra: list[str] = (),
) -> Rendered:
    """`helm template` with optional values (as a YAML file on stdin) and --set flags."""
    cmd = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    if values:
        cmd += ["--values", "-"]
    for s in set_:
        cmd += ["--set", s]
    cmd += list(extra)
    out = subprocess.run(
        cmd, input=yaml.safe_dump(values) if values else None, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return Rendered(d for d in yaml.safe_load_all(out.stdout) if d)


@pytest.fixture
def render(helm):
    def _render(**kwargs) -> Rendered:
        return helm_template(helm, **kwargs)

    return _render
