"""Chart test fixtures: helm from hack/build-tools.sh (built once, cached by version
under ~/.cache/lambdakube/tools), and `helm template` rendering into parsed objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lambdakube"
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary. The first run builds it from the Go module proxy (~2 min
    on 2 cores); later runs only find it in the cache."""
    if shutil.which("go") is None and shutil.which("helm") is None:
        pytest.skip("helm tests need Go (hack/build-tools.sh builds helm)")
    out = subprocess.run(["bash", str(BUILD_TOOLS), "helm"], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


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


def helm_template(helm: Path, *, release: str = "lk", namespace: str = "lambdakube-system",
                  values: dict | None = None, set_: list[str] = (), extra: list[str] = ()
                  ) -> Rendered:
    """`helm template` with optional values (as a YAML file on stdin) and --set flags."""
    cmd = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    if values:
        cmd += ["--values", "-"]
    for s in set_:
        cmd += ["--set", s]
    cmd += list(extra)
    out = subprocess.run(cmd, input=yaml.safe_dump(values) if values else None,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return Rendered(d for d in yaml.safe_load_all(out.stdout) if d)


@pytest.fixture
def render(helm):
    def _render(**kwargs) -> Rendered:
        return helm_template(helm, **kwargs)
    return _render
