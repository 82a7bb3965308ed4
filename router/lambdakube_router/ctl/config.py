"""Where the router is and who we are: flags, then the environment, then ``make dev``'s defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: ``make dev`` / ``lambdakube dev``: the router on loopback, no authentication.
DEFAULT_URL = "http://127.0.0.1:9000"
DEFAULT_NAMESPACE = "default"
URL_ENV = "LAMBDAKUBE_ROUTER_URL"
TOKEN_ENV = "LAMBDAKUBE_TOKEN"
NAMESPACE_ENV = "LAMBDAKUBE_NAMESPACE"


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    namespace: str


def resolve(*, url: str | None, token: str | None, namespace: str | None, environ: Mapping[str, str]) -> Target:
    """The first of: the flag, the variable, the default. An empty value counts as unset."""
    return Target(
        url=(url or environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"),
        token=token or environ.get(TOKEN_ENV) or None,
        namespace=namespace or environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE,
    )
