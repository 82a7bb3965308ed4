"""Owner reference to a Function (pure)."""

from __future__ import annotations

from lambdakube.models import API_VERSION


def owner_reference(function_name: str, function_uid: str) -> dict:
    # No blockOwnerDeletion: it needs update rights on functions/finalizers, which the
    # router (which also builds pods) should not need; our finalizer deletes the pods
    # before the Function goes anyway.
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": function_name,
        "uid": function_uid,
        "controller": True,
    }
