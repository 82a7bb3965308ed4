"""Where the router is and who we are: flags, then the environment, then the kubeconfig's
current context (``ctl.kubeconfig``), then ``make dev``'s defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


@dataclass(frozen=True)
class FromKubeconfig:
    """What the kubeconfig gives (``ctl.kubeconfig``): its token is asked for only if needed."""

    router: str
    namespace: str | None
    token: Callable[[], str | None]


def resolve(
    *,
    url: str | None,
    token: str | None,
    namespace: str | None,
    environ: Mapping[str, str],
    kubeconfig: Callable[[], FromKubeconfig | None] = lambda: None,
) -> Target:
    """The first of: the flag, the variable, the kubeconfig, the default. An empty value
    counts as unset. The kubeconfig is read only when neither flag nor variable names the
    router, and its namespace and token count only for the router it names."""
    url = url or environ.get(URL_ENV) or None
    token = token or environ.get(TOKEN_ENV) or None
    namespace = namespace or environ.get(NAMESPACE_ENV) or None
    kube = kubeconfig() if url is None else None
    if kube is not None:
        url = kube.router
        namespace = namespace or kube.namespace
        token = token or kube.token()
    return Target(url=(url or DEFAULT_URL).rstrip("/"), token=token, namespace=namespace or DEFAULT_NAMESPACE)
