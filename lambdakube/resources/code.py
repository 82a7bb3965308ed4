"""The ConfigMap that carries a Function's inline code.

Why a ConfigMap and not ``LAMBDAKUBE_INLINE_CODE``: inline source may be 256 KiB, and
Linux caps a single environment string at 128 KiB (MAX_ARG_STRLEN), so the variable
would fail for large sources at exec time. The ConfigMap is mounted read-only at
``CODE_DIR`` and the runtime imports the handler's module from there
(``LAMBDAKUBE_CODE_DIR``).

The name carries the code hash and the ConfigMap is immutable: an environment keeps
the exact code it started with during a rollout, and the kubelet need not watch it.
ConfigMaps of older code are deleted by the operator once no pod mounts them; they are
also owned by the Function, so garbage collection removes them with it.
"""

from __future__ import annotations

from lambdakube.models import FunctionSpec

from . import labels
from .owner import owner_reference
from .spec_hash import code_hash

CODE_DIR = "/var/lambdakube/code"


def code_configmap_name(function_name: str, spec: FunctionSpec) -> str | None:
    digest = code_hash(spec)
    if digest is None:
        return None
    return f"{function_name}-code-{digest}"


def code_configmap(
    *, function_name: str, namespace: str, function_uid: str, spec: FunctionSpec,
    managed_by: str = labels.OPERATOR_NAME,
) -> dict | None:
    """The ConfigMap for ``spec``'s inline code, or None when the code is in the image."""
    name = code_configmap_name(function_name, spec)
    if name is None or spec.code is None:
        return None
    inline = spec.code.inline
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                labels.FUNCTION: function_name,
                labels.CODE_HASH: code_hash(spec),
                labels.MANAGED_BY: managed_by,
            },
            "ownerReferences": [owner_reference(function_name, function_uid)],
        },
        "immutable": True,
        "data": {f"{inline.module}.py": inline.source},
    }
