"""Pure builders of the objects the operator (and the router) create for a Function."""

from . import labels
from .code import CODE_DIR, code_configmap, code_configmap_name
from .owner import owner_reference
from .pods import environment_pod, new_env_id
from .spec_hash import code_hash, spec_hash

__all__ = [
    "CODE_DIR", "code_configmap", "code_configmap_name", "code_hash", "environment_pod",
    "labels", "new_env_id", "owner_reference", "spec_hash",
]
