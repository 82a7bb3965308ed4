"""Which version a qualifier runs (``qualifiers``): a table of named cases, the draw given."""

import pytest

from lambdakube_router.qualifiers import Resolved, pick_version, resolve
from tests.unit.test_models import alias_spec as alias


@pytest.mark.parametrize(
    "weights, draw, expected",
    [
        pytest.param(None, 0.0, "1", id="no-routing"),
        pytest.param({"2": 0.0}, 0.0, "1", id="w=0-never"),
        pytest.param({"2": 0.1}, 0.05, "2", id="w=0.1-draw-below"),
        pytest.param({"2": 0.1}, 0.1, "1", id="w=0.1-draw-at-weight"),
        pytest.param({"2": 0.1}, 0.15, "1", id="w=0.1-draw-above"),
        pytest.param({"2": 1.0}, 0.999999, "2", id="w=1-always"),
    ],
)
def test_pick_version(weights, draw, expected):
    assert pick_version(alias("1", weights), draw) == expected


ALIASES = {"live": alias("1"), "canary": alias("1", {"2": 0.5}), "head": alias("$LATEST"), "stale": alias("7")}


@pytest.mark.parametrize(
    "qualifier, draw, expected",
    [
        pytest.param(None, 0.0, Resolved("$LATEST"), id="none"),
        pytest.param("$LATEST", 0.0, Resolved("$LATEST"), id="latest"),
        pytest.param("1", 0.0, Resolved("1"), id="version"),
        pytest.param("3", 0.0, Resolved(missing="3"), id="unpublished-version"),
        pytest.param("live", 0.9, Resolved("1"), id="alias"),
        pytest.param("canary", 0.4, Resolved("2"), id="alias-additional"),
        pytest.param("canary", 0.6, Resolved("1"), id="alias-main"),
        pytest.param("head", 0.0, Resolved("$LATEST"), id="alias-of-latest"),
        pytest.param("nope", 0.0, Resolved(missing="nope"), id="unknown-alias"),
        pytest.param("stale", 0.0, Resolved(missing="stale (its version 7 is not published)"), id="alias-of-missing"),
    ],
)
def test_resolve(qualifier, draw, expected):
    assert resolve(qualifier, {1, 2}, ALIASES, draw) == expected
