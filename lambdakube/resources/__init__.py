"""Pure builders of the objects created for a Function: environment pods, generic pods,
code ConfigMaps, owner references, the spec hash and the shared label names.

Shared by the operator (provisioned pods, the generic pool, code ConfigMaps) and the
router's kubernetes backend (on-demand pods, claims), so both build byte-identical
objects and agree on every label. No API calls here.
"""

from . import labels
from .code import CODE_DIR, code_configmap, code_configmap_name
from .owner import owner_reference
from .pods import (
    GENERIC_MEMORY_MB,
    environment_pod,
    fits_generic,
    generic_pod,
    new_env_id,
    runtime_image_hash,
)
from .spec_hash import code_hash, spec_hash

__all__ = [
    "CODE_DIR", "GENERIC_MEMORY_MB", "code_configmap", "code_configmap_name", "code_hash",
    "environment_pod", "fits_generic", "generic_pod", "labels", "new_env_id",
    "owner_reference", "runtime_image_hash", "spec_hash",
]
