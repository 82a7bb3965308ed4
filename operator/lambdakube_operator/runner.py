"""Run the operator: build the API client, the reconciler and the kopf registry from an
``OperatorConfig`` and hand them to ``kopf.operator``.

Used by ``__main__`` and by the tests, which run it in a background thread with a
``stop_flag`` (a ``threading.Event``) against the test API server.
"""

from __future__ import annotations

import asyncio
import threading

import kopf

from lambdakube.kubeclient import api_client

from .kube_api import Cruds
from .handlers import build_registry
from .reconcile import Reconciler
from .settings import OperatorConfig


async def run(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    if not config.namespaces and not config.all_namespaces:
        raise ValueError("serve some namespaces (--namespace) or the whole cluster (--all-namespaces)")
    cruds = Cruds(api_client(config.kubeconfig))
    reconciler = Reconciler(config, cruds)
    registry, _ = build_registry(config, cruds, reconciler)
    liveness = f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
    try:
        await kopf.operator(
            registry=registry,
            settings=config.kopf_settings(),
            clusterwide=config.all_namespaces,
            namespaces=list(config.namespaces),
            standalone=True,  # one replica (Recreate); no peering CRDs needed
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(config=config, reconciler=reconciler),
        )
    finally:
        await reconciler.initializer.close()
        cruds.close()
