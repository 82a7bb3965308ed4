"""The pydantic models reject what the CRD's schema and CEL rules reject."""

import re

import pytest
from pydantic import ValidationError

from lambdakube import crdgen
from lambdakube.models import ConcurrencyQuotaSpec, FunctionSpec
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
