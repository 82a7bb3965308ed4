"""Versions on a cluster, pure: what to publish (numbering, idempotence), what each
version runs, and the provisioned status of versions and aliases. A fixed NOW; tables
of named cases."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lambdakube.models import FunctionSpec
from lambdakube.resources import spec_hash
from lambdakube_operator.versions import (
    FAILED,
    IN_PROGRESS,
    READY,
    Published,
    provisioned_statuses,
    recorded_status,
    status_patch,
    to_publish,
    version_body,
    version_specs,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def code(answer: int) -> dict:
    return {"inline": {"source": f"def handler(event, context):\n    return {answer}\n"}}


def fn_spec(answer: int = 1, **kw) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", "code": code(answer), "publish": True, **kw})


def version(number: int, answer: int, *, name: str | None = None, provisioned: int = 0, status=None) -> Published:
    return Published.version(
        {
            "metadata": {"name": name or f"hello-v{number}", "generation": 1},
            "spec": {
                "function": "hello",
                "version": number,
                "config": {"handler": "index.handler", "code": code(answer)},
                "provisionedConcurrency": provisioned,
            },
            "status": status or {},
        }
    )


def alias(name: str, target: str, *, provisioned: int = 0, weights=None, status=None) -> Published:
    spec: dict = {"function": "hello", "functionVersion": target, "provisionedConcurrency": provisioned}
    if weights:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return Published.alias({"metadata": {"name": name, "generation": 2}, "spec": spec, "status": status or {}})


H1, H2 = spec_hash(fn_spec(1)), spec_hash(fn_spec(2))

# (spec, Function status, visible versions) -> (number published, or None)
PUBLISH_CASES = {
    "no versions yet: version 1": (fn_spec(1), {}, [], 1),
    "publish off: nothing": (fn_spec(1, publish=False), {}, [], None),
    "unchanged since version 1: nothing": (
        fn_spec(1),
        {"latestVersion": 1, "latestVersionSpecHash": H1},
        [version(1, 1)],
        None,
    ),
    "changed code: the next number": (
        fn_spec(2),
        {"latestVersion": 1, "latestVersionSpecHash": H1},
        [version(1, 1)],
        2,
    ),
    "scaling changes do not publish": (
        fn_spec(1, reservedConcurrency=5),
        {"latestVersion": 1, "latestVersionSpecHash": H1},
        [version(1, 1)],
        None,
    ),
    "the index lags behind our create: the recorded hash stands in (no second publish)": (
        fn_spec(1),
        {"latestVersion": 1, "latestVersionSpecHash": H1},
        [],
        None,
    ),
    "a deleted newest version's number is never reused": (
        fn_spec(2),
        {"latestVersion": 3, "latestVersionSpecHash": H1},
        [version(1, 1)],
        4,
    ),
    "a visible version newer than the record is what counts (user-made, or a conflicted create)": (
        fn_spec(2),
        {"latestVersion": 1, "latestVersionSpecHash": H1},
        [version(1, 1), version(2, 2)],
        None,
    ),
    "a user's version 5 moves the numbering on": (fn_spec(2), {}, [version(5, 1)], 6),
}


@pytest.mark.parametrize("case", PUBLISH_CASES.values(), ids=PUBLISH_CASES.keys())
def test_to_publish(case):
    spec, status, versions, want = case
    got = to_publish("hello", spec, status, versions)
    assert (got.number if got else None) == want
    if got:
        assert got.name == f"hello-v{want}"
        assert got.spec_hash == spec_hash(spec)


def test_a_published_version_is_the_config_frozen_and_owned_by_its_function():
    spec = fn_spec(2, env={"A": "b"}, reservedConcurrency=3)
    publish = to_publish("hello", spec, {}, [])
    assert publish is not None
    body = version_body(namespace="ns", function="hello", function_uid="uid-1", spec=spec, publish=publish)
    assert body["metadata"]["name"] == "hello-v1"
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "Function",
            "name": "hello",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert body["spec"]["version"] == 1 and body["spec"]["function"] == "hello"
    assert body["spec"]["config"]["env"] == {"A": "b"}
    assert "reservedConcurrency" not in body["spec"]["config"]
    # What it runs hashes as the head it was published from.
    [v] = [Published.version(body)]
    assert spec_hash(version_specs(spec, [v], [])["1"]) == spec_hash(spec)


RECORD_CASES = {
    "just published": ({}, [], to_publish("hello", fn_spec(1), {}, []), (1, H1)),
    "nothing known": ({}, [], None, (None, None)),
    "a visible newest version: its hash": ({"latestVersion": 1}, [version(1, 1), version(2, 2)], None, (2, H2)),
    "the recorded one, not visible (lag or deleted)": (
        {"latestVersion": 3, "latestVersionSpecHash": "abc"},
        [version(1, 1)],
        None,
        (3, "abc"),
    ),
}


@pytest.mark.parametrize("case", RECORD_CASES.values(), ids=RECORD_CASES.keys())
def test_recorded_status(case):
    status, versions, published, (number, h) = case
    assert recorded_status(status, versions, fn_spec(1), published) == {
        "latestVersion": number,
        "latestVersionSpecHash": h,
    }


def test_each_version_runs_its_snapshot_with_its_own_and_its_aliases_provisioned_share():
    head = fn_spec(3, provisionedConcurrency=1, reservedConcurrency=10)
    specs = version_specs(
        head,
        [version(1, 1, provisioned=1), version(2, 2)],
        [alias("live", "1", provisioned=4, weights={"2": 0.25})],
    )
    assert {n: s.provisioned_concurrency for n, s in specs.items()} == {"1": 1 + 3, "2": 1}
    assert specs["1"].code == fn_spec(1).code and specs["2"].code == fn_spec(2).code
    assert specs["1"].reserved_concurrency == 10  # scaling stays the Function's


# (versions, aliases, ready per version, failures) -> {(kind, name): (requested, allocated, status)}
STATUS_CASES = {
    "an alias's environments all Ready": (
        [version(1, 1)],
        [alias("live", "1", provisioned=2)],
        {"1": 2},
        {},
        {("FunctionVersion", "hello-v1"): (0, 0, READY), ("FunctionAlias", "live"): (2, 2, READY)},
    ),
    "still starting": (
        [version(1, 1)],
        [alias("live", "1", provisioned=2)],
        {"1": 1},
        {},
        {("FunctionVersion", "hello-v1"): (0, 0, READY), ("FunctionAlias", "live"): (2, 1, IN_PROGRESS)},
    ),
    "a version's own count is served first, then its aliases by name": (
        [version(1, 1, provisioned=1)],
        [alias("b", "1", provisioned=1), alias("a", "1", provisioned=1)],
        {"1": 2},
        {},
        {
            ("FunctionVersion", "hello-v1"): (1, 1, READY),
            ("FunctionAlias", "a"): (1, 1, READY),
            ("FunctionAlias", "b"): (1, 0, IN_PROGRESS),
        },
    ),
    "a weighted alias counts both versions' shares": (
        [version(1, 1), version(2, 2)],
        [alias("live", "1", provisioned=4, weights={"2": 0.5})],
        {"1": 2, "2": 1},
        {},
        {
            ("FunctionVersion", "hello-v1"): (0, 0, READY),
            ("FunctionVersion", "hello-v2"): (0, 0, READY),
            ("FunctionAlias", "live"): (4, 3, IN_PROGRESS),
        },
    ),
    "a version whose environments cannot start: FAILED with the reason": (
        [version(1, 1, provisioned=1)],
        [alias("live", "1", provisioned=1)],
        {},
        {"1": "Init failed: ZeroDivisionError"},
        {("FunctionVersion", "hello-v1"): (1, 0, FAILED), ("FunctionAlias", "live"): (1, 0, FAILED)},
    ),
    "an alias of a version that is not published: FAILED": (
        [],
        [alias("live", "7", provisioned=1)],
        {},
        {},
        {("FunctionAlias", "live"): (1, 0, FAILED)},
    ),
}


@pytest.mark.parametrize("case", STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_provisioned_statuses(case):
    versions, aliases, ready, failures, want = case
    got = provisioned_statuses(versions=versions, aliases=aliases, ready=ready, failures=failures, now=NOW)
    assert {k: (s["requested"], s["allocated"], s["status"]) for k, s in got.items()} == want
    for s in got.values():
        assert s["available"] == s["allocated"]
        assert (s["statusReason"] is not None) == (s["status"] == FAILED)
        assert s["conditions"][0]["status"] == ("True" if s["status"] == READY else "False")


def test_provisioned_status_is_written_only_when_it_changes_and_last_modified_moves_with_the_request():
    first = provisioned_statuses(
        versions=[version(1, 1)], aliases=[alias("live", "1", provisioned=2)], ready={}, failures={}, now=NOW
    )[("FunctionAlias", "live")]
    assert first["lastModified"] == "2026-01-01T12:00:00Z"
    later = datetime(2026, 1, 1, 13, 0, 0, tzinfo=timezone.utc)
    again = provisioned_statuses(
        versions=[version(1, 1)],
        aliases=[alias("live", "1", provisioned=2, status=first)],
        ready={},
        failures={},
        now=later,
    )[("FunctionAlias", "live")]
    assert status_patch(first, again) == {}
    raised = provisioned_statuses(
        versions=[version(1, 1)],
        aliases=[alias("live", "1", provisioned=3, status=first)],
        ready={},
        failures={},
        now=later,
    )[("FunctionAlias", "live")]
    patch = status_patch(first, raised)
    assert set(patch) == {"requested", "lastModified", "conditions"}
    assert patch["lastModified"] == "2026-01-01T13:00:00Z" and patch["requested"] == 3
    assert patch["conditions"][0]["message"] == "0/3 provisioned environments ready"
    assert first["status"] == IN_PROGRESS
