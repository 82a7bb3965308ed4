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


def parse_documents(
    docs: Iterable[object], source: str, default_namespace: str
) -> tuple[Snapshot, list[str]]:
    """Validate manifest documents; returns what was valid and the list of errors."""
    snap = Snapshot()
    errors: list[str] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        where = f"{source} (document {index + 1})"
        if not isinstance(doc, dict):
            errors.append(f"{where}: expected a mapping with apiVersion/kind/metadata/spec")
            continue
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, dict) else None
        if kind not in (FUNCTION_KIND, QUOTA_KIND):
            errors.append(f"{where}: kind must be {FUNCTION_KIND} or {QUOTA_KIND}, got {kind!r}")
            continue
        where = f"{source}: {kind} {name!r}"
        if doc.get("apiVersion") != API_VERSION:
            errors.append(f"{where}: apiVersion must be {API_VERSION}, got {doc.get('apiVersion')!r}")
            continue
        if not isinstance(name, str) or not valid_name(name):
            errors.append(f"{where}: metadata.name must be a DNS-1123 label (lowercase, digits, '-')")
            continue
        namespace = meta.get("namespace") or default_namespace
        if not valid_name(namespace):
            errors.append(f"{where}: metadata.namespace {namespace!r} is not a valid name")
            continue
        raw_spec = doc.get("spec")
        if raw_spec is None:
            raw_spec = {} if kind == QUOTA_KIND else None
        if not isinstance(raw_spec, dict):
            errors.append(f"{where}: spec: a mapping is required")
            continue
        spec: FunctionSpec | ConcurrencyQuotaSpec
        try:
            if kind == FUNCTION_KIND:
                spec = FunctionSpec.model_validate(raw_spec)
            else:
                spec = ConcurrencyQuotaSpec.model_validate(raw_spec)
        except ValidationError as exc:
            errors.extend(_format_validation(where, exc))
            continue
        if isinstance(spec, FunctionSpec):
            key = (namespace, name)
            if key in snap.functions:
                errors.append(f"{where}: duplicate Function {namespace}/{name} (also in {snap.functions[key].source})")
                continue
            uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
            snap.functions[key] = FunctionEntry(FunctionRef(namespace, name, uid), spec, source)
        else:
            if name != QUOTA_OBJECT_NAME:
                errors.append(
                    f"{where}: a namespace has one ConcurrencyQuota and it must be named"
                    f" {QUOTA_OBJECT_NAME!r}"
                )
                continue
            if namespace in snap.quotas:
                errors.append(f"{where}: duplicate ConcurrencyQuota for namespace {namespace}")
                continue
            snap.quotas[namespace] = spec
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
                errors.append(
                    f"{path}: duplicate Function {key[0]}/{key[1]} (also in {merged.functions[key].source})"
                )
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
