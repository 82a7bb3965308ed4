"""Where the registry's snapshots come from: fixed, a manifest directory, or Kubernetes.

The Kubernetes source is a driver over two informers (``informer``) and a pure table
(``ParsedObjects``) that keeps each watched object's parsed contribution and decides
whether a change is one the Snapshot carries.

Why polling for the directory: it keeps ``lambdakube dev`` dependency-free and works on
every filesystem; a changed manifest is applied within ``interval`` seconds (the poll
stats the files on a worker thread and re-parses only the changed ones). An invalid
edit is logged and ignored (the last valid snapshot stays live) — only the *initial*
load refuses to start the router, so a typo never takes running functions down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from lambdakube.backoff import Backoff
from lambdakube.models import ESM_KIND, GROUP, QUOTA_OBJECT_NAME, VERSION, ConcurrencyQuotaStatus
from lambdakube_router.snapshot import (
    ALIAS_KIND,
    FUNCTION_KIND,
    QUOTA_KIND,
    VERSION_KIND,
    ManifestDirectory,
    ManifestError,
    MappingEntry,
    Parsed,
    Snapshot,
    drop_orphans,
    parse_document,
)

if TYPE_CHECKING:
    from lambdakube_router.informer import Informer

log = logging.getLogger(__name__)


class Source(Protocol):
    async def initial(self) -> Snapshot: ...

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        """Call ``apply`` with each new snapshot; runs until cancelled."""

    async def patch(self, kind: str, namespace: str, name: str, patch: dict) -> None:
        """Change an object (a Function, FunctionVersion or FunctionAlias: ``kind``)
        where it lives (``ReadOnly`` where the router may not)."""


class ReadOnly(Exception):
    """This source's Functions cannot be changed through the router (the message says
    where to change them)."""


class StaticSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def initial(self) -> Snapshot:
        return self.snapshot

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        await asyncio.Event().wait()

    async def patch(self, kind: str, namespace: str, name: str, patch: dict) -> None:
        raise ReadOnly("this router's Functions are fixed at its start")


class DirectorySource:
    """A manifest directory, polled every ``interval`` seconds (None/0: loaded once).

    Each check runs on a worker thread (``asyncio.to_thread``): the event loop only
    waits for it and applies the result. A check stats every file and re-parses only
    the added and changed ones (``ManifestDirectory``), so with 1,000 manifests neither
    startup nor a poll blocks the loop (before: 35 ms per poll for the fingerprint, and
    1.5 s for each reload, on the loop).
    """

    def __init__(
        self,
        directory: str | Path,
        namespace: str,
        interval: float | None = 2.0,
        *,
        manifests: ManifestDirectory | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.namespace = namespace
        self.interval = interval
        self.manifests = manifests or ManifestDirectory(self.directory, namespace)

    async def initial(self) -> Snapshot:
        snap = await asyncio.to_thread(self.manifests.refresh, force=True)  # ManifestError propagates
        assert snap is not None
        return snap

    async def check(self) -> Snapshot | None:
        """One poll: the new Snapshot when the directory changed and is valid; None when
        nothing changed, or it is invalid or unreadable (logged; the previous one stays)."""
        try:
            return await asyncio.to_thread(self.manifests.refresh)
        except ManifestError as exc:
            log.error("manifests changed but are invalid; keeping the previous ones:\n%s", exc)
        except OSError as exc:
            log.error("cannot read %s: %s", self.directory, exc)
        return None

    async def patch(self, kind: str, namespace: str, name: str, patch: dict) -> None:
        """Manifests are the user's files: the router does not rewrite them."""
        raise ReadOnly(
            f"this router reads Functions from the manifests in {self.directory}: change"
            f" {kind} {namespace}/{name} there (the change is applied within {self.interval or 0:g} s)"
        )

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        interval = self.interval
        if not interval:
            await asyncio.Event().wait()
            return
        while True:
            await asyncio.sleep(interval)
            snap = await self.check()
            if snap is not None:
                log.info("manifests in %s changed; applying", self.directory)
                apply(snap)


# -- Kubernetes: the rules (pure) -----------------------------------------------------------

#: (kind, namespace, name) of a watched object.
ObjectKey = tuple[str, str, str]


@dataclass(frozen=True)
class Entry:
    """One watched object as the Snapshot sees it: the parts of the object it was parsed
    from (``inputs``), and what it contributes (nothing, if invalid)."""

    inputs: tuple
    parsed: Parsed | None = None
    quota_status: ConcurrencyQuotaStatus | None = None

    @property
    def contribution(self) -> tuple:
        return self.parsed, self.quota_status


@dataclass(frozen=True)
class Change:
    """What one event did: ``changed`` - the Snapshot differs (apply a new one);
    ``errors`` - log lines for an object that does not parse."""

    changed: bool
    errors: tuple[str, ...] = ()


def inputs_of(kind: str, obj: dict) -> tuple:
    """What of an object the Snapshot reads. Not ``resourceVersion``: it moves with every
    status write (the operator's, the router's own status publisher), and a Function's
    status is none of the router's registry. A ConcurrencyQuota's status is: it is the
    operator's reservation decision (``quota_status``)."""
    meta = obj.get("metadata") or {}
    base = (obj.get("apiVersion"), meta.get("uid"), meta.get("namespace"), obj.get("spec"))
    return base + (obj.get("status"),) if kind == QUOTA_KIND else base


def quota_status_of(obj: dict) -> tuple[ConcurrencyQuotaStatus | None, str | None]:
    """The operator's decision in a ConcurrencyQuota's status, or why it is unreadable.
    Only ``default`` counts (the one quota of a namespace); no status yet: None (the
    namespace's reservations are pending, ``limits.plan_from_status``)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status")
    if meta.get("name") != QUOTA_OBJECT_NAME or not status:
        return None, None
    try:
        return ConcurrencyQuotaStatus.model_validate(status), None
    except ValidationError as exc:
        return None, (
            f"ConcurrencyQuota {meta.get('namespace')}/{meta.get('name')}: unreadable status,"
            f" reservations stay pending: {exc}"
        )


def parse_object(kind: str, obj: dict, inputs: tuple, default_namespace: str) -> tuple[Entry, list[str]]:
    """Parse one watched object, as a manifest of ``kind``, through the same models and
    rules as a manifest file (``snapshot.parse_document``)."""
    doc = {
        "apiVersion": obj.get("apiVersion"),
        "kind": kind,
        "metadata": obj.get("metadata") or {},
        "spec": obj.get("spec") or {},
    }
    parsed, errors = parse_document(doc, "kubernetes", default_namespace)
    lines = [f"skipping invalid object: {e}" for e in errors]
    if kind == ESM_KIND and parsed is None and errors:
        # A mapping that does not parse is kept, with its error: its status says Failed.
        meta = doc["metadata"] if isinstance(doc["metadata"], dict) else {}
        namespace, name = meta.get("namespace") or default_namespace, str(meta.get("name") or "")
        failed = MappingEntry(namespace, name, None, "kubernetes", error="; ".join(errors))
        return Entry(inputs, Parsed(namespace, name, mapping=failed)), lines
    status = None
    if kind == QUOTA_KIND:
        status, unreadable = quota_status_of(obj)
        if unreadable:
            lines.append(unreadable)
    return Entry(inputs, parsed, status), lines


class ParsedObjects:
    """Every watched object's ``Entry`` by (kind, namespace, name); an event re-parses
    only its own object, and says whether the Snapshot changed.

    Why: a Snapshot is applied to every pool; rebuilding and re-validating all objects
    on every event (most of them Function status writes) was the old source's cost, and
    an apply that changes nothing is still work for the engine. An object that stops
    parsing is dropped from the Snapshot (it is logged once per change, not per event),
    as it would be if it had been invalid from the start.
    """

    def __init__(self, default_namespace: str) -> None:
        #: A manifest without ``metadata.namespace`` lands here (the first watched one).
        self.default_namespace = default_namespace
        self.entries: dict[ObjectKey, Entry] = {}

    def update(self, kind: str, key: tuple[str, str], obj: dict | None) -> Change:
        """Apply one object's new state (None: it is gone)."""
        okey = (kind, *key)
        old = self.entries.get(okey)
        if obj is None:
            self.entries.pop(okey, None)
            return Change(old is not None and old.contribution != (None, None))
        inputs = inputs_of(kind, obj)
        if old is not None and old.inputs == inputs:
            return Change(False)
        entry, errors = parse_object(kind, obj, inputs, self.default_namespace)
        self.entries[okey] = entry
        before = old.contribution if old is not None else (None, None)
        return Change(entry.contribution != before, tuple(errors))

    def snapshot(self) -> Snapshot:
        """The Snapshot of every valid entry; ``quota_status`` is always a map (the
        operator decides reservations), holding the namespaces with a readable decision."""
        snap, decisions = Snapshot(), {}
        for (_kind, namespace, _name), entry in sorted(self.entries.items()):
            parsed = entry.parsed
            if parsed is not None and parsed.function is not None:
                snap.functions.setdefault((parsed.namespace, parsed.name), parsed.function)
            elif parsed is not None and parsed.quota is not None:
                snap.quotas.setdefault(parsed.namespace, parsed.quota)
            elif parsed is not None:
                duplicate = parsed.add_to(snap, "kubernetes")  # two objects of one version: the first
                if duplicate is not None:
                    log.error("%s", duplicate)
            if entry.quota_status is not None:
                decisions[namespace] = entry.quota_status
        snap.quota_status = decisions
        for line in drop_orphans(snap):
            log.error("%s", line)
        return snap


# -- Kubernetes: the driver ----------------------------------------------------------------


class SourceError(RuntimeError):
    """The API server refused (or did not answer) the first list: the router cannot start."""


class KubernetesSource:
    """Function, FunctionVersion, FunctionAlias and ConcurrencyQuota objects from the API
    server: one informer per kind (list, then watch, on the event loop), feeding
    ``ParsedObjects``.

    Why no threads: the synchronous client's watch is one blocking call per thread,
    which the loop's shutdown had to abandon; an informer's stream ends when its task is
    cancelled. ``watch_timeout`` is each watch request's server-side timeout (then it is
    resumed), ``retry_delay`` the longest pause between relists after errors. Each event
    updates only its own object; the Snapshot is rebuilt (not re-validated) when one
    changed what it carries, at most once per ``coalesce`` seconds, so a burst of
    changes (``kubectl apply -f dir/``) is one apply. The API server has already
    validated objects against the CRD schema; one the pydantic models still reject is
    skipped with an error log.

    Reservations: the Snapshot carries each namespace's ``ConcurrencyQuota/default``
    *status* (``quota_status``) - the operator's decision, which the router applies
    instead of allocating itself (see ``limits``).
    """

    KINDS = (
        ("functions", FUNCTION_KIND),
        ("functionversions", VERSION_KIND),
        ("functionaliases", ALIAS_KIND),
        ("concurrencyquotas", QUOTA_KIND),
        ("eventsourcemappings", ESM_KIND),
    )
    #: Kinds newer than the router's first release: a cluster without their CRD still
    #: serves Functions (the start does not fail on their 404).
    OPTIONAL_KINDS = frozenset({ESM_KIND})

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        namespaces: Sequence[str] = (),
        api_client=None,
        watch_timeout: int = 60,
        retry_delay: float = 2.0,
        sync_timeout: float = 30.0,
        coalesce: float = 0.05,
    ) -> None:
        from lambdakube_router.informer import RETRY, ApiSession, Informer  # noqa: PLC0415 - kubernetes only

        if api_client is None:
            from lambdakube import kubeclient  # noqa: PLC0415

            own = kubeclient.api_client(kubeconfig)
            configuration = own.configuration  # only the credentials: no synchronous calls
            own.close()
        else:
            configuration = api_client.configuration
        #: Watched namespaces; empty means the whole cluster (one list/watch per scope).
        self.namespaces = tuple(namespaces)
        self.sync_timeout = sync_timeout
        self.coalesce = coalesce
        self.objects = ParsedObjects(self.namespaces[0] if self.namespaces else "default")
        self._http = ApiSession(configuration, watch_timeout)
        self._configuration = configuration
        #: Writes (Lambda's concurrency calls), on connections of their own.
        self._writes: ApiSession | None = None
        retry = Backoff(min(RETRY.initial, retry_delay) or RETRY.initial, max(retry_delay, RETRY.initial))
        self.informers: list[Informer] = [
            Informer(
                self._http,
                configuration,
                api=f"/apis/{GROUP}/{VERSION}",
                plural=plural,
                namespaces=self.namespaces,
                on_event=functools.partial(self._on_event, kind),
                watch_seconds=watch_timeout,
                retry=retry,
            )
            for plural, kind in self.KINDS
        ]
        #: A change the last applied Snapshot does not have yet.
        self._pending = asyncio.Event()

    @property
    def pending(self) -> bool:
        """True while a change waits to be applied."""
        return self._pending.is_set()

    def _on_event(self, kind: str, key: tuple[str, str], old: dict | None, new: dict | None) -> None:
        change = self.objects.update(kind, key, new)
        for line in change.errors:
            log.error("%s", line)
        if change.changed:
            self._pending.set()

    async def initial(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sync_timeout
        for informer in self.informers:
            informer.start()
        for informer, (plural, kind) in zip(self.informers, self.KINDS, strict=True):
            if not await informer.synced(max(0.0, deadline - loop.time()), or_error=True):
                if kind in self.OPTIONAL_KINDS and informer.refused and "HTTP 404" in (informer.error or ""):
                    # An upgrade that did not apply the new CRD (helm installs crds/ only
                    # on install): serve the rest; the informer lists again until it exists.
                    log.error(
                        "the %s CRD is not installed (kubectl apply -f crds/%s.yaml): %s objects are not"
                        " served until it is",
                        kind,
                        plural,
                        kind,
                    )
                    continue
                error = informer.error or f"listing {informer.plural}: no answer within {self.sync_timeout:g}s"
                await self.close()
                raise SourceError(error)
        self._pending.clear()
        return self.objects.snapshot()

    async def run(self, apply: Callable[[Snapshot], None]) -> None:
        for informer in self.informers:
            informer.start()
        try:
            while True:
                await self._pending.wait()
                if self.coalesce:
                    await asyncio.sleep(self.coalesce)  # the rest of a burst rides along
                self._pending.clear()
                apply(self.objects.snapshot())
        finally:
            await self.close()

    async def patch(self, kind: str, namespace: str, name: str, patch: dict) -> None:
        """A merge patch of an object (``kube_api.ApiError`` on a refusal); the change
        comes back through the watch like anyone's."""
        from lambdakube_router import kube_api  # noqa: PLC0415
        from lambdakube_router.informer import ApiSession  # noqa: PLC0415

        if self._writes is None:
            self._writes = ApiSession(self._configuration)
        await kube_api.KubeApi(self._writes, self._configuration).patch(
            kube_api.lambdakube_object(kind, namespace, name), patch
        )

    async def patch_status(self, kind: str, namespace: str, name: str, status: dict) -> None:
        """A merge patch of an object's status subresource (an EventSourceMapping's
        pollers), on the writes' own connections."""
        from lambdakube_router import kube_api  # noqa: PLC0415
        from lambdakube_router.informer import ApiSession  # noqa: PLC0415

        if self._writes is None:
            self._writes = ApiSession(self._configuration)
        await kube_api.KubeApi(self._writes, self._configuration).patch(
            kube_api.lambdakube_object(kind, namespace, name) + "/status", {"status": status}
        )

    async def close(self) -> None:
        """Stop both informers and their session (for good: an informer never restarts)."""
        for informer in self.informers:
            await informer.close()
        await self._http.close()
        if self._writes is not None:
            await self._writes.close()
