"""The per-environment token: an environment's runtime serves ``/init`` and ``/invoke``
only to a caller that shows it.

Why: a runtime listens on its pod's IP (or a local port), and anything that reaches it,
another function's handler included, could otherwise run code in it (``/init`` on a
generic pod) or invoke it past every quota and authorization check. Each environment
gets a random token when its pod (or process) is created; only the creators (router,
operator) and whoever may read the pod's spec know it, and they send it as
``X-Env-Token``. The kubelet's probes (``/healthz``, ``/readyz``) stay open. A generic
pod gets its token at creation too, so ``/init`` never carries one.

The runtime (stdlib only, it cannot import this package) spells the two names itself;
``tests/runtime`` checks that they agree.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

VARIABLE = "LAMBDAKUBE_ENV_TOKEN"
HEADER = "X-Env-Token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_of(pod: Mapping) -> str:
    """The token in a pod's runtime container (``""`` for a pod without one)."""
    for container in (pod.get("spec") or {}).get("containers") or ():
        for var in container.get("env") or ():
            if var.get("name") == VARIABLE:
                return str(var.get("value") or "")
    return ""
