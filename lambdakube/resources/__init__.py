"""Pure builders of what is made for a Function: environment pods, generic pods, the
runtime's ``/init`` body, owner references, the spec hash and the shared label names.

Shared by the operator (provisioned pods, the generic pool, their ``/init``) and the
router's kubernetes backend (on-demand pods, claims), so both build byte-identical
objects and agree on every label. No API calls here.
"""

from . import labels
from .code import init_body, needs_init
from .owner import owner_reference
from .pods import (
    GENERIC_MEMORY_MB,
    RuntimeImages,
    environment_pod,
    fits_generic,
    generic_pod,
    image_for,
    new_env_id,
    pod_address,
    runtime_image_hash,
)
from .spec_hash import code_hash, spec_hash

__all__ = [
    "GENERIC_MEMORY_MB",
    "RuntimeImages",
    "code_hash",
    "environment_pod",
    "fits_generic",
    "generic_pod",
    "image_for",
    "init_body",
    "labels",
    "needs_init",
    "new_env_id",
    "owner_reference",
    "pod_address",
    "runtime_image_hash",
    "spec_hash",
]
