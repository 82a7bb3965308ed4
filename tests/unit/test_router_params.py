"""The read API's parameter rules (``params.parse``), as a table of named cases."""

from __future__ import annotations

import pytest

from lambdakube_router import params
from lambdakube_router.params import MAX_INT64, InvalidParameter

PATH = {"namespace": "default", "queue": "done"}
LIST = params.LIST_QUEUE_MESSAGES
DELETE = params.DELETE_QUEUE_MESSAGES

# name: (declared, path, query, expected values or the refusal's message fragment)
CASES = {
    "defaults": (LIST, PATH, [], {"namespace": "default", "queue": "done", "after": 0, "limit": 100}),
    "given": (LIST, PATH, [("after", "7"), ("limit", "1000")], {"after": 7, "limit": 1000}),
    "largest after": (LIST, PATH, [("after", str(MAX_INT64))], {"after": MAX_INT64}),
    "after beyond 64 bits": (LIST, PATH, [("after", str(MAX_INT64 + 1))], "after must be an integer from 0 to"),
    "after with 30 digits": (LIST, PATH, [("after", "9" * 30)], "after must be an integer"),
    "negative after": (LIST, PATH, [("after", "-1")], "after must be an integer from 0"),
    "signed after": (LIST, PATH, [("after", "+1")], "after must be an integer"),
    "after with spaces": (LIST, PATH, [("after", " 1")], "after must be an integer"),
    "after with underscore": (LIST, PATH, [("after", "1_0")], "after must be an integer"),
    "non-ASCII digits": (LIST, PATH, [("after", "\u0661")], "after must be an integer"),
    "empty after": (LIST, PATH, [("after", "")], "after must be an integer"),
    "after null": (LIST, PATH, [("after", "null")], "after must be an integer"),
    "after twice": (LIST, PATH, [("after", "1"), ("after", "1")], "after must be given once"),
    "limit zero": (LIST, PATH, [("limit", "0")], "limit must be an integer from 1 to 1000"),
    "limit above max": (LIST, PATH, [("limit", "1001")], "limit must be an integer from 1 to 1000"),
    "unknown parameter ignored": (LIST, PATH, [("colour", "red")], {"after": 0, "limit": 100}),
    "upTo given": (DELETE, PATH, [("upTo", "42")], {"upTo": 42}),
    "upTo zero": (DELETE, PATH, [("upTo", "0")], {"upTo": 0}),
    "upTo missing": (DELETE, PATH, [], "upTo is required"),
    "upTo beyond 64 bits": (DELETE, PATH, [("upTo", "-27470055814626667397120")], "upTo must be an integer"),
    "namespace not a name": (LIST, {**PATH, "namespace": "Default"}, [], "namespace must be a Kubernetes name"),
    "queue with a slash": (LIST, {**PATH, "queue": "a/b"}, [], "queue must be a Kubernetes name"),
    "queue of 64 characters": (LIST, {**PATH, "queue": "q" * 64}, [], "queue must be a Kubernetes name"),
    "queue of 63 characters": (LIST, {**PATH, "queue": "q" * 63}, [], {"queue": "q" * 63}),
    "function name": (params.GET_FUNCTION, {"namespace": "ns-1", "name": "f"}, [], {"name": "f"}),
    "function name with a dot": (params.GET_FUNCTION, {"namespace": "ns", "name": "a.b"}, [], "name must be"),
}


@pytest.mark.parametrize("declared, path, query, want", CASES.values(), ids=CASES.keys())
def test_parse(declared, path, query, want):
    if isinstance(want, str):
        with pytest.raises(InvalidParameter, match=want.replace("+", r"\+")):
            params.parse(declared, path, query)
    else:
        got = params.parse(declared, path, query)
        assert {k: got[k] for k in want} == want


def test_a_refusal_shows_a_long_value_shortened():
    with pytest.raises(InvalidParameter) as exc:
        params.parse(LIST, PATH, [("after", "x" * 1000)])
    assert len(str(exc.value)) < 150


@pytest.mark.parametrize("p", [params.NAMESPACE, params.AFTER, params.LIMIT, params.UP_TO], ids=lambda p: p.name)
def test_the_document_states_the_same_bounds(p):
    """What the OpenAPI document promises is what ``parse`` accepts, at both edges."""
    doc = p.openapi()
    schema = doc["schema"]
    assert doc["required"] == p.required and doc["in"] == p.location
    if schema["type"] == "integer":
        path = PATH
        declared = (p,)
        assert params.parse(declared, path, [(p.name, str(schema["minimum"]))])[p.name] == schema["minimum"]
        assert params.parse(declared, path, [(p.name, str(schema["maximum"]))])[p.name] == schema["maximum"]
        for outside in (schema["minimum"] - 1, schema["maximum"] + 1):
            with pytest.raises(InvalidParameter):
                params.parse(declared, path, [(p.name, str(outside))])
    else:
        longest = "a" * schema["maxLength"]
        assert params.parse((p,), {p.name: longest}, [])[p.name] == longest
        with pytest.raises(InvalidParameter):
            params.parse((p,), {p.name: longest + "a"}, [])
