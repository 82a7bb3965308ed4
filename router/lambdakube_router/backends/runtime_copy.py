"""The runtime's code as local environments import it: a copy named by its content, its
bytecode compiled once.

Why: environments start with ``PYTHONDONTWRITEBYTECODE`` (a runtime must never write
``__pycache__`` next to a function's code, nor into a checkout it runs from), so every
fresh environment compiled the runtime's modules from source again: about 35 ms of each
cold start, the same work every time. Compiling into the package's own ``__pycache__``
would write into a checkout or a site-packages directory that may not be ours (or
writable), and a stale or foreign ``.pyc`` there would be used silently.

Instead, the backend copies the package once into ``<cache>/<key>/lambdakube_runtime``
and compiles it there with the interpreter the environments run (``compileall``). The
key is a hash of the package's sources and of that interpreter's path, so a changed
runtime or another Python gets a new directory and nothing is ever overwritten: a
directory is complete once it has its name (built under a temporary name, then renamed,
so routers sharing the cache never see half of one). Environments import from the copy
and only read it. Old keys are left behind (a few hundred KB each); nothing reads them.

When the cache cannot be written (a read-only home, a full disk) the environments import
the package where it is, from source, as before: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "lambdakube_runtime"
#: ``compileall`` must finish in this time (it takes a fraction of a second).
COMPILE_TIMEOUT_SECONDS = 60.0


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/lambdakube/runtime`` (``~/.cache/lambdakube/runtime``), next to
    what ``make`` caches there."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lambdakube" / "runtime"


def source_dir() -> Path | None:
    """The directory holding the ``lambdakube_runtime`` package (a checkout's
    ``runtime-image/`` or a site-packages directory); None if it is not importable."""
    try:
        import lambdakube_runtime  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the runtime is missing: the child will say so
        return None
    return Path(lambdakube_runtime.__file__).resolve().parents[1]


def content_key(package: Path, python: str) -> str:
    """A hash of every source file of ``package`` (names and bytes: its Python modules
    and the Node.js bootstrap, ``node/*.mjs``) and of ``python``'s real path."""
    digest = hashlib.sha256(os.path.realpath(python).encode() + b"\0")
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.mjs")]):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def prepare(python: str, source: Path, cache_root: Path) -> Path:
    """The directory to put first on the environments' ``sys.path``: a compiled copy of
    ``source / lambdakube_runtime`` under ``cache_root``, made now if it is missing.
    Blocking (file copies and a ``compileall`` process): call it off the event loop.
    Raises OSError or subprocess.SubprocessError when the copy cannot be made."""
    package = source / PACKAGE
    final = cache_root / content_key(package, python)
    if (final / PACKAGE).is_dir():
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_root))
    try:
        shutil.copytree(package, building / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run(
            [python, "-I", "-S", "-m", "compileall", "-q", str(building / PACKAGE)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=COMPILE_TIMEOUT_SECONDS,
        )
        building.chmod(0o755)  # mkdtemp made it private; environments of any user read it
        try:
            os.rename(building, final)
        except OSError:
            if not (final / PACKAGE).is_dir():  # not "another router was faster"
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


def prepare_or_source(python: str, cache_root: Path | None) -> Path | None:
    """``prepare``, or the package where it is (compiled on every start) when there is no
    cache or it cannot be written; None if the runtime is not importable at all."""
    source = source_dir()
    if source is None or cache_root is None:
        return source
    try:
        return prepare(python, source, cache_root)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or b""
        log.warning(
            "cannot compile the runtime under %s (%s: %s %s); environments compile it on every start",
            cache_root,
            type(exc).__name__,
            exc,
            detail.decode(errors="replace").strip()[:500] if isinstance(detail, bytes) else detail,
        )
        return source
