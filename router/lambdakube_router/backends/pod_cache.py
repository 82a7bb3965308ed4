"""The router's watch-fed picture of the environment pods: one list + watch per served
namespace (or one cluster-wide), kept current by the watch's events.

Why: claiming a provisioned or generic pod, and knowing which pods the operator marked
draining, used to LIST pods - every 50-500 ms while waiting for a provisioned pod, once
per generic cold start, and every namespace once a second for draining. The cache
answers those from memory, and a waiter wakes on the change itself
(``next_change``), as Knative's listers and KEDA's ready cache do.

The list/watch protocol is ``lambdakube_router.informer``'s; this module only says which
pods (those labelled ``lambdakube.dev/role``: environments) and how the backend reads
them (``select`` by labels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import aiohttp

from lambdakube.resources import labels
from lambdakube.resources.podview import is_terminating
from lambdakube_router.informer import Informer, Key

#: Server-side timeout of one watch request (then it is resumed from the last version).
WATCH_SECONDS = 60

__all__ = ["WATCH_SECONDS", "Key", "PodCache"]


class PodCache(Informer):
    def __init__(
        self, http: Callable[[], aiohttp.ClientSession], configuration, namespaces: Iterable[str] = ()
    ) -> None:
        """``http``: the shared session factory (an ``informer.ApiSession``: TLS and timeouts set
        up once); ``namespaces``: the served ones, empty for the whole cluster."""
        super().__init__(
            http,
            configuration,
            api="/api/v1",
            plural="pods",
            namespaces=namespaces,
            label_selector=labels.ROLE,
            watch_seconds=WATCH_SECONDS,
        )

    @property
    def pods(self) -> dict[Key, dict]:
        """Every cached environment pod by (namespace, name)."""
        return self.objects

    def select(self, namespace: str, **wanted: str | None) -> list[dict]:
        """Live pods of ``namespace`` whose labels match ``wanted`` (label -> value; None:
        the label must be absent)."""
        out = []
        for (ns, _), pod in self.pods.items():
            if ns != namespace or is_terminating(pod):
                continue
            have = (pod.get("metadata") or {}).get("labels") or {}
            if all(have.get(k) == v if v is not None else k not in have for k, v in wanted.items()):
                out.append(pod)
        return out
