"""Versions and aliases on a cluster (pure): what to publish, what each version runs,
and the provisioned status of each FunctionVersion and FunctionAlias.

No API calls and no clock (``now`` is an argument): ``reconcile.py`` reads the objects
from the operator's kopf indices, calls these and carries out the result; the rules are
tables in ``tests/unit/test_operator_versions.py``.

**Publishing** (``spec.publish: true``, Terraform's ``publish``, Lambda's
``Publish`` on UpdateFunctionCode): a version is published when the Function's
environment-shaping fields (``FunctionSpec.config``) hash differently from its newest
version's. Its number is the highest ever seen + 1, and the highest is recorded in the
Function's status (``latestVersion``, with its config hash): versions can be deleted,
and Lambda never reuses a number. The index that shows the versions may lag behind a
create, so the recorded hash stands in for a newest version that is not visible yet
(a pass right after a publish does not publish the same config again), and a visible
version at least as new as the record wins over it (a create that conflicted is
judged by what is really there). The name is ``<function>-v<N>``: a create that
conflicts means that number is already published (an operator restarted between its
create and its status write), so it is recorded and never created twice.

**Provisioned status**: a version's Ready provisioned pods are shared by whoever asks
for them: first the version's own ``provisionedConcurrency``, then its aliases' shares
(``provisioning.alias_split``) by alias name. Each object reports what it asked
(``requested``), what it got (``allocated``; ``available`` is the same number: which of
them is busy right now only the router sees), and ``READY`` once it got all,
``FAILED`` while a version it needs cannot start its environments (an Init error, a
missing Secret: ``statusReason`` says which), ``IN_PROGRESS`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from lambdakube import provisioning
from lambdakube.models import API_VERSION, LATEST, FunctionAliasSpec, FunctionSpec, FunctionVersionSpec
from lambdakube.resources import labels, owner_reference
from lambdakube.resources.spec_hash import spec_hash

from . import conditions as C

#: The status fields of ``models.ProvisionedStatus`` (camelCase), all the operator's.
PROVISIONED_FIELDS = (
    "observedGeneration",
    "conditions",
    "requested",
    "allocated",
    "available",
    "status",
    "statusReason",
    "lastModified",
)
READY, IN_PROGRESS, FAILED = "READY", "IN_PROGRESS", "FAILED"


@dataclass(frozen=True)
class Published:
    """A FunctionVersion or FunctionAlias as the operator's index holds it."""

    name: str
    generation: int | None
    spec: FunctionVersionSpec | FunctionAliasSpec | None
    status: Mapping = field(default_factory=dict)
    #: Why ``spec`` is None (an object the schema let through but the model refuses).
    spec_error: str | None = None

    @classmethod
    def version(cls, body: Mapping) -> Published:
        return cls._from(body, FunctionVersionSpec)

    @classmethod
    def alias(cls, body: Mapping) -> Published:
        return cls._from(body, FunctionAliasSpec)

    @classmethod
    def _from(cls, body: Mapping, model) -> Published:
        meta = body.get("metadata") or {}
        spec, error = None, None
        try:
            spec = model.model_validate(dict(body.get("spec") or {}))
        except ValidationError as exc:
            error = "; ".join(e["msg"] for e in exc.errors())
        return cls(str(meta.get("name", "")), meta.get("generation"), spec, dict(body.get("status") or {}), error)


def _versions(objs: Iterable[Published]) -> dict[int, FunctionVersionSpec]:
    """The valid versions by number (two objects claiming one number: the first by name)."""
    out: dict[int, FunctionVersionSpec] = {}
    for obj in sorted(objs, key=lambda o: o.name):
        if isinstance(obj.spec, FunctionVersionSpec):
            out.setdefault(obj.spec.version, obj.spec)
    return out


def _aliases(objs: Iterable[Published]) -> list[FunctionAliasSpec]:
    return [o.spec for o in sorted(objs, key=lambda o: o.name) if isinstance(o.spec, FunctionAliasSpec)]


def config_hash(spec: FunctionSpec, version: FunctionVersionSpec) -> str:
    """A version's spec hash: what its pods are labelled with."""
    return spec_hash(spec.at_version(version.config))


def version_specs(
    spec: FunctionSpec, versions: Iterable[Published], aliases: Iterable[Published]
) -> dict[str, FunctionSpec]:
    """What each published version's environments run, by number: its snapshot with
    the Function's scaling, and as many provisioned environments as
    ``provisioning.by_version`` gives it (its own and its aliases' shares)."""
    by_number = _versions(versions)
    per_version = provisioning.by_version(
        spec.provisioned_concurrency,
        {n: v.provisioned_concurrency for n, v in by_number.items()},
        _aliases(aliases),
    )
    return {str(n): spec.at_version(v.config, per_version.get(str(n), 0)) for n, v in sorted(by_number.items())}


# -- publishing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """Create FunctionVersion ``name`` (number ``number``) from the Function's config."""

    name: str
    number: int
    spec_hash: str


def version_name(function: str, number: int) -> str:
    return f"{function}-v{number}"


def highest(status: Mapping, versions: Iterable[Published]) -> int:
    """The highest version number ever published: the recorded one or a visible one."""
    return max([int(status.get("latestVersion") or 0), *_versions(versions)], default=0)


def to_publish(function: str, spec: FunctionSpec, status: Mapping, versions: Iterable[Published]) -> Publish | None:
    """The version to publish now, or None (see the module docstring)."""
    if not spec.publish:
        return None
    visible = _versions(versions)
    recorded = int(status.get("latestVersion") or 0)
    newest_visible = max(visible, default=0)
    if newest_visible and newest_visible >= recorded:
        newest_hash: str | None = config_hash(spec, visible[newest_visible])
    else:
        newest_hash = status.get("latestVersionSpecHash") if recorded else None
    current = spec_hash(spec)
    if newest_hash == current:
        return None
    number = max(recorded, newest_visible) + 1
    return Publish(version_name(function, number), number, current)


def version_body(*, namespace: str, function: str, function_uid: str, spec: FunctionSpec, publish: Publish) -> dict:
    """The FunctionVersion a ``Publish`` creates: the Function's config, frozen, owned by
    the Function (garbage-collected with it)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "FunctionVersion",
        "metadata": {
            "name": publish.name,
            "namespace": namespace,
            "labels": {labels.FUNCTION: function, labels.MANAGED_BY: labels.OPERATOR_NAME},
            "ownerReferences": [owner_reference(function, function_uid)],
        },
        "spec": {
            "function": function,
            "version": publish.number,
            "config": spec.config().model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    }


def recorded_status(
    status: Mapping, versions: Iterable[Published], spec: FunctionSpec | None, published: Publish | None
) -> dict:
    """The Function's ``latestVersion`` and ``latestVersionSpecHash`` after this pass:
    the publish just made, else the highest known number and the newest hash known."""
    if published is not None:
        return {"latestVersion": published.number, "latestVersionSpecHash": published.spec_hash}
    top = highest(status, versions)
    if not top:
        return {"latestVersion": None, "latestVersionSpecHash": None}
    visible = _versions(versions)
    if top in visible and spec is not None:
        return {"latestVersion": top, "latestVersionSpecHash": config_hash(spec, visible[top])}
    return {"latestVersion": top, "latestVersionSpecHash": status.get("latestVersionSpecHash")}


# -- provisioned status --------------------------------------------------------------------


def provisioned_statuses(
    *,
    versions: Iterable[Published],
    aliases: Iterable[Published],
    ready: Mapping[str, int],
    failures: Mapping[str, str | None],
    now: datetime,
) -> dict[tuple[str, str], dict]:
    """The desired ``status`` of each FunctionVersion and FunctionAlias, by (kind, name).

    ``ready``: Ready provisioned pods per version number (the plan's projection);
    ``failures``: why a version's environments cannot start, per number."""
    versions, aliases = list(versions), list(aliases)
    left = dict(ready)
    numbers = set(_versions(versions))

    def take(version: str, count: int) -> int:
        got = min(count, left.get(version, 0))
        left[version] = left.get(version, 0) - got
        return got

    out: dict[tuple[str, str], dict] = {}
    for obj in sorted(versions, key=lambda o: o.name):
        if not isinstance(obj.spec, FunctionVersionSpec):
            continue
        number = str(obj.spec.version)
        requested = obj.spec.provisioned_concurrency
        got = take(number, requested)
        out["FunctionVersion", obj.name] = _status(obj, requested, got, failures.get(number), now)
    for obj in sorted(aliases, key=lambda o: o.name):
        if not isinstance(obj.spec, FunctionAliasSpec):
            continue
        split = provisioning.alias_split(obj.spec)
        got = sum(take(v, n) for v, n in sorted(split.items()))
        missing = sorted((v for v in split if v != LATEST and int(v) not in numbers), key=int)
        failure = next((failures[v] for v in sorted(split) if failures.get(v)), None)
        if missing:
            failure = f"version {', '.join(missing)} is not published"
        out["FunctionAlias", obj.name] = _status(obj, obj.spec.provisioned_concurrency, got, failure, now)
    return out


def _status(obj: Published, requested: int, allocated: int, failure: str | None, now: datetime) -> dict:
    old = obj.status
    if allocated >= requested:
        state, reason, cond = READY, None, C.Cond("Ready", "True", "Allocated", f"{allocated}/{requested} ready")
    elif failure:
        state, reason = FAILED, failure
        cond = C.Cond("Ready", "False", "Failed", failure)
    else:
        state, reason = IN_PROGRESS, None
        cond = C.Cond("Ready", "False", "InProgress", f"{allocated}/{requested} provisioned environments ready")
    changed = old.get("requested") != requested or not old.get("lastModified")
    return {
        "observedGeneration": obj.generation,
        "conditions": C.merge(old.get("conditions"), [cond], now=now, generation=obj.generation),
        "requested": requested,
        "allocated": allocated,
        "available": allocated,
        "status": state,
        "statusReason": reason,
        "lastModified": C.rfc3339(now) if changed else old.get("lastModified"),
    }


def status_patch(current: Mapping, desired: Mapping) -> dict:
    """The merge-patch of ``status`` for the provisioned fields; ``{}``: no write."""
    patch: dict = {}
    for key in PROVISIONED_FIELDS:
        want, have = desired.get(key), current.get(key)
        if want != have:
            patch[key] = want
    return patch
