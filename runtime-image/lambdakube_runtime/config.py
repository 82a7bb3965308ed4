"""Function configuration, read from ``LAMBDAKUBE_*`` variables or a ``POST /init`` body.

Both sources produce the same ``FunctionConfig`` so a pre-warmed (generic) environment
that is specialised over HTTP behaves exactly like one started with its function in the
environment. Parsing is strict: a misspelt field or a non-numeric memory size is an
operator bug, and failing loudly at start beats silently running with a default timeout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .runtimes import UnknownRuntime, check, is_builtin

DEFAULT_VERSION = "$LATEST"
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_NAMESPACE = "default"
DEFAULT_INLINE_MODULE = "index"
DEFAULT_FUNCTION_NAME = "unnamed"


#: ``lambdakube.models.MAX_PER_ENVIRONMENT_CONCURRENCY`` (stdlib only here; a test
#: checks that they agree).
MAX_CONCURRENCY = 64


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FunctionConfig:
    handler: str
    code_dir: str | None = None
    inline_code: str | None = None
    inline_module: str = DEFAULT_INLINE_MODULE
    function_name: str = DEFAULT_FUNCTION_NAME
    function_version: str = DEFAULT_VERSION
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    namespace: str = DEFAULT_NAMESPACE
    #: ``""``/``python3.x``: the built-in path; else a Runtime API runtime (``runtimes``).
    runtime: str = ""
    #: The file inline code is saved as (default: ``runtimes.inline_filename``).
    inline_filename: str | None = None
    #: Invocations at once (``perEnvironmentConcurrency``; above 1 for a Runtime API
    #: runtime only: its child gets ``AWS_LAMBDA_MAX_CONCURRENCY`` concurrent ``/next``).
    max_concurrency: int = 1

    def checked(self) -> FunctionConfig:
        """Refuse what the router's validation refuses too (a bug upstream otherwise)."""
        if self.max_concurrency > 1 and is_builtin(self.runtime):
            raise ConfigError(
                f"maxConcurrency {self.max_concurrency} needs a Runtime API runtime;"
                " the built-in python path runs one invocation at a time"
            )
        if self.max_concurrency > MAX_CONCURRENCY:
            raise ConfigError(f"maxConcurrency must be at most {MAX_CONCURRENCY}, got {self.max_concurrency}")
        return self

    def export(self, environ: os._Environ | dict) -> None:
        """Mirror the config into ``LAMBDAKUBE_*`` so handler code sees the same variables
        whether the environment was specialised at start or via ``/init``."""
        environ["LAMBDAKUBE_HANDLER"] = self.handler
        environ["LAMBDAKUBE_FUNCTION_NAME"] = self.function_name
        environ["LAMBDAKUBE_FUNCTION_VERSION"] = self.function_version
        environ["LAMBDAKUBE_MEMORY_MB"] = str(self.memory_mb)
        environ["LAMBDAKUBE_TIMEOUT_SECONDS"] = f"{self.timeout_seconds:g}"
        environ["LAMBDAKUBE_NAMESPACE"] = self.namespace
        environ["LAMBDAKUBE_RUNTIME"] = self.runtime
        environ["LAMBDAKUBE_MAX_CONCURRENCY"] = str(self.max_concurrency)


def _positive_int(name: str, value: object) -> int:
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if type(number) is not int or number <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return number


def _positive_float(name: str, value: object) -> float:
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(number)


def _non_empty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _runtime(name: str, value: object) -> str:
    try:
        return check(_non_empty(name, value))
    except UnknownRuntime as exc:
        raise ConfigError(str(exc)) from None


def _filename(name: str, value: object) -> str:
    text = _non_empty(name, value)
    if "/" in text or text in (".", "..") or "\0" in text:
        raise ConfigError(f"{name} must be a plain file name, got {value!r}")
    return text


def _valid_env_item(name: object, value: object) -> bool:
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and bool(name)
        and "=" not in name
        and "\0" not in name
        and "\0" not in value
    )


def from_environ(environ: Mapping[str, str]) -> FunctionConfig | None:
    """The function named by the environment, or None for a generic environment."""
    handler = environ.get("LAMBDAKUBE_HANDLER", "")
    if not handler:
        return None
    return FunctionConfig(
        handler=handler,
        code_dir=environ.get("LAMBDAKUBE_CODE_DIR") or None,
        inline_code=environ.get("LAMBDAKUBE_INLINE_CODE") or None,
        inline_module=environ.get("LAMBDAKUBE_INLINE_MODULE") or DEFAULT_INLINE_MODULE,
        function_name=environ.get("LAMBDAKUBE_FUNCTION_NAME") or DEFAULT_FUNCTION_NAME,
        function_version=environ.get("LAMBDAKUBE_FUNCTION_VERSION") or DEFAULT_VERSION,
        memory_mb=_positive_int("LAMBDAKUBE_MEMORY_MB", environ.get("LAMBDAKUBE_MEMORY_MB") or DEFAULT_MEMORY_MB),
        timeout_seconds=_positive_float(
            "LAMBDAKUBE_TIMEOUT_SECONDS", environ.get("LAMBDAKUBE_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS
        ),
        namespace=environ.get("LAMBDAKUBE_NAMESPACE") or DEFAULT_NAMESPACE,
        runtime=_runtime("LAMBDAKUBE_RUNTIME", environ["LAMBDAKUBE_RUNTIME"])
        if environ.get("LAMBDAKUBE_RUNTIME")
        else "",
        inline_filename=environ.get("LAMBDAKUBE_INLINE_FILENAME") or None,
        max_concurrency=_positive_int("LAMBDAKUBE_MAX_CONCURRENCY", environ.get("LAMBDAKUBE_MAX_CONCURRENCY") or 1),
    ).checked()


_INIT_FIELDS = {
    "handler",
    "inlineCode",
    "inlineModule",
    "codeDir",
    "functionName",
    "functionVersion",
    "memoryMb",
    "timeoutSeconds",
    "env",
    "namespace",
    "runtime",
    "inlineFilename",
    "maxConcurrency",
}


def from_init_body(body: object) -> tuple[FunctionConfig, dict[str, str]]:
    """Parse a ``POST /init`` body into the config and the extra environment variables.

    ``null`` means "default" for every optional field; unknown fields are rejected so a
    router/runtime field-name mismatch shows up as a 400 instead of a silent default.
    """
    if not isinstance(body, dict):
        raise ConfigError("the /init body must be a JSON object")
    unknown = sorted(set(body) - _INIT_FIELDS)
    if unknown:
        raise ConfigError(f"unknown /init fields: {', '.join(unknown)}")

    def opt(key: str, default, check):
        value = body.get(key)
        return default if value is None else check(key, value)

    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(_valid_env_item(k, v) for k, v in env.items()):
        raise ConfigError("env must be an object of variable names (no '=' or NUL) to string values (no NUL)")
    config = FunctionConfig(
        handler=_non_empty("handler", body.get("handler")),
        code_dir=opt("codeDir", None, _non_empty),
        inline_code=opt("inlineCode", None, _non_empty),
        inline_module=opt("inlineModule", DEFAULT_INLINE_MODULE, _non_empty),
        function_name=opt("functionName", DEFAULT_FUNCTION_NAME, _non_empty),
        function_version=opt("functionVersion", DEFAULT_VERSION, _non_empty),
        memory_mb=opt("memoryMb", DEFAULT_MEMORY_MB, _positive_int),
        timeout_seconds=opt("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS, _positive_float),
        namespace=opt("namespace", DEFAULT_NAMESPACE, _non_empty),
        runtime=opt("runtime", "", _runtime),
        inline_filename=opt("inlineFilename", None, _filename),
        max_concurrency=opt("maxConcurrency", 1, _positive_int),
    ).checked()
    return config, dict(env)
