"""The variables the runtime reads for its own configuration, blanked where a Function's
``envFrom`` could otherwise set them.

Why: validation refuses ``LAMBDAKUBE_*`` names in ``env``/``envValueFrom`` and as an
``envFrom`` prefix, but it cannot see a Secret's or ConfigMap's keys. A key named
``LAMBDAKUBE_HANDLER`` in a referenced Secret would start an inline-code pod's runtime
as if its code were in the image, ``LAMBDAKUBE_IDENTITY_TOKEN_FILE`` would make it serve
a file of the Secret's choosing as credentials. In a Pod, ``env`` wins over
``envFrom``, and the runtime treats an empty value as unset: so a pod with ``envFrom``
gets every one of these that it does not set itself, empty.

The runtime (stdlib only) spells the names itself; ``tests/unit`` checks that this set
is exactly the ``LAMBDAKUBE_*`` names its sources read.
"""

from __future__ import annotations

VARIABLES = frozenset(
    {
        "LAMBDAKUBE_ANNOUNCE_TOKEN",
        "LAMBDAKUBE_ANNOUNCE_URL",
        "LAMBDAKUBE_CODE_DIR",
        "LAMBDAKUBE_ENV_ID",
        "LAMBDAKUBE_ENV_TOKEN",
        "LAMBDAKUBE_FUNCTION_NAME",
        "LAMBDAKUBE_FUNCTION_VERSION",
        "LAMBDAKUBE_HANDLER",
        "LAMBDAKUBE_IDENTITY_TOKEN_FILE",
        "LAMBDAKUBE_INLINE_CODE",
        "LAMBDAKUBE_INLINE_FILENAME",
        "LAMBDAKUBE_INLINE_MODULE",
        "LAMBDAKUBE_MAX_CONCURRENCY",
        "LAMBDAKUBE_MEMORY_MB",
        "LAMBDAKUBE_NAMESPACE",
        "LAMBDAKUBE_NODE",
        "LAMBDAKUBE_NODE_RIC",
        "LAMBDAKUBE_PARENT_FD",
        "LAMBDAKUBE_POD_IP",
        "LAMBDAKUBE_READY_FD",
        "LAMBDAKUBE_RUNTIME",
        "LAMBDAKUBE_TIMEOUT_SECONDS",
        "LAMBDAKUBE_UNHEALTHY_EXIT_DELAY_SECONDS",
    }
)


def blanks(env: list[dict]) -> list[dict]:
    """Empty values for the runtime's variables ``env`` does not set (sorted: stable)."""
    present = {var["name"] for var in env}
    return [{"name": name, "value": ""} for name in sorted(VARIABLES - present)]
