"""One way to get a Kubernetes API client, shared by the operator and the router.

A kubeconfig path wins; without one, the in-cluster ServiceAccount (the chart's pods),
then $KUBECONFIG / ~/.kube/config (a developer's shell). Each client gets its own
Configuration object, so two clients in one process (tests run operator and router
side by side) never share credentials by accident.
"""

from __future__ import annotations

import kubernetes
from kubernetes.client import ApiClient

#: Connections kept per client: cold starts and reconcile passes run API calls in
#: parallel worker threads, and urllib3's default of 10 would serialise them.
CONNECTION_POOL_SIZE = 32


def api_client(kubeconfig: str | None = None) -> ApiClient:
    config = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    else:
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=config)
    config.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return ApiClient(config)


def authorization(cfg: kubernetes.client.Configuration) -> str | None:
    """The ``Authorization`` header value of a client configuration (``Bearer <token>``),
    for callers that speak to the apiserver without the official client (kopf's login,
    the router's pod watch). The in-cluster token is re-read through the client's refresh
    hook first, so a rotated ServiceAccount token is picked up."""
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    return cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
