"""Lambda's filter patterns (``pollers.filters``): one table of named cases."""

import json

import pytest

from lambdakube_router.pollers.filters import FilterError, compile_criteria, matches_any

SQS = {
    "messageId": "m1",
    "body": {"kind": "order", "total": 12.5, "tags": ["a", "b"], "customer": {"tier": "Gold", "id": None}},
    "attributes": {"ApproximateReceiveCount": "1"},
}

# (name, patterns, record, matched)
CASES = [
    ("exact-string", [{"body": {"kind": ["order"]}}], SQS, True),
    ("exact-string-miss", [{"body": {"kind": ["refund"]}}], SQS, False),
    ("exact-number-by-value", [{"body": {"total": [12.50]}}], SQS, True),
    ("number-is-not-a-string", [{"body": {"total": ["12.5"]}}], SQS, False),
    ("null-literal", [{"body": {"customer": {"id": [None]}}}], SQS, True),
    ("or-within-a-list", [{"body": {"kind": ["refund", "order"]}}], SQS, True),
    ("and-across-keys", [{"body": {"kind": ["order"], "total": [{"numeric": [">", 100]}]}}], SQS, False),
    ("prefix", [{"body": {"kind": [{"prefix": "ord"}]}}], SQS, True),
    ("prefix-miss", [{"body": {"kind": [{"prefix": "xrd"}]}}], SQS, False),
    ("suffix", [{"body": {"kind": [{"suffix": "der"}]}}], SQS, True),
    ("anything-but-value", [{"body": {"kind": [{"anything-but": "refund"}]}}], SQS, True),
    ("anything-but-list-hit", [{"body": {"kind": [{"anything-but": ["refund", "order"]}]}}], SQS, False),
    ("anything-but-prefix", [{"body": {"kind": [{"anything-but": {"prefix": "or"}}]}}], SQS, False),
    ("anything-but-missing-field", [{"body": {"nope": [{"anything-but": "x"}]}}], SQS, False),
    ("numeric-range", [{"body": {"total": [{"numeric": [">", 10, "<=", 12.5]}]}}], SQS, True),
    ("numeric-range-miss", [{"body": {"total": [{"numeric": [">=", 13]}]}}], SQS, False),
    ("numeric-not-on-strings", [{"body": {"kind": [{"numeric": [">", 0]}]}}], SQS, False),
    ("exists-true", [{"body": {"customer": {"tier": [{"exists": True}]}}}], SQS, True),
    ("exists-false-on-missing", [{"body": {"coupon": [{"exists": False}]}}], SQS, True),
    ("exists-false-on-present", [{"body": {"kind": [{"exists": False}]}}], SQS, False),
    ("exists-false-under-missing-parent", [{"body": {"gift": {"to": [{"exists": False}]}}}], SQS, True),
    ("equals-ignore-case", [{"body": {"customer": {"tier": [{"equals-ignore-case": "gOLD"}]}}}], SQS, True),
    ("wildcard", [{"body": {"kind": [{"wildcard": "o*r"}]}}], SQS, True),
    ("wildcard-is-anchored", [{"body": {"kind": [{"wildcard": "o*e"}]}}], SQS, False),
    ("wildcard-escapes-regex", [{"body": {"kind": [{"wildcard": "or.er"}]}}], SQS, False),
    ("list-field-any-element", [{"body": {"tags": ["b"]}}], SQS, True),
    ("list-field-no-element", [{"body": {"tags": ["c"]}}], SQS, False),
    ("missing-field", [{"body": {"nope": ["x"]}}], SQS, False),
    ("metadata-field", [{"attributes": {"ApproximateReceiveCount": ["1"]}}], SQS, True),
    ("or-across-filters", [{"body": {"kind": ["refund"]}}, {"body": {"total": [12.5]}}], SQS, True),
    ("no-filter-matches", [{"body": {"kind": ["refund"]}}, {"body": {"total": [1]}}], SQS, False),
    ("no-filters-take-all", [], SQS, True),
    ("plain-text-body-vs-object-pattern", [{"body": {"kind": ["order"]}}], {"body": "hello"}, False),
    ("plain-text-body-prefix", [{"body": [{"prefix": "hel"}]}], {"body": "hello"}, True),
]


@pytest.mark.parametrize("patterns, record, matched", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter_table(patterns, record, matched):
    compiled = compile_criteria([json.dumps(p) for p in patterns])
    assert matches_any(compiled, record) is matched


BAD = [
    ("not-json", "{kind", "not JSON"),
    ("not-an-object", "[1]", "non-empty JSON object"),
    ("empty-object", "{}", "non-empty JSON object"),
    ("scalar-leaf", '{"kind": "order"}', "object or a list"),
    ("unknown-operator", '{"kind": [{"regex": "o.*"}]}', "unknown operator 'regex'"),
    ("two-operators", '{"kind": [{"prefix": "a", "suffix": "b"}]}', "exactly one operator"),
    ("numeric-odd", '{"n": [{"numeric": [">"]}]}', "numeric takes"),
    ("numeric-bad-op", '{"n": [{"numeric": ["~", 1]}]}', "is not <op> <number>"),
    ("exists-not-bool", '{"n": [{"exists": "yes"}]}', "true or false"),
    ("prefix-not-string", '{"n": [{"prefix": 1}]}', "takes a string"),
    ("empty-list", '{"n": []}', "empty list"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_patterns_are_refused_with_the_reason(text, message):
    with pytest.raises(FilterError, match="filters\\[0\\].pattern") as info:
        compile_criteria([text])
    assert message in str(info.value)
