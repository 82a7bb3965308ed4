"""Versions and aliases, the operator against a real kube-apiserver (no kubelet: tests
that need a Ready pod set its status themselves).

Publishing on ``spec.publish`` (numbering, ownerReferences, no second publish after a
restart), each version's provisioned pods (labelled with its number, hashed from its
config, apart from $LATEST's rollout), and the provisioned status written on
FunctionVersions and FunctionAliases.
"""

from __future__ import annotations

import json

import pytest

from lambdakube.models import FunctionSpec
from lambdakube.resources import labels, spec_hash
from tests.operator.conftest import GROUP, VERSION, eventually, function

pytestmark = pytest.mark.cluster


def code(answer: int) -> dict:
    return {"inline": {"source": f"def handler(event, context):\n    return {answer}\n"}}


def versions(kube, fn: str = "hello") -> dict[int, dict]:
    items = json.loads(
        kube.custom.list_namespaced_custom_object(
            GROUP, VERSION, kube.ns, "functionversions", _preload_content=False
        ).data
    )["items"]
    return {v["spec"]["version"]: v for v in items if v["spec"]["function"] == fn}


def get(kube, plural: str, name: str) -> dict:
    return json.loads(
        kube.custom.get_namespaced_custom_object(GROUP, VERSION, kube.ns, plural, name, _preload_content=False).data
    )


def version_pods(kube, number: str, fn: str = "hello") -> list[dict]:
    return [p for p in kube.provisioned(fn) if p["metadata"]["labels"].get(labels.VERSION) == number]


def alias(name: str, target: str, provisioned: int, fn: str = "hello", weights=None) -> dict:
    spec: dict = {"function": fn, "functionVersion": target, "provisionedConcurrency": provisioned}
    if weights:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FunctionAlias", "metadata": {"name": name}, "spec": spec}


def test_publish_numbers_versions_owns_them_and_never_publishes_twice(kube, start_operator):
    op = start_operator()
    kube.apply(function("hello", code=code(1), publish=True))
    v1 = eventually(lambda: versions(kube).get(1), what="version 1")
    fn = kube.fn("hello")
    assert v1["metadata"]["name"] == "hello-v1"
    assert v1["metadata"]["ownerReferences"][0]["uid"] == fn["metadata"]["uid"]
    assert v1["spec"]["config"]["code"]["inline"]["source"] == code(1)["inline"]["source"]
    eventually(lambda: (kube.fn("hello").get("status") or {}).get("latestVersion") == 1)

    kube.patch_fn("hello", {"reservedConcurrency": 5})  # scaling: no new version
    kube.patch_fn("hello", {"code": code(2)})
    v2 = eventually(lambda: versions(kube).get(2), what="version 2")
    assert v2["spec"]["config"]["code"]["inline"]["source"] == code(2)["inline"]["source"]

    # A deleted newest version's number is not reused.
    kube.cp.kubectl("delete", "fnv", "hello-v2", "-n", kube.ns)
    kube.patch_fn("hello", {"code": code(3)})
    eventually(lambda: 3 in versions(kube), what="version 3")
    assert 2 not in versions(kube)

    op.stop()
    start_operator()
    kube.patch_fn("hello", {"env": {"K": "v"}})
    eventually(lambda: 4 in versions(kube), what="version 4 after a restart")
    assert sorted(versions(kube)) == [1, 3, 4]
    assert kube.fn("hello")["status"]["latestVersion"] == 4


def test_an_alias_keeps_its_versions_pods_apart_from_latest(kube, operator):
    kube.apply(function("hello", code=code(1), publish=True))
    eventually(lambda: versions(kube).get(1), what="version 1")
    kube.patch_fn("hello", {"code": code(2)})
    v1 = versions(kube)[1]
    eventually(lambda: versions(kube).get(2), what="version 2")
    kube.apply(alias("live", "1", 2))

    pods = eventually(lambda: len(version_pods(kube, "1")) == 2 and version_pods(kube, "1"), what="2 pods of v1")
    head = FunctionSpec.model_validate(kube.fn("hello")["spec"])
    v1_hash = spec_hash(head.at_version(FunctionSpec.model_validate({**v1["spec"]["config"]}).config()))
    assert {p["metadata"]["labels"][labels.SPEC_HASH] for p in pods} == {v1_hash} != {spec_hash(head)}
    status = eventually(lambda: get(kube, "functionaliases", "live").get("status"))
    assert (status["requested"], status["allocated"], status["status"]) == (2, 0, "IN_PROGRESS")

    for p in pods:
        kube.set_pod_ready(p["metadata"]["name"])
    eventually(lambda: (get(kube, "functionaliases", "live").get("status") or {}).get("status") == "READY")
    status = get(kube, "functionaliases", "live")["status"]
    assert (status["requested"], status["allocated"], status["available"]) == (2, 2, 2)
    assert get(kube, "functionversions", "hello-v1")["status"]["status"] == "READY"  # asks none itself

    # A $LATEST rollout leaves them alone; $LATEST has no provisioned pods of its own.
    kube.patch_fn("hello", {"code": code(3)})
    eventually(lambda: 3 in versions(kube))
    names = sorted(p["metadata"]["name"] for p in pods)
    assert sorted(p["metadata"]["name"] for p in version_pods(kube, "1")) == names
    assert [p for p in kube.provisioned("hello") if labels.VERSION not in p["metadata"]["labels"]] == []

    # Provisioned concurrency taken off the alias: its pods drain.
    kube.apply(alias("live", "1", 0))
    eventually(lambda: version_pods(kube, "1") == [], what="v1's pods draining")
    drained = [p for p in kube.pods("hello") if p["metadata"]["name"] in names]
    assert all(p["metadata"]["labels"].get(labels.DRAINING) == "true" for p in drained)
    eventually(lambda: (get(kube, "functionaliases", "live").get("status") or {}).get("requested") == 0)


def test_a_deleted_versions_pods_go(kube, operator):
    kube.apply(function("hello", code=code(1), publish=True))
    v1 = eventually(lambda: versions(kube).get(1), what="version 1")
    kube.cp.kubectl(
        "patch",
        "fnv",
        v1["metadata"]["name"],
        "-n",
        kube.ns,
        "--type=merge",
        "-p",
        '{"spec":{"provisionedConcurrency":1}}',
    )
    [p] = eventually(lambda: version_pods(kube, "1"), what="a pod of v1")
    status = eventually(lambda: get(kube, "functionversions", "hello-v1").get("status"))
    assert status["requested"] == 1
    kube.cp.kubectl("delete", "fnv", "hello-v1", "-n", kube.ns)
    # Not Ready (no kubelet): deleted at once rather than drained.
    eventually(lambda: p["metadata"]["name"] not in {q["metadata"]["name"] for q in kube.pods("hello")})
