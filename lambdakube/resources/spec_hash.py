"""The hash that tells an up-to-date environment from one of an older spec.

Only the fields that shape what runs inside an environment are hashed (handler, image,
code, env, resources, timeout, service account): changing concurrency settings or the idle timeout must
not roll every pod. The hash is computed from the parsed model, so defaults filled in by
the API server and absent optional fields hash the same, and ``exclude_none`` keeps the
hash stable when a new optional field is added to the model.
"""

from __future__ import annotations

import hashlib
import json

from lambdakube.models import FunctionSpec

#: Fields of ``FunctionSpec`` (python names) that change what an environment runs.
SHAPING_FIELDS = frozenset({"handler", "image", "code", "env", "resources", "timeout_seconds", "service_account_name"})
HASH_LENGTH = 10


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def spec_hash(spec: FunctionSpec) -> str:
    """Stable short hash of the environment-shaping part of ``spec`` (label-safe hex)."""
    shaping = spec.model_dump(mode="json", by_alias=True, include=set(SHAPING_FIELDS), exclude_none=True)
    return _digest(shaping)


def code_hash(spec: FunctionSpec) -> str | None:
    """Hash of the inline code (module name and source), None without inline code."""
    if spec.code is None:
        return None
    return _digest({"module": spec.code.inline.module, "source": spec.code.inline.source})
