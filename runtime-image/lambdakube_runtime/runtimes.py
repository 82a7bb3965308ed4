"""Which runtime a function names, and what the process of a Runtime API runtime gets.

Pure functions (``tests/runtime/test_runtimes.py`` has their tables); ``runtime_api``
is the driver that spawns the process and serves it.

Two kinds of runtime:

* **built-in** (``python3.x``, the default): the handler runs inside this process, on
  the worker thread (``loader``, ``invoker``): no second process, no extra hop, the
  fastest warm invoke and cold start;
* **Runtime API** (``provided``, ``provided.al2``, ``provided.al2023``, ``nodejs*``):
  Lambda's contract with a runtime, version 2018-06-01. The function's runtime is a
  child process that pulls invocations from ``AWS_LAMBDA_RUNTIME_API`` on loopback, so
  every official runtime interface client (awslambdaric, aws-lambda-ric, aws-lambda-go)
  and any ``bootstrap`` executable runs unchanged.

The child's environment is Lambda's (the variables its runtime clients read), on top of
the environment's own (the function's ``env``, the credentials endpoint): see
``lambda_variables``.
"""

from __future__ import annotations

import os
import time

#: The built-in path's runtimes: what ``runtime`` may say for today's in-process Python.
BUILTIN_PREFIX = "python3."
#: ``provided`` family: a ``bootstrap`` executable in the code (Lambda's custom runtime).
PROVIDED = ("provided", "provided.al2", "provided.al2023")
#: Node.js: our plain-JavaScript Runtime API client (``node/bootstrap.mjs``) loads the
#: handler module (``index.mjs``, ``index.js``, ...) unmodified.
NODEJS_PREFIX = "nodejs"
#: The runtime when a function names none.
DEFAULT = "python3.12"
#: Where our Node.js bootstrap is, next to this package's modules.
NODE_BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "bootstrap.mjs")
#: ``LAMBDAKUBE_NODE``: the node binary (default: ``node`` on PATH).
NODE_VARIABLE = "LAMBDAKUBE_NODE"
#: ``LAMBDAKUBE_NODE_RIC``: Lambda's own Node.js client (aws-lambda-ric's ``index.mjs``,
#: a native build: ``make node-ric``) to run instead of our bootstrap, where installed.
NODE_RIC_VARIABLE = "LAMBDAKUBE_NODE_RIC"
#: Lambda's default region when the environment sets none.
DEFAULT_REGION = "us-east-1"


class UnknownRuntime(ValueError):
    pass


def is_builtin(runtime: str) -> bool:
    """True for the in-process Python path (``""`` is the default, ``python3.x``)."""
    return not runtime or runtime.startswith(BUILTIN_PREFIX)


def check(runtime: str) -> str:
    """``runtime`` if this runtime knows it; raises ``UnknownRuntime`` otherwise."""
    if is_builtin(runtime) or runtime in PROVIDED or _is_node(runtime):
        return runtime
    raise UnknownRuntime(
        f"unknown runtime {runtime!r}: expected python3.x, nodejs<N>.x, provided, provided.al2 or provided.al2023"
    )


def _is_node(runtime: str) -> bool:
    version = runtime.removeprefix(NODEJS_PREFIX)
    return version != runtime and version.endswith(".x") and version[:-2].isdigit()


def inline_filename(runtime: str, module: str, filename: str | None = None) -> str:
    """The file inline source is saved as: ``filename`` if given, else ``<module>.py``
    (Python), ``<module>.mjs`` (Node.js: an ES module, so ``export const handler``
    works; ``exports.handler`` needs ``filename: index.js``) or ``bootstrap``
    (``provided``: the source is the bootstrap itself, made executable)."""
    if filename:
        return filename
    if is_builtin(runtime):
        return module + ".py"
    if _is_node(runtime):
        return module + ".mjs"
    return "bootstrap"


def command(runtime: str, task_root: str, environ: dict[str, str]) -> list[str]:
    """The child process's argv for a Runtime API runtime."""
    if _is_node(runtime):
        node = environ.get(NODE_VARIABLE) or "node"
        ric = environ.get(NODE_RIC_VARIABLE)
        return [node, ric, environ.get("_HANDLER", "")] if ric else [node, NODE_BOOTSTRAP]
    if runtime in PROVIDED:
        return [os.path.join(task_root, "bootstrap")]
    raise UnknownRuntime(f"runtime {runtime!r} runs in-process, not through the Runtime API")


def log_stream_name(env_id: str, version: str, now: float) -> str:
    """Lambda's ``2024/05/01/[$LATEST]<id>``: the day the environment started, its
    version, its id (here the environment's own, as ``context.log_stream_name``)."""
    return time.strftime("%Y/%m/%d/", time.gmtime(now)) + f"[{version}]{env_id}"


#: Variables of the environment that are the supervisor's alone, never the child's: the
#: pipes to the router and the announce/env tokens.
PRIVATE_VARIABLES = (
    "LAMBDAKUBE_PARENT_FD",
    "LAMBDAKUBE_READY_FD",
    "LAMBDAKUBE_ENV_TOKEN",
    "LAMBDAKUBE_ANNOUNCE_TOKEN",
    "LAMBDAKUBE_INLINE_CODE",
)


def lambda_variables(
    *,
    runtime: str,
    function_name: str,
    function_version: str,
    memory_mb: int,
    namespace: str,
    handler: str,
    task_root: str,
    env_id: str,
    api_address: str | None,
    environ: dict[str, str],
    now: float,
    max_concurrency: int = 1,
) -> dict[str, str]:
    """Lambda's reserved variables for one environment (``api_address`` None: the
    built-in path, which has no Runtime API). The function's own ``AWS_REGION`` and
    ``TZ`` win (Lambda reserves them; here a function may need another region)."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    variables = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/lambdakube/{namespace}/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(env_id, function_version, now),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime or DEFAULT}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": environ.get("AWS_DEFAULT_REGION") or region,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.abspath(__file__)),
        "TZ": environ.get("TZ") or ":UTC",
    }
    if api_address is not None:
        variables["AWS_LAMBDA_RUNTIME_API"] = api_address
    if max_concurrency > 1:  # Lambda Managed Instances': that many concurrent /next
        variables["AWS_LAMBDA_MAX_CONCURRENCY"] = str(max_concurrency)
    return variables


def child_environ(environ: dict[str, str], variables: dict[str, str]) -> dict[str, str]:
    """The child's whole environment: the environment's own minus the supervisor's
    private variables, then Lambda's."""
    child = {k: v for k, v in environ.items() if k not in PRIVATE_VARIABLES}
    child.update(variables)
    return child
