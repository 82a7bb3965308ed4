"""Which package may import which, read from the source (``ast``), so a layering slip
fails here instead of surfacing as an import cycle or a slow cold start.

- ``lambdakube`` (models, CRD generator, pure builders) is a leaf: it imports none of
  the components.
- ``lambdakube_runtime`` imports only the standard library (its import time is the cold
  start) and nothing of ours.
- The kubernetes backend does not borrow from the local backend: what both need lives
  in ``backends/base.py`` or ``lambdakube.resources``.
- The pod backend's decisions (``backends/claims.py``) do no I/O: no HTTP, no
  Kubernetes client, no event loop; ``kubernetes.py`` executes them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("lambdakube_router", "lambdakube_operator", "lambdakube_runtime")


def imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in the file (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def files(package_dir: Path) -> list[Path]:
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", files(REPO / "lambdakube"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_models_package_is_a_leaf(path):
    bad = sorted(m for m in imports(path) if m.split(".")[0] in COMPONENTS)
    assert not bad, f"{path.relative_to(REPO)} imports {bad}: lambdakube/ must not depend on a component"


RUNTIME = REPO / "runtime-image" / "lambdakube_runtime"


@pytest.mark.parametrize("path", files(RUNTIME), ids=lambda p: str(p.relative_to(REPO)))
def test_the_runtime_imports_only_the_standard_library(path):
    bad = sorted(
        m
        for m in imports(path)
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] != "lambdakube_runtime"
        and m != "__future__"
    )
    assert not bad, f"{path.relative_to(REPO)} imports {bad}: the runtime is stdlib only"


def test_the_kubernetes_backend_does_not_borrow_from_the_local_one():
    path = REPO / "router" / "lambdakube_router" / "backends" / "kubernetes.py"
    assert "lambdakube_router.backends.local" not in imports(path)


def test_the_pod_backends_decisions_do_no_io():
    path = REPO / "router" / "lambdakube_router" / "backends" / "claims.py"
    io = (
        "aiohttp",
        "asyncio",
        "kubernetes",
        "socket",
        "subprocess",
        "time",
        "lambdakube.kubeclient",
        "lambdakube_router.backends.pod_cache",
        "lambdakube_router.informer",
    )
    bad = sorted(m for m in imports(path) if any(m == x or m.startswith(x + ".") for x in io))
    assert not bad, f"claims.py imports {bad}: decisions are pure, I/O lives in kubernetes.py"
