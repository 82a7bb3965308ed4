"""The EventSourceMapping model judges specs as its CRD does (``tests.esm_cases``)."""

import pytest
from pydantic import ValidationError

from lambdakube.models import EventSourceMappingSpec
from tests import esm_cases


@pytest.mark.parametrize("case", esm_cases.CASES.values(), ids=esm_cases.CASES.keys())
def test_models_judge_the_shared_cases(case):
    spec, message, _ = case
    if message is None:
        EventSourceMappingSpec.model_validate(spec)
        return
    with pytest.raises(ValidationError) as info:
        EventSourceMappingSpec.model_validate(spec)
    assert message in str(info.value)


def test_defaults_follow_lambda():
    queue = EventSourceMappingSpec.model_validate(esm_cases.QUEUE)
    assert (queue.source_kind, queue.effective_batch_size, queue.maximum_concurrency) == ("queue", 10, 1000)
    assert (queue.function, queue.qualifier, queue.enabled) == ("consumer", None, True)
    assert queue.queue is not None and queue.queue.visibility_timeout_seconds == 30
    kafka = EventSourceMappingSpec.model_validate({**esm_cases.KAFKA, "functionName": "consumer:3"})
    assert (kafka.source_kind, kafka.effective_batch_size, kafka.qualifier) == ("kafka", 100, "3")


def test_filter_patterns_must_be_json_objects():
    with pytest.raises(ValidationError, match="filters\\[0\\].pattern is not JSON"):
        EventSourceMappingSpec.model_validate({**esm_cases.QUEUE, "filterCriteria": {"filters": [{"pattern": "{x"}]}})
