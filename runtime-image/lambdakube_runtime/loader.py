"""Init phase: make the function's code importable, import it, resolve the handler.

This runs exactly once per environment (on the worker thread, see ``worker.py``), which
is what makes module-level state - SDK clients, caches, a connection pool - survive from
one invocation to the next, as in Lambda. Its duration is the "Init Duration" reported
on the cold-start invocation.

Failures never crash the process: they become an ``InitError`` carrying the same error
types Lambda uses (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``,
``Runtime.UserCodeSyntaxError``, ...; an exception raised by the module's own code keeps
its class name), which the server reports on ``/readyz`` and to every ``/invoke``.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable

from .config import FunctionConfig
from .errors import format_stack

#: Temporary directories holding inline code, removed when the process exits cleanly.
inline_dirs: list[str] = []


class InitError(Exception):
    def __init__(self, error_type: str, message: str, stack_trace: list[str] | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []

    def to_dict(self) -> dict:
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.stack_trace}


def _split_handler(handler: str) -> tuple[str, str]:
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not all(part.isidentifier() for part in handler.split(".")):
        raise InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': expected 'module.function' (module may be dotted, e.g. 'pkg.mod.fn')",
        )
    return module_name, function_name


def _temp_roots() -> list[str]:
    """Where ``tempfile.gettempdir()`` looks, in its order: ``$TMPDIR``, ``$TEMP``,
    ``$TMP``, /tmp, /var/tmp, /usr/tmp, the working directory."""
    roots = [d for d in (os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")) if d]
    roots += ["/tmp", "/var/tmp", "/usr/tmp"]
    try:
        roots.append(os.getcwd())
    except OSError:  # the working directory was removed
        pass
    return roots


def _write_private(name: str, text: str) -> str:
    """Write ``text`` to ``name`` in a new directory only this user may enter (mode
    0700), in the first of ``_temp_roots`` where that works; the directory.

    Why not tempfile: importing it (shutil, random and their compression modules) is a
    few milliseconds of every inline-code Init, which is on the cold start's path; a
    random name from ``os.urandom`` and ``mkdir`` need nothing. Like tempfile, a root
    that cannot take the file (missing, read-only, a full disk) is skipped: the code is
    written where it can be."""
    error: OSError | None = None
    for root in _temp_roots():
        directory = os.path.join(root, "lambdakube-inline-" + os.urandom(8).hex())
        try:
            os.mkdir(directory, 0o700)
        except OSError as exc:  # a clash of 64 random bits is not expected: next root either way
            error = exc
            continue
        try:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(text)
            return directory
        except OSError as exc:
            error = exc
            _remove_tree(directory)
    assert error is not None
    raise error


def _remove_tree(directory: str) -> None:
    import shutil  # noqa: PLC0415 - only on failures and at exit

    shutil.rmtree(directory, ignore_errors=True)


def _write_inline_code(config: FunctionConfig) -> str:
    if not config.inline_module.isidentifier():
        raise InitError(
            "Runtime.InvalidInlineModule",
            f"inline module name '{config.inline_module}' is not a valid Python module name",
        )
    directory = _write_private(config.inline_module + ".py", config.inline_code or "")
    inline_dirs.append(directory)
    return directory


def write_inline_file(config: FunctionConfig, filename: str) -> str:
    """A Runtime API runtime's inline code (``runtimes.inline_filename``: a Node.js
    module, a ``bootstrap``) in a new private directory, its task root; a ``bootstrap``
    is made executable."""
    directory = _write_private(filename, config.inline_code or "")
    inline_dirs.append(directory)
    if filename == "bootstrap":
        os.chmod(os.path.join(directory, filename), 0o700)
    return directory


def load(config: FunctionConfig) -> Callable:
    """Import the handler module and return the handler. Raises ``InitError``."""
    module_name, function_name = _split_handler(config.handler)
    if config.code_dir:
        if not os.path.isdir(config.code_dir):
            raise InitError(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_name}': code directory '{config.code_dir}' does not exist",
            )
        sys.path.insert(0, config.code_dir)
    if config.inline_code:
        sys.path.insert(0, _write_inline_code(config))
    importlib.invalidate_caches()

    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f'  File "{exc.filename}" Line {exc.lineno}\n    {(exc.text or "").strip()}\n'
        raise InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", [where]
        ) from None
    except ImportError as exc:
        raise InitError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
            format_stack(exc.__traceback__),
        ) from None
    except SystemExit as exc:
        raise InitError(
            "Runtime.ExitError",
            f"module '{module_name}' called sys.exit({exc.code!r}) during Init",
            format_stack(exc.__traceback__),
        ) from None
    except BaseException as exc:  # the module's own code failed: keep its error type
        raise InitError(type(exc).__name__, str(exc), format_stack(exc.__traceback__)) from None

    handler = getattr(module, function_name, None)
    if handler is None:
        raise InitError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    if not callable(handler):
        raise InitError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' on module '{module_name}' is not callable"
        )
    return handler


def timed_load(config: FunctionConfig) -> tuple[Callable | None, InitError | None, float]:
    """``load`` plus its duration in ms; never raises (runs on the worker thread)."""
    start = time.perf_counter()
    try:
        handler, error = load(config), None
    except InitError as exc:
        handler, error = None, exc
    return handler, error, (time.perf_counter() - start) * 1000.0


def remove_inline_dirs() -> None:
    for directory in inline_dirs:
        _remove_tree(directory)
