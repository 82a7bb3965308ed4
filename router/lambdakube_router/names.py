"""How a caller names a function: ``FunctionName`` of the Invoke API, parsed once.

Pure (no aiohttp), because two readers must agree on it: ``invoke_api`` finds the
function by it, and ``access`` asks for the right to invoke that same function. A name
read two ways would let a caller be authorized for one function and run another.
"""

from __future__ import annotations

ARN_PREFIX = "lambdakube:"
#: The one version that exists: an unqualified name means it, as in Lambda.
LATEST = "$LATEST"


class BadFunctionName(ValueError):
    pass


def parse_function_name(raw: str, header_namespace: str | None, default_namespace: str) -> tuple[str, str, str | None]:
    """Returns (namespace, name, qualifier from the ARN or None).

    ``FunctionName`` is a plain ``name`` (namespace from the ``X-Lambdakube-Namespace``
    header, else the router's default) or ``lambdakube:<namespace>:function:<name>``,
    optionally with a ``:<qualifier>`` suffix; an ARN's namespace wins over the header.
    """
    if raw.startswith(ARN_PREFIX):
        parts = raw.split(":")
        if len(parts) not in (4, 5) or parts[2] != "function" or not parts[1] or not parts[3]:
            raise BadFunctionName(f"invalid function ARN {raw!r}: expected lambdakube:<namespace>:function:<name>")
        return parts[1], parts[3], parts[4] if len(parts) == 5 else None
    if ":" in raw or "/" in raw or not raw:
        raise BadFunctionName(f"invalid function name {raw!r}: use <name> or lambdakube:<namespace>:function:<name>")
    return header_namespace or default_namespace, raw, None
