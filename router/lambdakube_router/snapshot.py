"""The functions the router knows: ``(namespace, name) -> FunctionSpec``, plus quotas.

Why a snapshot: sources (a directory of YAML manifests, or a Kubernetes watch) produce a
complete, validated ``Snapshot``; the router diffs it against its pools. Validation goes
through the same pydantic models that generate the CRDs, so ``lambdakube dev`` rejects
exactly what the API server would, and says which file and which field.

Manifests use the CRD shape (``apiVersion: lambdakube.dev/v1alpha1``, ``kind: Function``,
``FunctionVersion``, ``FunctionAlias`` or ``ConcurrencyQuota``), several per file allowed
(``---``). ``metadata.namespace`` defaults to the router's namespace. Versions and aliases
are kept per function (``Snapshot.versions``, ``Snapshot.aliases``); those of a function
the snapshot does not have are left out with an error log (``drop_orphans``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from lambdakube.models import (
    API_VERSION,
    QUOTA_OBJECT_NAME,
    ConcurrencyQuotaSpec,
    ESM_KIND,
    ConcurrencyQuotaStatus,
    EventSourceMappingSpec,
    FunctionAliasSpec,
    FunctionSpec,
    FunctionVersionSpec,
    valid_alias_name,
    valid_name,
)
from lambdakube_router.backends.base import FunctionRef

log = logging.getLogger(__name__)

FUNCTION_KIND = "Function"
QUOTA_KIND = "ConcurrencyQuota"
VERSION_KIND = "FunctionVersion"
ALIAS_KIND = "FunctionAlias"
KINDS = (FUNCTION_KIND, VERSION_KIND, ALIAS_KIND, QUOTA_KIND, ESM_KIND)

#: (namespace, function name): the key of a function, its versions and its aliases.
FunctionKey = tuple[str, str]


class ManifestError(ValueError):
    """One or more manifests are invalid; the message names each file and field."""


@dataclass(frozen=True)
class FunctionEntry:
    ref: FunctionRef
    spec: FunctionSpec
    source: str = ""  # file path or "kubernetes"


@dataclass(frozen=True)
class VersionEntry:
    """A published version (a ``FunctionVersion`` object: its name is only a convention)."""

    namespace: str
    object_name: str
    spec: FunctionVersionSpec
    source: str = ""

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.spec.function)


@dataclass(frozen=True)
class AliasEntry:
    """An alias: ``name`` is the ``FunctionAlias``'s ``metadata.name``."""

    namespace: str
    name: str
    spec: FunctionAliasSpec
    source: str = ""

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.spec.function)

    @property
    def revision_id(self) -> str:
        """Lambda's ``RevisionId``: changes whenever the alias does (a digest of its spec)."""
        text = json.dumps(self.spec.model_dump(mode="json", by_alias=True), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


@dataclass(frozen=True)
class MappingEntry:
    """An EventSourceMapping (``pollers.manager`` runs it). ``spec`` None: the object
    does not parse (a cluster's object the models refuse), ``error`` says why, and the
    mapping's status shows it (``Failed``) instead of it silently not polling."""

    namespace: str
    name: str
    spec: EventSourceMappingSpec | None
    source: str = ""
    error: str | None = None
    generation: int | None = None
    uid: str | None = None


@dataclass
class Snapshot:
    functions: dict[tuple[str, str], FunctionEntry] = field(default_factory=dict)
    #: Published versions per function, by number.
    versions: dict[FunctionKey, dict[int, VersionEntry]] = field(default_factory=dict)
    #: Aliases per function, by name.
    aliases: dict[FunctionKey, dict[str, AliasEntry]] = field(default_factory=dict)
    quotas: dict[str, ConcurrencyQuotaSpec] = field(default_factory=dict)
    #: Who decides which reservations are granted. None: nobody else - the router
    #: allocates itself (manifest directory, tests). A dict (the Kubernetes source): the
    #: operator, whose decision is each namespace's ``ConcurrencyQuota/default`` status;
    #: a namespace missing here has no published decision yet (see ``limits``).
    quota_status: dict[str, ConcurrencyQuotaStatus] | None = None
    #: EventSourceMappings by (namespace, name): the pollers' input, not the engine's.
    mappings: dict[tuple[str, str], MappingEntry] = field(default_factory=dict)

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.functions} | set(self.quotas)

    def add_version(self, entry: VersionEntry) -> str | None:
        """Add a version; why not, when the function already has that number."""
        known = self.versions.setdefault(entry.key, {})
        other = known.get(entry.spec.version)
        if other is not None:
            return (
                f"{entry.source}: {VERSION_KIND} {entry.object_name!r}: duplicate version {entry.spec.version}"
                f" of {entry.key[0]}/{entry.key[1]} (also {other.object_name!r} in {other.source})"
            )
        known[entry.spec.version] = entry
        return None

    def add_alias(self, entry: AliasEntry) -> str | None:
        known = self.aliases.setdefault(entry.key, {})
        other = known.get(entry.name)
        if other is not None:
            return (
                f"{entry.source}: {ALIAS_KIND} {entry.name!r}: duplicate alias of {entry.key[0]}/{entry.key[1]}"
                f" (also in {other.source})"
            )
        known[entry.name] = entry
        return None


def drop_orphans(snap: Snapshot) -> list[str]:
    """Leave out the versions and aliases of functions the snapshot does not have (as
    invalid objects are left out); the error lines say which."""
    errors = []
    for table, kind in ((snap.versions, VERSION_KIND), (snap.aliases, ALIAS_KIND)):
        for key in sorted(k for k in table if k not in snap.functions):
            for entry in table.pop(key).values():
                name = entry.object_name if isinstance(entry, VersionEntry) else entry.name
                errors.append(f"{entry.source}: {kind} {name!r}: ignored: no Function {key[0]}/{key[1]}")
    return errors


def _format_validation(where: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        path = f"spec.{loc}" if loc else "spec"
        out.append(f"{where}: {path}: {err['msg']}")
    return out


@dataclass(frozen=True)
class Parsed:
    """What one valid document contributes to a Snapshot: a Function, a version, an
    alias, or the quota of ``namespace`` (exactly one of them is set)."""

    namespace: str
    name: str
    function: FunctionEntry | None = None
    quota: ConcurrencyQuotaSpec | None = None
    version: VersionEntry | None = None
    alias: AliasEntry | None = None
    mapping: MappingEntry | None = None

    def add_to(self, snap: Snapshot, source: str) -> str | None:
        """Add this to ``snap``; why not, when it is a duplicate."""
        if self.mapping is not None:
            key = (self.namespace, self.name)
            if key in snap.mappings:
                return f"{source}: {ESM_KIND} {self.name!r}: duplicate {ESM_KIND} {key[0]}/{key[1]}"
            snap.mappings[key] = self.mapping
            return None
        if self.version is not None:
            return snap.add_version(self.version)
        if self.alias is not None:
            return snap.add_alias(self.alias)
        if self.function is not None:
            key = (self.namespace, self.name)
            if key in snap.functions:
                return (
                    f"{source}: {FUNCTION_KIND} {self.name!r}: duplicate Function {key[0]}/{key[1]}"
                    f" (also in {snap.functions[key].source})"
                )
            snap.functions[key] = self.function
        elif self.quota is not None:
            if self.namespace in snap.quotas:
                return (
                    f"{source}: {QUOTA_KIND} {self.name!r}: duplicate ConcurrencyQuota for namespace {self.namespace}"
                )
            snap.quotas[self.namespace] = self.quota
        return None


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
    if kind not in KINDS:
        return None, [f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}"]
    where = f"{source}: {kind} {name!r}"
    if doc.get("apiVersion") != API_VERSION:
        return None, [f"{where}: apiVersion must be {API_VERSION}, got {doc.get('apiVersion')!r}"]
    if not isinstance(name, str) or not valid_name(name):
        return None, [f"{where}: metadata.name must be a DNS-1123 label (lowercase, digits, '-')"]
    if kind == ALIAS_KIND and not valid_alias_name(name):
        return None, [f"{where}: an alias name must not be all digits (that names a version)"]
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
        if kind == VERSION_KIND:
            version = FunctionVersionSpec.model_validate(raw_spec)
            return Parsed(namespace, name, version=VersionEntry(namespace, name, version, source)), []
        if kind == ALIAS_KIND:
            alias = FunctionAliasSpec.model_validate(raw_spec)
            return Parsed(namespace, name, alias=AliasEntry(namespace, name, alias, source)), []
        if kind == ESM_KIND:
            mapping = EventSourceMappingSpec.model_validate(raw_spec)
            generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
            uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
            entry = MappingEntry(namespace, name, mapping, source, generation=generation, uid=uid)
            return Parsed(namespace, name, mapping=entry), []
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
        duplicate = parsed.add_to(snap, source)
        if duplicate is not None:
            errors.append(duplicate)
    return snap, errors


#: libyaml's loader when PyYAML has it (about 10x faster on a large directory; the same
#: documents), else the pure-Python one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: What says a manifest file changed: (mtime_ns, size, inode). The inode catches an
#: editor's or ``kubectl``-style write-and-rename, which can keep mtime and size.
FileKey = tuple[int, int, int]


@dataclass(frozen=True)
class ParsedFile:
    """One manifest file, parsed on its own: what it contributes (``snapshot``, its own
    duplicates already rejected) and its errors. Cross-file rules are ``merge_files``'."""

    key: FileKey
    snapshot: Snapshot
    errors: tuple[str, ...] = ()


def parse_file(path: str, key: FileKey, default_namespace: str) -> ParsedFile:
    """Read and validate one manifest file (any read or YAML error is one of its errors)."""
    try:
        with open(path, "rb") as f:
            docs = list(yaml.load_all(f.read(), Loader=_YAML_LOADER))  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        return ParsedFile(key, Snapshot(), (f"{path}: invalid YAML: {exc}",))
    except OSError as exc:
        return ParsedFile(key, Snapshot(), (f"{path}: cannot read: {exc}",))
    snap, errors = parse_documents(docs, path, default_namespace)
    return ParsedFile(key, snap, tuple(errors))


def scan_directory(directory: str | Path) -> dict[str, FileKey]:
    """Every ``*.yaml``/``*.yml`` file under ``directory`` (recursively, not following
    directory symlinks, as ``rglob``) and its ``FileKey``: one ``stat`` per file, no read."""
    found: dict[str, FileKey] = {}
    pending = [os.fspath(directory)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                        st = entry.stat()
                        found[entry.path] = (st.st_mtime_ns, st.st_size, st.st_ino)
                except FileNotFoundError:  # removed while we looked
                    continue
    return found


def merge_files(files: Iterable[tuple[str, ParsedFile]]) -> Snapshot:
    """The Snapshot of parsed files, in path order; raises ManifestError on any file's
    error or a Function/ConcurrencyQuota defined in two files."""
    merged = Snapshot()
    errors: list[str] = []
    for path, parsed in sorted(files, key=lambda item: item[0]):
        errors.extend(parsed.errors)
        for key, entry in parsed.snapshot.functions.items():
            if key in merged.functions:
                errors.append(f"{path}: duplicate Function {key[0]}/{key[1]} (also in {merged.functions[key].source})")
            else:
                merged.functions[key] = entry
        for ns, quota in parsed.snapshot.quotas.items():
            if ns in merged.quotas:
                errors.append(f"{path}: duplicate ConcurrencyQuota for namespace {ns}")
            else:
                merged.quotas[ns] = quota
        for versions in parsed.snapshot.versions.values():
            errors.extend(e for e in map(merged.add_version, versions.values()) if e is not None)
        for aliases in parsed.snapshot.aliases.values():
            errors.extend(e for e in map(merged.add_alias, aliases.values()) if e is not None)
        for key, mapping in parsed.snapshot.mappings.items():
            if key in merged.mappings:
                errors.append(f"{path}: duplicate {ESM_KIND} {key[0]}/{key[1]} (also in {merged.mappings[key].source})")
            else:
                merged.mappings[key] = mapping
    if errors:
        raise ManifestError("invalid manifests:\n  " + "\n  ".join(errors))
    for line in drop_orphans(merged):
        log.error("%s", line)
    return merged


class ManifestDirectory:
    """A manifest directory and each file's last parse, so that a reload re-reads only
    the files that changed.

    Why: with 1,000 manifests a full reload (read, YAML, pydantic for every file) took
    1.5 s, and the directory source did it on every change; ``refresh`` stats every
    file (``scan_directory``), parses only the added and changed ones, forgets the
    removed ones, and builds the Snapshot from the cached parses, so whole-set rules
    (duplicates across files) are checked on every refresh. Not thread-safe: one caller
    at a time (the directory source runs it on one worker thread at a time).
    """

    def __init__(
        self,
        directory: str | Path,
        default_namespace: str = "default",
        parse: Callable[[str, FileKey, str], ParsedFile] = parse_file,
        check: Callable[[FunctionEntry], list[str]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.default_namespace = default_namespace
        self.parse = parse
        #: What the backend says of a valid Function it could not run (the local
        #: backend: references no ``--secrets-dir`` file answers). Asked on every
        #: refresh, not cached with the parse: what it reads is not in the manifest.
        self.check = check
        self.files: dict[str, ParsedFile] = {}
        #: The listing the last refresh saw (None: never refreshed).
        self.listing: dict[str, FileKey] | None = None

    def refresh(self, *, force: bool = False) -> Snapshot | None:
        """The directory's Snapshot, or None when no file changed since the last
        refresh (``force``: build it anyway). Raises ManifestError when the directory is
        invalid (the parses are kept: fixing one file re-parses only that file), OSError
        when it cannot be listed."""
        if not self.directory.is_dir():
            raise ManifestError(f"{self.directory}: not a directory of Function manifests")
        listing = scan_directory(self.directory)
        if listing == self.listing and not force:
            return None
        self.listing = listing
        files = {}
        for path, key in listing.items():
            cached = self.files.get(path)
            files[path] = (
                cached if cached is not None and cached.key == key else self.parse(path, key, self.default_namespace)
            )
        self.files = files
        snap = merge_files(files.items())
        if self.check is not None:
            errors = [
                f"{entry.source}: Function {key[1]!r}: function {key[0]}/{key[1]}: {problem}"
                for key, entry in sorted(snap.functions.items())
                for problem in self.check(entry)
            ]
            if errors:
                raise ManifestError("invalid manifests:\n  " + "\n  ".join(errors))
        return snap


def load_directory(directory: str | Path, default_namespace: str = "default") -> Snapshot:
    """Every ``*.yaml``/``*.yml`` under ``directory``; raises ManifestError on any invalid one."""
    snap = ManifestDirectory(directory, default_namespace).refresh()
    assert snap is not None  # a first refresh always builds one
    return snap
