"""Versions and aliases in the Snapshot: parsed from manifests and watched objects
through the same models, kept per function; those of a missing function are left out
with an error line, duplicates are errors."""

from __future__ import annotations

import logging

import pytest

from lambdakube_router.snapshot import (
    ALIAS_KIND,
    FUNCTION_KIND,
    VERSION_KIND,
    ManifestError,
    merge_files,
    parse_documents,
    ParsedFile,
)
from lambdakube_router.sources import ParsedObjects

API = "lambdakube.dev/v1alpha1"
CODE = {"inline": {"source": "def handler(e, c):\n    return 1\n"}}


def function(name="hello"):
    return {
        "apiVersion": API,
        "kind": FUNCTION_KIND,
        "metadata": {"name": name},
        "spec": {"handler": "index.handler", "code": CODE},
    }


def version(number=1, function_name="hello", name=None, **config):
    spec = {
        "function": function_name,
        "version": number,
        "config": {"handler": "index.handler", "code": CODE, **config},
    }
    return {
        "apiVersion": API,
        "kind": VERSION_KIND,
        "metadata": {"name": name or f"{function_name}-v{number}"},
        "spec": spec,
    }


def alias(name="live", function_version="1", weights=None, function_name="hello"):
    spec: dict = {"function": function_name, "functionVersion": function_version}
    if weights is not None:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"apiVersion": API, "kind": ALIAS_KIND, "metadata": {"name": name}, "spec": spec}


def test_versions_and_aliases_are_kept_per_function():
    snap, errors = parse_documents(
        [function(), version(1), version(2, name="any-name", timeoutSeconds=9), alias(weights={"2": 0.25})],
        "m.yaml",
        "default",
    )
    assert errors == []
    versions = snap.versions[("default", "hello")]
    assert sorted(versions) == [1, 2]
    assert versions[2].object_name == "any-name" and versions[2].spec.config.timeout_seconds == 9
    live = snap.aliases[("default", "hello")]["live"]
    assert (live.spec.function_version, live.spec.weights) == ("1", {"2": 0.25})
    assert live.revision_id == alias_revision(weights={"2": 0.25})
    assert live.revision_id != alias_revision(weights={"2": 0.5})


def alias_revision(**kw):
    snap, _ = parse_documents([alias(**kw)], "m.yaml", "default")
    return snap.aliases[("default", "hello")]["live"].revision_id


@pytest.mark.parametrize(
    "docs, error",
    [
        pytest.param([version(1), version(1, name="again")], "duplicate version 1 of default/hello", id="dup-version"),
        pytest.param([alias(), alias()], "duplicate alias of default/hello", id="dup-alias"),
        pytest.param([alias(name="123")], "must not be all digits", id="digit-alias"),
        pytest.param(
            [alias(function_version="$LATEST", weights={"2": 0.1})], "cannot point to $LATEST", id="alias-rule"
        ),
        pytest.param([version(1, handler="main.h")], "handler must be <code.inline.module>", id="version-rule"),
    ],
)
def test_invalid_versions_and_aliases_are_errors(docs, error):
    _, errors = parse_documents([function(), *docs], "m.yaml", "default")
    assert any(error in e for e in errors), errors


def test_versions_of_a_missing_function_are_left_out_with_an_error(caplog):
    snap, _ = parse_documents([version(1, function_name="gone"), alias(function_name="gone")], "m.yaml", "default")
    with caplog.at_level(logging.ERROR):
        merged = merge_files([("m.yaml", ParsedFile((0, 0, 0), snap))])
    assert merged.versions == {} and merged.aliases == {}
    assert "FunctionVersion 'gone-v1': ignored: no Function default/gone" in caplog.text
    assert "FunctionAlias 'live': ignored: no Function default/gone" in caplog.text


def test_a_version_in_two_files_is_refused():
    a, _ = parse_documents([function(), version(1)], "a.yaml", "default")
    b, _ = parse_documents([version(1, name="other")], "b.yaml", "default")
    with pytest.raises(ManifestError, match="duplicate version 1"):
        merge_files([("a.yaml", ParsedFile((0, 0, 0), a)), ("b.yaml", ParsedFile((0, 0, 0), b))])


def watched(kind, obj, uid):
    return {**obj, "metadata": {**obj["metadata"], "namespace": "team-a", "uid": uid, "resourceVersion": "1"}}


def test_watched_versions_and_aliases_change_the_snapshot():
    objects = ParsedObjects("team-a")
    assert objects.update(FUNCTION_KIND, ("team-a", "hello"), watched(FUNCTION_KIND, function(), "u1")).changed
    assert objects.update(VERSION_KIND, ("team-a", "hello-v1"), watched(VERSION_KIND, version(1), "u2")).changed
    assert objects.update(ALIAS_KIND, ("team-a", "live"), watched(ALIAS_KIND, alias(), "u3")).changed
    snap = objects.snapshot()
    assert list(snap.versions[("team-a", "hello")]) == [1]
    assert list(snap.aliases[("team-a", "hello")]) == ["live"]
    assert objects.update(ALIAS_KIND, ("team-a", "live"), None).changed
    assert objects.snapshot().aliases.get(("team-a", "hello"), {}) == {}
    assert objects.update(FUNCTION_KIND, ("team-a", "hello"), None).changed
    assert objects.snapshot().versions == {}  # its Function is gone: left out
