"""The functions the router knows: ``(namespace, name) -> FunctionSpec``, plus quotas.

Why a snapshot: sources (a directory of YAML manifests, or a Kubernetes watch) produce a
complete, validated ``Snapshot``; the router diffs it against its pools. Validation goes
through the same pydantic models that generate the CRDs, so ``lambdakube dev`` rejects
exactly what the API server would, and says which file and which field.

Manifests use the CRD shape (``apiVersion: lambdakube.dev/v1alpha1``, ``kind: Function``
or ``ConcurrencyQuota``), several per file allowed (``---``). ``metadata.namespace``
defaults to the router's namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from lambdakube.models import (
    API_VERSION,
    QUOTA_OBJECT_NAME,
    ConcurrencyQuotaSpec,
    ConcurrencyQuotaStatus,
    FunctionSpec,
    valid_name,
)
from lambdakube_router.backends.base import FunctionRef

log = logging.getLogger(__name__)

FUNCTION_KIND = "Function"
QUOTA_KIND = "ConcurrencyQuota"


class ManifestError(ValueError):
    """One or more manifests are invalid; the message names each file and field."""


@dataclass(frozen=True)
class FunctionEntry:
    ref: FunctionRef
    spec: FunctionSpec
    source: str = ""  # file path or "kubernetes"


@dataclass
class Snapshot:
    functions: dict[tuple[str, str], FunctionEntry] = field(default_factory=dict)
    quotas: dict[str, ConcurrencyQuotaSpec] = field(default_factory=dict)
    #: Who decides which reservations are granted. None: nobody else - the router
    #: allocates itself (manifest directory, tests). A dict (the Kubernetes source): the
    #: operator, whose decision is each namespace's ``ConcurrencyQuota/default`` status;
    #: a namespace missing here has no published decision yet (see ``limits``).
    quota_status: dict[str, ConcurrencyQuotaStatus] | None = None

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.functions} | set(self.quotas)


def _format_validation(where: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        path = f"spec.{loc}" if loc else "spec"
        out.append(f"{where}: {path}: {err['msg']}")
    return out


@dataclass(frozen=True)
class Parsed:
    """What one valid document contributes to a Snapshot: a Function, or the quota of
    ``namespace`` (exactly one of ``function`` and ``quota`` is set)."""

    namespace: str
    name: str
    function: FunctionEntry | None = None
    quota: ConcurrencyQuotaSpec | None = None


def parse_document(doc: object, source: str, default_namespace: str, index: int = 0) -> tuple[Parsed | None, list[str]]:
    """Validate one manifest document (``index``: its place in its file, for messages);
    what it contributes, or None and why not. Pure: duplicates across documents are the
    caller's business (``parse_documents``; the API server cannot hold two)."""
    if doc is None:
        return None, []
    where = f"{source} (document {index + 1})"
    if not isinstance(doc, dict):
        return None, [f"{where}: expected a mapping with apiVersion/kind/metadata/spec"]
    kind = doc.get("kind")
    meta = doc.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    if kind not in (FUNCTION_KIND, QUOTA_KIND):
        return None, [f"{where}: kind must be {FUNCTION_KIND} or {QUOTA_KIND}, got {kind!r}"]
    where = f"{source}: {kind} {name!r}"
    if doc.get("apiVersion") != API_VERSION:
        return None, [f"{where}: apiVersion must be {API_VERSION}, got {doc.get('apiVersion')!r}"]
    if not isinstance(name, str) or not valid_name(name):
        return None, [f"{where}: metadata.name must be a DNS-1123 label (lowercase, digits, '-')"]
    namespace = meta.get("namespace") or default_namespace
    if not valid_name(namespace):
        return None, [f"{where}: metadata.namespace {namespace!r} is not a valid name"]
    raw_spec = doc.get("spec")
    if raw_spec is None:
        raw_spec = {} if kind == QUOTA_KIND else None
    if not isinstance(raw_spec, dict):
        return None, [f"{where}: spec: a mapping is required"]
    try:
        if kind == FUNCTION_KIND:
            spec = FunctionSpec.model_validate(raw_spec)
            uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
            return Parsed(namespace, name, function=FunctionEntry(FunctionRef(namespace, name, uid), spec, source)), []
        quota = ConcurrencyQuotaSpec.model_validate(raw_spec)
    except ValidationError as exc:
        return None, _format_validation(where, exc)
    if name != QUOTA_OBJECT_NAME:
        return None, [f"{where}: a namespace has one ConcurrencyQuota and it must be named {QUOTA_OBJECT_NAME!r}"]
    return Parsed(namespace, name, quota=quota), []


def parse_documents(docs: Iterable[object], source: str, default_namespace: str) -> tuple[Snapshot, list[str]]:
    """Validate manifest documents; returns what was valid and the list of errors."""
    snap = Snapshot()
    errors: list[str] = []
    for index, doc in enumerate(docs):
        parsed, errs = parse_document(doc, source, default_namespace, index)
        errors.extend(errs)
        if parsed is None:
            continue
        where = f"{source}: {FUNCTION_KIND if parsed.function else QUOTA_KIND} {parsed.name!r}"
        key = (parsed.namespace, parsed.name)
        if parsed.function is not None:
            if key in snap.functions:
                errors.append(f"{where}: duplicate Function {key[0]}/{key[1]} (also in {snap.functions[key].source})")
                continue
            snap.functions[key] = parsed.function
        elif parsed.quota is not None:
            if parsed.namespace in snap.quotas:
                errors.append(f"{where}: duplicate ConcurrencyQuota for namespace {parsed.namespace}")
                continue
            snap.quotas[parsed.namespace] = parsed.quota
    return snap, errors


def load_directory(directory: str | Path, default_namespace: str = "default") -> Snapshot:
    """Every ``*.yaml``/``*.yml`` under ``directory``; raises ManifestError on any invalid one."""
    root = Path(directory)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory of Function manifests")
    merged = Snapshot()
    errors: list[str] = []
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            errors.append(f"{path}: invalid YAML: {exc}")
            continue
        snap, errs = parse_documents(docs, str(path), default_namespace)
        errors.extend(errs)
        for key, entry in snap.functions.items():
            if key in merged.functions:
                errors.append(f"{path}: duplicate Function {key[0]}/{key[1]} (also in {merged.functions[key].source})")
            else:
                merged.functions[key] = entry
        for ns, quota in snap.quotas.items():
            if ns in merged.quotas:
                errors.append(f"{path}: duplicate ConcurrencyQuota for namespace {ns}")
            else:
                merged.quotas[ns] = quota
    if errors:
        raise ManifestError("invalid manifests:\n  " + "\n  ".join(errors))
    return merged


def snapshot_fingerprint(directory: str | Path) -> tuple:
    """Cheap change detection for polling a manifest directory."""
    root = Path(directory)
    return tuple(
        sorted(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*")
            if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    )
