"""Where the registry's snapshots come from: fixed, a manifest directory, or Kubernetes.

Why polling for the directory: it keeps ``lambdakube dev`` dependency-free and works on
every filesystem; a changed manifest is applied within ``interval`` seconds. An invalid
edit is logged and ignored (the last valid snapshot stays live) — only the *initial*
load refuses to start the router, so a typo never takes running functions down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from lambdakube_router.snapshot import ManifestError, Snapshot, load_directory, snapshot_fingerprint

log = logging.getLogger(__name__)


class Source(Protocol):
    async def initial(self) -> Snapshot: ...

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        """Call ``apply`` with each new snapshot; runs until cancelled."""


class StaticSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def initial(self) -> Snapshot:
        return self.snapshot

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        await asyncio.Event().wait()


class DirectorySource:
    def __init__(self, directory: str | Path, namespace: str, interval: float | None = 2.0) -> None:
        self.directory = Path(directory)
        self.namespace = namespace
        self.interval = interval
        self._fingerprint: tuple | None = None

    async def initial(self) -> Snapshot:
        self._fingerprint = snapshot_fingerprint(self.directory)
        return load_directory(self.directory, self.namespace)  # ManifestError propagates

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        interval = self.interval
        if not interval:
            await asyncio.Event().wait()
            return
        while True:
            await asyncio.sleep(interval)
            try:
                fp = snapshot_fingerprint(self.directory)
                if fp == self._fingerprint:
                    continue
                self._fingerprint = fp
                snap = load_directory(self.directory, self.namespace)
            except ManifestError as exc:
                log.error("manifests changed but are invalid; keeping the previous ones:\n%s", exc)
                continue
            except OSError as exc:
                log.error("cannot read %s: %s", self.directory, exc)
                continue
            log.info("manifests in %s changed; applying", self.directory)
            apply(snap)


class KubernetesSource:
    """Function and ConcurrencyQuota objects from the API server: list, then watch.

    Why a thread with the synchronous client: ``kubernetes_asyncio`` is not a dependency,
    and a watch is one long-lived blocking call. Each kind is watched in its own thread
    with an explicit server-side ``timeoutSeconds`` and a client-side read timeout (a
    silent watch stall is the most reported controller bug), re-listing on 410 Gone or
    any error. Every change produces a complete new Snapshot, applied on the event loop.
    The API server has already validated objects against the CRD schema; an object the
    pydantic models still reject is skipped with an error log.

    Reservations: the Snapshot carries each namespace's ``ConcurrencyQuota/default``
    *status* (``quota_status``) - the operator's decision, which the router applies
    instead of allocating itself (see ``limits``).
    """

    KINDS = (("functions", "Function"), ("concurrencyquotas", "ConcurrencyQuota"))

    def __init__(self, *, kubeconfig: str | None = None, namespaces: Sequence[str] = (),
                 api_client=None, watch_timeout: int = 60, retry_delay: float = 2.0) -> None:
        from kubernetes import client  # noqa: PLC0415

        from lambdakube import kubeclient  # noqa: PLC0415

        if api_client is None:
            api_client = kubeclient.api_client(kubeconfig)
        self.api = client.CustomObjectsApi(api_client)
        #: Watched namespaces; empty means the whole cluster. With several, each gets its
        #: own list/watch: a namespaced install has Roles per namespace, no cluster-wide read.
        self.namespaces = tuple(namespaces)
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self._objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for p, _ in self.KINDS}
        self._stop = False
        self._lock = threading.Lock()

    def _scopes(self) -> tuple[str | None, ...]:
        """What one list/watch covers: a namespace, or None for the whole cluster."""
        return self.namespaces or (None,)

    def _list_call(self, plural: str, namespace: str | None):
        """The API method and its positional arguments for one scope (list and watch)."""
        from lambdakube.models import GROUP, VERSION  # noqa: PLC0415

        if namespace:
            return self.api.list_namespaced_custom_object, (GROUP, VERSION, namespace, plural)
        return self.api.list_cluster_custom_object, (GROUP, VERSION, plural)

    def _list(self, plural: str, namespace: str | None) -> tuple[list[dict], str]:
        method, args = self._list_call(plural, namespace)
        out = method(*args, _request_timeout=30)
        return out.get("items", []), out["metadata"]["resourceVersion"]

    def _replace(self, plural: str, namespace: str | None, items: list[dict]) -> None:
        """A fresh listing of one scope replaces exactly that scope's objects."""
        with self._lock:
            kept = {k: o for k, o in self._objects[plural].items()
                    if namespace is not None and k[0] != namespace}
            kept.update((_key(o), o) for o in items)
            self._objects[plural] = kept

    def _snapshot(self) -> Snapshot:
        from pydantic import ValidationError  # noqa: PLC0415

        from lambdakube.models import QUOTA_OBJECT_NAME, ConcurrencyQuotaStatus  # noqa: PLC0415
        from lambdakube_router.snapshot import parse_documents  # noqa: PLC0415

        docs: list[dict] = []
        with self._lock:
            objects = {plural: list(objs.values()) for plural, objs in self._objects.items()}
        for plural, kind in self.KINDS:
            for obj in objects[plural]:
                docs.append({"apiVersion": obj.get("apiVersion"), "kind": kind,
                             "metadata": obj.get("metadata", {}), "spec": obj.get("spec") or {}})
        default_ns = self.namespaces[0] if self.namespaces else "default"
        snap, errors = parse_documents(docs, "kubernetes", default_ns)
        for err in errors:
            log.error("skipping invalid object: %s", err)
        # The operator decides reservations; its decision is the quota's status. A
        # namespace without one (no quota object, operator not run yet) stays out of the
        # map: its reservations are pending (limits.plan_from_status).
        snap.quota_status = {}
        for obj in objects["concurrencyquotas"]:
            meta = obj.get("metadata") or {}
            status = obj.get("status")
            if meta.get("name") != QUOTA_OBJECT_NAME or not status:
                continue
            try:
                snap.quota_status[meta.get("namespace", "")] = ConcurrencyQuotaStatus.model_validate(status)
            except ValidationError as exc:
                log.error("ConcurrencyQuota %s/%s: unreadable status, reservations stay pending: %s",
                          meta.get("namespace"), meta.get("name"), exc)
        return snap

    async def initial(self) -> Snapshot:
        for plural, _ in self.KINDS:
            for namespace in self._scopes():
                items, _rv = await asyncio.to_thread(self._list, plural, namespace)
                self._replace(plural, namespace, items)
        return self._snapshot()

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        loop = asyncio.get_running_loop()

        scheduled = threading.Event()  # a rebuild is queued: later events ride along

        def changed() -> None:
            scheduled.clear()
            apply(self._snapshot())

        def notify() -> None:
            # Function status writes (the operator's, the router's own status publisher)
            # come back as watch events too; coalescing keeps that to one rebuild per burst.
            if not scheduled.is_set():
                scheduled.set()
                loop.call_soon_threadsafe(changed)

        # Daemon threads, not the executor: a watch blocks for up to watch_timeout, and
        # the loop's shutdown must not wait for it.
        for plural, _ in self.KINDS:
            for namespace in self._scopes():
                threading.Thread(target=self._watch_forever, args=(plural, namespace, notify),
                                 daemon=True, name=f"watch-{plural}-{namespace or 'all'}").start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stop = True  # threads end at their next event or watch timeout

    def _watch_forever(self, plural: str, namespace: str | None,
                       notify: Callable[[], None]) -> None:
        import time  # noqa: PLC0415

        from kubernetes import watch  # noqa: PLC0415
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        scope = f"{plural} in {namespace or 'all namespaces'}"
        rv = None
        while not self._stop:
            try:
                if rv is None:
                    items, rv = self._list(plural, namespace)
                    self._replace(plural, namespace, items)
                    notify()
                w = watch.Watch()
                kwargs = dict(resource_version=rv, timeout_seconds=self.watch_timeout,
                              _request_timeout=self.watch_timeout + 10, allow_watch_bookmarks=True)
                method, args = self._list_call(plural, namespace)
                stream = w.stream(method, *args, **kwargs)
                for event in stream:
                    if self._stop:
                        w.stop()
                        return
                    obj = event["object"]
                    etype = event["type"]
                    if etype == "ERROR":
                        rv = None  # 410 Gone and friends: re-list
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if etype == "BOOKMARK":
                        continue
                    with self._lock:
                        if etype == "DELETED":
                            self._objects[plural].pop(_key(obj), None)
                        else:
                            self._objects[plural][_key(obj)] = obj
                    notify()
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning("watch %s failed: %s %s; retrying", scope, exc.status, exc.reason)
                rv = None
                time.sleep(self.retry_delay)
            except Exception as exc:  # network errors, read timeouts: re-list
                log.warning("watch %s failed: %s; retrying", scope, exc)
                rv = None
                time.sleep(self.retry_delay)


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")
