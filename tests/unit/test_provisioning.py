"""Provisioned environments per version (``lambdakube.provisioning``): named cases."""

import pytest

from lambdakube.provisioning import alias_split, by_version, total
from tests.unit.test_models import alias_spec as alias


@pytest.mark.parametrize(
    "spec, expected",
    [
        pytest.param(alias("1"), {}, id="none-asked"),
        pytest.param(alias("1", provisioned=10), {"1": 10}, id="one-version"),
        pytest.param(alias("1", {"2": 0.1}, provisioned=10), {"1": 9, "2": 1}, id="split-90-10"),
        pytest.param(alias("1", {"2": 0.25}, provisioned=10), {"1": 7, "2": 3}, id="half-rounds-up"),
        pytest.param(alias("1", {"2": 0.04}, provisioned=10), {"1": 10}, id="share-below-half-is-zero"),
        pytest.param(alias("1", {"2": 1.0}, provisioned=4), {"2": 4}, id="all-to-additional"),
        pytest.param(alias("1", {"2": 0.0}, provisioned=3), {"1": 3}, id="weight-zero"),
    ],
)
def test_alias_split(spec, expected):
    assert alias_split(spec) == expected
    assert sum(expected.values()) == spec.provisioned_concurrency


@pytest.mark.parametrize(
    "latest, versions, aliases, expected",
    [
        pytest.param(0, {}, [], {}, id="nothing"),
        pytest.param(2, {}, [], {"$LATEST": 2}, id="latest-only"),
        pytest.param(0, {1: 3, 2: 0}, [], {"1": 3}, id="version-config"),
        pytest.param(0, {1: 0}, [alias("1", provisioned=10)], {"1": 10}, id="alias-config"),
        pytest.param(0, {1: 2}, [alias("1", provisioned=5)], {"1": 7}, id="version-and-alias-add-up"),
        pytest.param(
            0,
            {1: 0, 2: 0},
            [alias("1", {"2": 0.5}, provisioned=4), alias("2", provisioned=1)],
            {"1": 2, "2": 3},
            id="two-aliases",
        ),
        pytest.param(0, {2: 0}, [alias("1", provisioned=5)], {}, id="alias-of-unpublished-version"),
        pytest.param(1, {1: 1}, [alias("1", {"2": 0.5}, provisioned=2)], {"$LATEST": 1, "1": 2}, id="half-unpublished"),
    ],
)
def test_by_version(latest, versions, aliases, expected):
    assert by_version(latest, versions, aliases) == expected
    assert total(expected) == sum(expected.values())
