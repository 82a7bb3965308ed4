"""The pydantic models reject what the CRD's schema and CEL rules reject."""

import re

import pytest
from pydantic import ValidationError

from lambdakube import crdgen
from lambdakube.models import (
    CONFIG_FIELDS,
    ConcurrencyQuotaSpec,
    EnvironmentConfig,
    FunctionAliasSpec,
    FunctionSpec,
    FunctionVersionSpec,
    valid_alias_name,
)
from tests import env_ref_cases

INLINE = {"code": {"inline": {"source": "def handler(e, c):\n    return e\n"}}}


def spec(**fields):
    return FunctionSpec.model_validate({"handler": "index.handler", **INLINE, **fields})


def test_defaults_follow_lambda():
    s = spec()
    assert s.timeout_seconds == 3
    assert s.resources.memory_size == 128
    assert s.provisioned_concurrency == 0
    assert s.reserved_concurrency is None
    assert s.async_.max_retry_attempts == 2
    assert s.async_.maximum_event_age_seconds == 21600
    assert s.concurrency_cap is None


def test_concurrency_cap_is_the_smaller_of_reserved_and_max():
    assert spec(reservedConcurrency=5, maxConcurrency=8).concurrency_cap == 5
    assert spec(maxConcurrency=3).concurrency_cap == 3


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"timeoutSeconds": 0}, "greater than or equal to 1"),
        ({"timeoutSeconds": 901}, "less than or equal to 900"),
        ({"provisionedConcurrency": -1}, "greater than or equal to 0"),
        ({"reservedConcurrency": 2, "provisionedConcurrency": 3}, "must not exceed reservedConcurrency"),
        ({"maxConcurrency": 1, "provisionedConcurrency": 2}, "must not exceed maxConcurrency"),
        ({"handler": "handler"}, "String should match pattern"),
        ({"handler": "other.handler"}, "handler must be <code.inline.module>.<function>"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"env": {"1BAD": "x"}}, "String should match pattern"),
        ({"async": {"maxRetryAttempts": 3}}, "less than or equal to 2"),
        ({"async": {"onFailure": {"function": "a", "queue": "b"}}}, "exactly one of function or queue"),
        ({"async": {"onFailure": {}}}, "exactly one of function or queue"),
        ({"serviceAccountName": "Builder"}, "String should match pattern"),
        ({"serviceAccountName": "a" * 254}, "at most 253 characters"),
        ({"perEnvironmentConcurrency": 2}, "needs a Runtime API runtime"),
        ({"perEnvironmentConcurrency": 2, "runtime": "python3.12"}, "needs a Runtime API runtime"),
        ({"perEnvironmentConcurrency": 0, "runtime": "nodejs20.x"}, "greater than or equal to 1"),
        ({"perEnvironmentConcurrency": 65, "runtime": "nodejs20.x"}, "less than or equal to 64"),
    ],
)
def test_invalid_specs_are_rejected_with_a_clear_message(fields, message):
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def test_image_or_code_is_required():
    with pytest.raises(ValidationError, match="set image"):
        FunctionSpec.model_validate({"handler": "app.handler"})
    assert FunctionSpec.model_validate({"handler": "app.handler", "image": "me/fn:1"}).image == "me/fn:1"


def test_quota_defaults_and_rules():
    q = ConcurrencyQuotaSpec()
    assert (q.concurrent_executions, q.minimum_unreserved) == (1000, 100)
    assert (q.scaling_rate.burst, q.scaling_rate.period_seconds) == (1000, 10)
    with pytest.raises(ValidationError, match="minimumUnreserved must not exceed"):
        ConcurrencyQuotaSpec.model_validate({"concurrentExecutions": 50})


def test_committed_crds_match_the_models():
    assert crdgen.stale() == [], "run `lambdakube crds` and commit crds/"


def test_structural_schema_has_no_refs_or_unions():
    text = crdgen.render(crdgen.function_crd)
    for forbidden in ("$ref", "anyOf", "$defs", "title:", "propertyNames", "patternProperties"):
        assert forbidden not in text
    schema = crdgen.function_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_schema = schema["properties"]["spec"]
    assert spec_schema["required"] == ["handler"]
    assert spec_schema["properties"]["env"]["additionalProperties"]["type"] == "string"
    assert spec_schema["properties"]["timeoutSeconds"] == {
        "default": 3,
        "maximum": 900,
        "minimum": 1,
        "type": "integer",
    }


@pytest.mark.parametrize("case", env_ref_cases.CASES.values(), ids=env_ref_cases.CASES.keys())
def test_env_references_are_judged_as_the_api_server_judges_them(case):
    fields, message, _api_message = case
    if message is None:
        assert spec(**fields).has_env_refs
    else:
        with pytest.raises(ValidationError, match=re.escape(message)):
            spec(**fields)


def test_a_spec_without_references_has_none():
    assert not spec(env={"A": "1"}).has_env_refs


def alias_spec(function_version="1", weights=None, provisioned=0):
    body: dict = {"function": "hello", "functionVersion": function_version}
    if weights is not None:
        body["routingConfig"] = {"additionalVersionWeights": weights}
    if provisioned:
        body["provisionedConcurrency"] = provisioned
    return FunctionAliasSpec.model_validate(body)


@pytest.mark.parametrize(
    "function_version, weights, message",
    [
        pytest.param("1", None, None, id="one-version"),
        pytest.param("$LATEST", None, None, id="latest"),
        pytest.param("1", {"2": 0.1}, None, id="weighted"),
        pytest.param("1", {"2": 1.0}, None, id="weight-1-is-lambdas-maximum"),
        pytest.param("1", {}, None, id="empty-weights"),
        pytest.param("$LATEST", {"2": 0.1}, "cannot point to \\$LATEST", id="latest-and-another"),
        pytest.param("1", {"1": 0.1}, "must differ from functionVersion", id="same-version"),
        pytest.param("1", {"2": 0.1, "3": 0.1}, "at most 1 item", id="two-additional"),
        pytest.param("1", {"2": 1.5}, "less than or equal to 1", id="weight-over-1"),
        pytest.param("1", {"2": -0.1}, "greater than or equal to 0", id="negative-weight"),
        pytest.param("1", {"$LATEST": 0.1}, "String should match pattern", id="latest-as-additional"),
        pytest.param("1", {"01": 0.1}, "String should match pattern", id="leading-zero"),
        pytest.param("v1", None, "String should match pattern", id="not-a-version"),
    ],
)
def test_alias_rules_follow_lambda(function_version, weights, message):
    if message is None:
        assert alias_spec(function_version, weights).function_version == function_version
    else:
        with pytest.raises(ValidationError, match=message):
            alias_spec(function_version, weights)


@pytest.mark.parametrize(
    "name, valid",
    [("live", True), ("v2", True), ("123", False), ("Live", False), ("a_b", False)],
)
def test_alias_names_are_kubernetes_names_not_all_digits(name, valid):
    assert valid_alias_name(name) is valid


def test_a_version_snapshots_the_shaping_fields_and_keeps_the_functions_scaling():
    fn = spec(reservedConcurrency=4, idleTimeoutSeconds=9, provisionedConcurrency=2, env={"A": "1"})
    config = EnvironmentConfig.model_validate({"handler": "index.other", **INLINE, "timeoutSeconds": 7})
    at = fn.at_version(config)
    assert (at.handler, at.timeout_seconds, at.env) == ("index.other", 7, {})
    assert (at.reserved_concurrency, at.idle_timeout_seconds, at.provisioned_concurrency) == (4, 9, 0)
    assert fn.config().env == {"A": "1"}
    assert CONFIG_FIELDS == set(EnvironmentConfig.model_fields) and CONFIG_FIELDS < set(FunctionSpec.model_fields)


@pytest.mark.parametrize(
    "config, message",
    [
        pytest.param({"handler": "main.h", **INLINE}, "handler must be <code.inline.module>", id="module"),
        pytest.param({"handler": "index.h"}, "set image", id="no-code"),
        pytest.param({"handler": "index.h", **INLINE, "reservedConcurrency": 1}, "Extra inputs", id="scaling"),
    ],
)
def test_version_config_has_the_functions_rules(config, message):
    with pytest.raises(ValidationError, match=message):
        FunctionVersionSpec.model_validate({"function": "hello", "version": 1, "config": config})


@pytest.mark.parametrize(
    "provisioned, per_environment, environments",
    [(0, 1, 0), (3, 1, 3), (3, 2, 2), (4, 2, 2), (5, 4, 2), (1, 64, 1)],
    ids=lambda v: str(v),
)
def test_provisioned_concurrency_needs_ceil_p_over_n_environments(provisioned, per_environment, environments):
    runtime = {"runtime": "nodejs20.x"} if per_environment > 1 else {}
    got = spec(provisionedConcurrency=provisioned, perEnvironmentConcurrency=per_environment, **runtime)
    assert got.provisioned_environments == environments


def test_per_environment_concurrency_at_its_default_keeps_the_spec_hash():
    """Added later: a spec at the default hashes as before (an upgrade rolls no pod);
    another value is a new hash (the runtime needs it from its start)."""
    from lambdakube.resources import spec_hash
    from lambdakube.resources.spec_hash import SHAPING_FIELDS, _digest

    node = spec(runtime="nodejs20.x")
    before = SHAPING_FIELDS - {"per_environment_concurrency", "env_value_from", "env_from"}
    assert spec_hash(node) == _digest(node.model_dump(mode="json", by_alias=True, include=before, exclude_none=True))
    assert spec_hash(node) == spec_hash(spec(runtime="nodejs20.x", perEnvironmentConcurrency=1))
    assert spec_hash(node) != spec_hash(spec(runtime="nodejs20.x", perEnvironmentConcurrency=2))
    assert "perEnvironmentConcurrency" not in node.model_dump(by_alias=True, exclude_defaults=True)
