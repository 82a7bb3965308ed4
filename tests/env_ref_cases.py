"""Function specs with Secret/ConfigMap references, valid and not, as one table for both
judges: the pydantic models (``tests/unit/test_models.py``) and the real kube-apiserver's
schema and CEL rules (``tests/cluster/test_crds.py``). Each case: (spec fields, the
models' message, the API server's message); both messages None for a valid spec."""

from __future__ import annotations

SECRET = {"secretKeyRef": {"name": "db", "key": "password"}}
CONFIG = {"configMapKeyRef": {"name": "settings.v1", "key": "log.level", "optional": True}}

CASES: dict[str, tuple[dict, str | None, str | None]] = {
    "a secret key and an optional configmap key": (
        {"envValueFrom": {"DB_PASSWORD": SECRET, "LEVEL": CONFIG}},
        None,
        None,
    ),
    "whole objects, one with a prefix": (
        {
            "envFrom": [
                {"secretRef": {"name": "db"}, "prefix": "DB_"},
                {"configMapRef": {"name": "c", "optional": True}},
            ]
        },
        None,
        None,
    ),
    "literal env and references side by side": (
        {"env": {"A": "1"}, "envValueFrom": {"B": SECRET}, "envFrom": [{"secretRef": {"name": "db"}}]},
        None,
        None,
    ),
    "both a secret and a configmap key": (
        {"envValueFrom": {"X": {**SECRET, **CONFIG}}},
        "exactly one of secretKeyRef or configMapKeyRef",
        "a variable source names exactly one of secretKeyRef or configMapKeyRef",
    ),
    "neither a secret nor a configmap key": (
        {"envValueFrom": {"X": {}}},
        "exactly one of secretKeyRef or configMapKeyRef",
        "a variable source names exactly one of secretKeyRef or configMapKeyRef",
    ),
    "a name in env and in envValueFrom": (
        {"env": {"X": "1"}, "envValueFrom": {"X": SECRET}},
        "set in env or in envValueFrom, not in both: X",
        "a variable is set in env or in envValueFrom, not in both",
    ),
    "a LAMBDAKUBE_ name": (
        {"envValueFrom": {"LAMBDAKUBE_HANDLER": SECRET}},
        "must not start with LAMBDAKUBE_",
        "envValueFrom names must not start with LAMBDAKUBE_",
    ),
    "an invalid variable name": (
        {"envValueFrom": {"BAD-NAME": SECRET}},
        "String should match pattern",
        "envValueFrom names must be valid environment variable names",
    ),
    "a key that is a path": (
        {"envValueFrom": {"X": {"secretKeyRef": {"name": "db", "key": ".."}}}},
        "key must not be '.' or start with '..'",
        "key must not be '.' or start with '..'",
    ),
    "an object name that is not a DNS subdomain": (
        {"envValueFrom": {"X": {"secretKeyRef": {"name": "DB", "key": "k"}}}},
        "String should match pattern",
        "spec.envValueFrom.X.secretKeyRef.name: Invalid value",
    ),
    "envFrom with both a secret and a configmap": (
        {"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]},
        "exactly one of secretRef or configMapRef",
        "an envFrom source names exactly one of secretRef or configMapRef",
    ),
    "envFrom with neither": (
        {"envFrom": [{"prefix": "P_"}]},
        "exactly one of secretRef or configMapRef",
        "an envFrom source names exactly one of secretRef or configMapRef",
    ),
    "an envFrom prefix of LAMBDAKUBE_": (
        {"envFrom": [{"secretRef": {"name": "a"}, "prefix": "LAMBDAKUBE_"}]},
        "prefix must not start with LAMBDAKUBE_",
        "prefix must not start with LAMBDAKUBE_",
    ),
    "more than 16 envFrom sources": (
        {"envFrom": [{"secretRef": {"name": f"s{i}"}} for i in range(17)]},
        "at most 16 items",
        "must have at most 16 items",
    ),
    "an unknown field in a reference": (
        {"envValueFrom": {"X": {"secretKeyRef": {"name": "db", "key": "k", "surprise": 1}}}},
        "Extra inputs are not permitted",
        'unknown field "spec.envValueFrom.X.secretKeyRef.surprise"',
    ),
}
