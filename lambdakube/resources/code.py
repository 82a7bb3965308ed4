"""How a Function's inline code reaches its environment: the runtime's ``POST /init`` body.

Every environment of an inline-code function starts the runtime without a function
(as a generic environment does) and receives its code, handler and configuration in one
``POST /init``: from the router for its cold starts (fresh pods and claimed generic
pods, and every local process), from the operator for its provisioned pods. One way in,
whoever starts the environment.

Why not a ConfigMap volume (the first design): on a real node with the Node authorizer
(every production cluster) the kubelet may read a ConfigMap only once the authorizer's
graph links the pod to it, and under a burst of new pods the kubelet's first read races
that graph: ``failed to sync configmap cache: timed out waiting for the condition``,
then a mount retry 0.5–2 s later on most pods of a 50-Function burst. A body sent to the
runtime needs no API object, no RBAC and no volume, and has no size limit short of the
Function object itself (``LAMBDAKUBE_INLINE_CODE`` would have one: Linux caps a single
environment string at 128 KiB, MAX_ARG_STRLEN, and inline source may be 256 Ki chars).

Functions whose code is in their image (``spec.image``, no ``code``) still start with
their configuration in the environment and need no ``/init``.
"""

from __future__ import annotations

import json

from lambdakube.models import FunctionSpec

#: The mutable head's ``functionVersion``.
LATEST = "$LATEST"


#: ``spec.env`` names read when a process starts, before any code runs (the interpreter,
#: the dynamic loader, glibc's malloc, the runtime's own configuration): setting them in
#: ``/init`` would be too late, so such functions never go to a pre-started generic
#: environment (their own pods and processes have them from the start).
STARTUP_ENV_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_", "LAMBDAKUBE_")


def needs_fresh_process(spec: FunctionSpec) -> bool:
    """True when the function's variables must be present at interpreter start: some of
    ``spec.env`` is read there, or some variable comes from a Secret or ConfigMap
    (``envValueFrom``/``envFrom``). A pre-started generic environment gets variables
    only through ``POST /init``, and that body never carries a referenced value: only
    the function's own pod or process has them, from where it starts (the kubelet, the
    local backend's spawn)."""
    return spec.has_env_refs or any(k.startswith(STARTUP_ENV_PREFIXES) for k in spec.env)


def own_variables(spec: FunctionSpec) -> dict[str, str]:
    """The function's own variables as its environment starts with them: all of
    ``spec.env`` but the runtime's configuration (``LAMBDAKUBE_*``), which would break
    the environment or turn one that waits for its code into one that starts without it."""
    return {k: v for k, v in sorted(spec.env.items()) if not k.startswith("LAMBDAKUBE_")}


def needs_init(spec: FunctionSpec) -> bool:
    """True when environments of ``spec`` get their code through ``POST /init``."""
    return spec.code is not None


def init_body(function_name: str, namespace: str, spec: FunctionSpec, version: str = LATEST) -> dict:
    """The runtime's ``POST /init`` body (``lambdakube_runtime.config.from_init_body``
    parses it; unknown fields are refused there, so both sides change together).
    ``version``: ``$LATEST`` or a published version's number (``context.function_version``)."""
    if spec.code is None:
        raise ValueError(f"{namespace}/{function_name}: code is in the image; there is nothing to send")
    body = {
        "handler": spec.handler,
        "inlineCode": spec.code.inline.source,
        "inlineModule": spec.code.inline.module,
        "codeDir": None,
        "functionName": function_name,
        "functionVersion": version,
        "memoryMb": spec.resources.memory_size,
        "timeoutSeconds": spec.timeout_seconds,
        # The function's own variables. A pod of the function has them from its start
        # as well; a claimed generic pod or a generic local process gets them only here,
        # which is why functions with interpreter-start variables never go generic.
        # Only the literal ``env``: values of ``envValueFrom``/``envFrom`` never leave
        # the environment's own start (``needs_fresh_process``), so they are not here.
        "env": dict(spec.env),
        "namespace": namespace,
    }
    # Lambda's runtime and the inline file's name, only when set: a runtime image older
    # than these fields refuses unknown ones, and the built-in path needs neither.
    if spec.runtime:
        body["runtime"] = spec.runtime
    if spec.code.inline.filename:
        body["inlineFilename"] = spec.code.inline.filename
    if spec.per_environment_concurrency > 1:
        body["maxConcurrency"] = spec.per_environment_concurrency
    return body


def runtime_answer(body: bytes) -> dict:
    """A runtime's JSON answer (``/init``, ``/readyz``) as a dict; anything else
    (broken, not an object) as {}."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def init_error_message(who: str, answer: dict) -> str:
    """``InitError``-style text of a runtime's error answer (``/init``'s 500 or
    ``/readyz``'s ``init_failed``): errorType, errorMessage and stack. The same text
    reaches the invoker, the pod's ``init-error`` annotation and InitFailed."""
    err = answer.get("error") or {}
    kind = err.get("errorType", "Runtime.Unknown")
    msg = err.get("errorMessage", "the runtime reported init_failed without details")
    text = f"{who}: Init failed: {kind}: {msg}"
    stack = err.get("stackTrace")
    if isinstance(stack, list) and stack:
        text += "\n" + "".join(str(s) if str(s).endswith("\n") else f"{s}\n" for s in stack).rstrip()
    return text
