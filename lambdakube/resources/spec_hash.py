"""The hash that tells an up-to-date environment from one of an older spec.

Only the fields that shape what runs inside an environment are hashed (handler, image,
code, env and the references of ``envValueFrom``/``envFrom``, resources, timeout, the
ServiceAccount):
changing concurrency settings or the idle timeout must not roll every pod. The hash is
computed from the parsed model, so defaults filled in by the API server and absent
optional fields hash the same, and ``exclude_none`` keeps the hash stable when a new
optional field is added to the model.

A changed *reference* (another Secret, key or prefix) rolls the pods; a changed
Secret's or ConfigMap's *content* does not, as with a Deployment: the kubelet reads the
value when it starts a container, so new values reach only environments started after
the change (a rollout: change something shaping, or delete the pods).
"""

from __future__ import annotations

import hashlib
import json

from lambdakube.models import CONFIG_FIELDS, FunctionSpec

#: Fields of ``FunctionSpec`` (python names) that change what an environment runs: the
#: fields of ``EnvironmentConfig``, what a published version snapshots (one list).
SHAPING_FIELDS = CONFIG_FIELDS
#: Shaping fields added after pods were labelled with hashes: left out of the hash while
#: empty, so that an upgrade does not roll every environment of every function.
ABSENT_WHEN_EMPTY = frozenset({"env_value_from", "env_from"})
#: Shaping fields added later with a default: left out of the hash at that default (the
#: same reason: an upgrade must not roll environments whose spec did not change).
ABSENT_AT_DEFAULT = {"per_environment_concurrency": 1}
HASH_LENGTH = 10


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def spec_hash(spec: FunctionSpec) -> str:
    """Stable short hash of the environment-shaping part of ``spec`` (label-safe hex)."""
    fields = {
        f
        for f in SHAPING_FIELDS
        if (f not in ABSENT_WHEN_EMPTY or getattr(spec, f))
        and (f not in ABSENT_AT_DEFAULT or getattr(spec, f) != ABSENT_AT_DEFAULT[f])
    }
    shaping = spec.model_dump(mode="json", by_alias=True, include=fields, exclude_none=True)
    return _digest(shaping)


def code_hash(spec: FunctionSpec) -> str | None:
    """Hash of the inline code (module name and source), None without inline code."""
    if spec.code is None:
        return None
    return _digest({"module": spec.code.inline.module, "source": spec.code.inline.source})
