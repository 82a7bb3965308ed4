"""The test control plane is a real kube-apiserver: kubectl works against it, CRDs are
served, and the server's own schema validation rejects bad objects."""

import json

import pytest

pytestmark = pytest.mark.cluster

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.test}
spec:
  group: example.test
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def test_server_reports_the_built_version(control_plane):
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"].startswith("v1.")
    assert out["serverVersion"]["gitVersion"] != "v0.0.0-master+$Format:%H$"
    assert out["serverVersion"]["major"] == "1"


def test_crd_apply_and_schema_validation(control_plane, namespace):
    control_plane.kubectl("apply", "-f", "-", input=WIDGET_CRD)
    control_plane.kubectl("wait", "--for=condition=Established", "crd/widgets.example.test", "--timeout=30s")
    ok = control_plane.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: example.test/v1\nkind: Widget\nmetadata: {name: good}\nspec: {size: 3}\n",
    )
    assert "widget.example.test/good created" in ok.stdout

    bad = control_plane.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input="apiVersion: example.test/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 0}\n",
    )
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr and "should be greater than or equal to 1" in bad.stderr
    listed = control_plane.kubectl("get", "widgets", "-n", namespace, "-o", "name").stdout.split()
    assert listed == ["widget.example.test/good"]


def test_controller_manager_collects_garbage(control_plane, namespace):
    """Owner references work: deleting the owner deletes the dependent (GC is running)."""
    owner = json.loads(control_plane.kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json").stdout)
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
            ],
        },
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(dependent))
    control_plane.kubectl("delete", "configmap", "owner", "-n", namespace)
    control_plane.kubectl("wait", "--for=delete", "configmap/dependent", "-n", namespace, "--timeout=60s")
