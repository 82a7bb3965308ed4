"""The EventSourceMapping CRD, served by the real kube-apiserver: its schema and CEL
rules judge the shared cases as the models do, and status and printer columns work."""

import json

import pytest
import yaml

from tests import esm_cases

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds(control_plane):
    control_plane.install_crds()
    return control_plane


def mapping(name: str, spec: dict) -> dict:
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": name},
        "spec": spec,
    }


def apply(cp, namespace, obj, check=True):
    return cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=check)


@pytest.mark.parametrize("case", esm_cases.CASES.values(), ids=esm_cases.CASES.keys())
def test_the_api_server_judges_the_shared_cases(crds, namespace, case):
    spec, _, message = case
    out = apply(crds, namespace, mapping("m", spec), check=False)
    if message is None:
        assert out.returncode == 0, out.stderr
        crds.kubectl("delete", "esm", "m", "-n", namespace)
    else:
        assert out.returncode != 0
        assert message in out.stderr, out.stderr


def test_defaults_printer_columns_and_status(crds, namespace):
    apply(crds, namespace, mapping("orders", esm_cases.QUEUE))
    got = json.loads(crds.kubectl("get", "esm", "orders", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["enabled"] is True and got["spec"]["queue"]["visibilityTimeoutSeconds"] == 30
    status = {"status": {"state": "Enabled", "lag": 7, "pollers": 2, "lastProcessingResult": "OK"}}
    crds.kubectl(
        "patch", "esm", "orders", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    table = crds.kubectl("get", "eventsourcemappings", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "FUNCTION", "QUEUE", "TOPIC", "STATE", "LAG", "POLLERS", "AGE"]
    assert table[1].split()[:6] == ["orders", "consumer", "orders", "Enabled", "7", "2"]  # no topic: blank
    wide = crds.kubectl("get", "esm", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "LASTRESULT" in wide[0].split() and "OK" in wide[1].split()
    bad = {"status": {"state": "Sleeping"}}
    out = crds.kubectl(
        "patch",
        "esm",
        "orders",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(bad),
        check=False,
    )
    assert out.returncode != 0 and "Unsupported value" in out.stderr
