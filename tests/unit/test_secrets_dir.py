"""The local backend's Secret/ConfigMap files (``backends/secrets_dir``): what resolves,
in which order, and errors that name the reference and never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdakube.models import FunctionSpec
from lambdakube_router.backends.secrets_dir import ObjectDirs, UnresolvedReference

INLINE = {"inline": {"source": "def handler(e, c):\n    return e\n"}}
VALUE = "s3cr3t-value"


def spec(**fields) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", "code": INLINE, **fields})


def key_ref(kind: str, name: str, key: str, optional: bool | None = None) -> dict:
    ref: dict = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {kind: ref}


@pytest.fixture
def dirs(tmp_path: Path) -> ObjectDirs:
    """secrets: default/db {password, user, 1bad, LAMBDAKUBE_HANDLER, ..data/}, default/api
    {user}; configmaps: default/settings {level}."""
    files = {
        "secrets/default/db/password": VALUE + "\n",
        "secrets/default/db/user": "app",
        "secrets/default/db/1bad": "skipped",
        "secrets/default/db/LAMBDAKUBE_HANDLER": "evil.x",
        "secrets/default/db/..data/user": "a mounted volume's own directory",
        "secrets/default/api/user": "api-user",
        "configmaps/default/settings/level": "debug",
    }
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ObjectDirs(secrets=tmp_path / "secrets", config_maps=tmp_path / "configmaps")


RESOLVES = {
    "a secret key, as-is (the newline kept, as a mounted volume has it)": (
        {"envValueFrom": {"DB_PASSWORD": key_ref("secretKeyRef", "db", "password")}},
        {"DB_PASSWORD": VALUE + "\n"},
    ),
    "a configmap key": (
        {"envValueFrom": {"LEVEL": key_ref("configMapKeyRef", "settings", "level")}},
        {"LEVEL": "debug"},
    ),
    "optional and missing: a missing object or key sets nothing": (
        {
            "envValueFrom": {
                "A": key_ref("secretKeyRef", "nope", "k", optional=True),
                "B": key_ref("secretKeyRef", "db", "nope", optional=True),
            },
            "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
        },
        {},
    ),
    "a whole secret: invalid names, LAMBDAKUBE_ and a volume's ..data skipped": (
        {"envFrom": [{"secretRef": {"name": "db"}}]},
        {"password": VALUE + "\n", "user": "app"},
    ),
    "a prefix, and a later envFrom source wins": (
        {"envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}, {"secretRef": {"name": "api"}, "prefix": "DB_"}]},
        {"DB_password": VALUE + "\n", "DB_user": "api-user", "DB_1bad": "skipped", "DB_LAMBDAKUBE_HANDLER": "evil.x"},
    ),
    "envValueFrom wins over envFrom": (
        {
            "envFrom": [{"secretRef": {"name": "db"}}],
            "envValueFrom": {"user": key_ref("configMapKeyRef", "settings", "level")},
        },
        {"password": VALUE + "\n", "user": "debug"},
    ),
}


@pytest.mark.parametrize("case", RESOLVES.values(), ids=RESOLVES.keys())
def test_resolves_as_the_kubelet_does(dirs, case):
    fields, expected = case
    assert dirs.resolve("default", spec(**fields)) == expected
    assert dirs.problems("default", spec(**fields)) == []


FAILS = {
    "a missing key": (
        {"envValueFrom": {"DB_PASSWORD": key_ref("secretKeyRef", "db", "nope")}},
        'env DB_PASSWORD: secret "db" key "nope" not found in {root}/secrets/default/db',
    ),
    "a missing secret": (
        {"envValueFrom": {"DB_PASSWORD": key_ref("secretKeyRef", "gone", "password")}},
        'env DB_PASSWORD: secret "gone" not found in {root}/secrets/default',
    ),
    "another namespace has its own objects": (
        {"envValueFrom": {"LEVEL": key_ref("configMapKeyRef", "settings", "level")}},
        'env LEVEL: configmap "settings" not found in {root}/configmaps/other',
    ),
    "a missing whole object (another, resolvable, says nothing)": (
        {"envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "gone"}}]},
        'envFrom[1]: configmap "gone" not found in {root}/configmaps/default',
    ),
}


@pytest.mark.parametrize("case", FAILS.values(), ids=FAILS.keys())
def test_an_unresolvable_reference_is_named_without_any_value(dirs, tmp_path, case):
    fields, message = case
    namespace = "other" if "LEVEL" in str(fields) else "default"
    expected = message.format(root=tmp_path)
    with pytest.raises(UnresolvedReference) as err:
        dirs.resolve(namespace, spec(**fields))
    assert str(err.value) == expected
    assert dirs.problems(namespace, spec(**fields)) == [expected]
    assert VALUE not in str(err.value)


def test_without_a_directory_only_optional_references_work():
    none = ObjectDirs()
    assert none.resolve("default", spec(envValueFrom={"A": key_ref("secretKeyRef", "db", "k", optional=True)})) == {}
    assert none.problems("default", spec(envFrom=[{"configMapRef": {"name": "c"}}])) == [
        'envFrom[0]: configmap "c": no --configmaps-dir given'
    ]
    assert none.problems("default", spec(envValueFrom={"A": key_ref("secretKeyRef", "db", "k")})) == [
        'env A: secret "db" key "k": no --secrets-dir given'
    ]


def test_a_value_no_environment_can_hold_is_refused_without_showing_it(tmp_path):
    (tmp_path / "default" / "db").mkdir(parents=True)
    (tmp_path / "default" / "db" / "k").write_bytes(b"s3cr3t\0tail")
    (tmp_path / "default" / "db" / "bin").write_bytes(b"\xff\xfes3cr3t")
    dirs = ObjectDirs(secrets=tmp_path)
    for key, why in (("k", "contains a NUL byte"), ("bin", "is not UTF-8 text")):
        (problem,) = dirs.problems("default", spec(envValueFrom={"A": key_ref("secretKeyRef", "db", key)}))
        assert problem.endswith(why) and "s3cr3t" not in problem
