"""The operator against a real kube-apiserver (+ controller-manager, no kubelet).

Each test runs its own operator, scoped to the test's namespace, with a 1 s resync and a
zero drain grace. Pods never run: tests that need a Ready pod set its status themselves
(``kube.set_pod_ready``), and say so.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from lambdakube.models import FunctionSpec
from lambdakube_operator.planning import EXITED, NOT_READY, Timing
from lambdakube.resources import environment_pod, labels, new_env_id, spec_hash
from tests.operator.conftest import TEST_CONFIG, eventually, function

pytestmark = pytest.mark.cluster


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def cond(kube, fn: str, type_: str) -> tuple[str, str] | None:
    c = kube.condition(fn, type_)
    return (c["status"], c["reason"]) if c else None


def timer_passes() -> float:
    return REGISTRY.get_sample_value("lambdakube_operator_reconcile_total", {"trigger": "timer"}) or 0.0


def wait_for_resyncs(n: int = 2) -> None:
    """Wait until the operator has run ``n`` more resync passes (nothing else to wait on
    when the assertion is that something did *not* happen)."""
    start = timer_passes()
    eventually(lambda: timer_passes() >= start + n, what=f"{n} resync passes")


def on_demand_pod(kube, fn_name: str, *, owned: bool = True) -> dict:
    """An on-demand pod as the router would create it (same builder)."""
    fn = kube.fn(fn_name)
    body = environment_pod(
        function_name=fn_name,
        namespace=kube.ns,
        function_uid=fn["metadata"]["uid"],
        spec=FunctionSpec.model_validate(fn["spec"]),
        env_id=new_env_id(fn_name, labels.ROLE_ON_DEMAND),
        role=labels.ROLE_ON_DEMAND,
        runtime_image="x",
        managed_by="lambdakube-router",
    )
    if not owned:
        del body["metadata"]["ownerReferences"]
    kube.core.create_namespaced_pod(kube.ns, body)
    return body


def test_function_gets_exactly_its_provisioned_pods(kube, operator):
    kube.apply(function("hello", provisionedConcurrency=3, env={"GREETING": "hi"}, timeoutSeconds=7))
    pods = eventually(lambda: len(kube.provisioned("hello")) == 3 and kube.provisioned("hello"))
    fn = kube.fn("hello")
    want_hash = spec_hash(FunctionSpec.model_validate(fn["spec"]))
    for p in pods:
        meta, spec = p["metadata"], p["spec"]
        assert meta["labels"][labels.FUNCTION] == "hello"
        assert meta["labels"][labels.ROLE] == labels.ROLE_PROVISIONED
        assert meta["labels"][labels.SPEC_HASH] == want_hash
        assert meta["labels"][labels.ENVIRONMENT] == meta["name"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "lambdakube.dev/v1alpha1",
                "kind": "Function",
                "name": "hello",
                "uid": fn["metadata"]["uid"],
                "controller": True,
            }
        ]
        container = spec["containers"][0]
        assert container["image"] == TEST_CONFIG.runtime_image
        env = {e["name"]: e.get("value") for e in container["env"]}
        # The function's variables are there from the start; its code and handler come
        # in the runtime's POST /init (no code volume, no ConfigMap).
        assert env["GREETING"] == "hi" and "LAMBDAKUBE_HANDLER" not in env
        assert meta["annotations"][labels.TIMEOUT_SECONDS] == "7"
        assert [v["name"] for v in spec["volumes"]] == ["tmp"]
        assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert kube.core.list_namespaced_config_map(kube.ns, label_selector=labels.FUNCTION).items == []
    # Status: nothing is Ready (no kubelet) - all three are starting.
    status = eventually(
        lambda: (kube.fn("hello").get("status") or {}).get("starting") == 3 and kube.fn("hello")["status"]
    )
    assert status["provisioned"] == 0 and status["specHash"] == want_hash
    assert status["observedGeneration"] == fn["metadata"]["generation"]
    assert cond(kube, "hello", "Ready") == ("False", "Provisioning")
    assert labels.FINALIZER in kube.fn("hello")["metadata"]["finalizers"]
    eventually(lambda: "ProvisionedEnvironmentsCreated" in kube.event_reasons("hello"))
    wait_for_resyncs()
    assert len(kube.pods("hello")) == 3  # and no more


def test_ready_condition_follows_the_pods(kube, operator):
    """Sets pod status Ready by hand (no kubelet)."""
    kube.apply(function("hello", provisionedConcurrency=2))
    pods = eventually(lambda: len(kube.provisioned("hello")) == 2 and kube.provisioned("hello"))
    kube.set_pod_ready(names(pods)[0])
    eventually(lambda: (kube.fn("hello")["status"].get("ready"), kube.fn("hello")["status"].get("starting")) == (1, 1))
    assert cond(kube, "hello", "Ready") == ("False", "Provisioning")
    assert kube.condition("hello", "Ready")["message"] == "1/2 provisioned environments ready"
    kube.set_pod_ready(names(pods)[1])
    eventually(lambda: cond(kube, "hello", "Ready") == ("True", "Ready"))
    status = kube.fn("hello")["status"]
    assert (status["ready"], status["starting"], status["provisioned"]) == (2, 0, 2)
    assert cond(kube, "hello", "InitFailed") == ("False", "Initialized")
    # The transition time only moves on a flip.
    since = kube.condition("hello", "Ready")["lastTransitionTime"]
    wait_for_resyncs()
    assert kube.condition("hello", "Ready")["lastTransitionTime"] == since


def test_scale_up_and_down(kube, operator):
    """Sets one pod Ready by hand (no kubelet) to check that scale-down keeps it."""
    kube.apply(function("hello", provisionedConcurrency=1))
    first = eventually(lambda: len(kube.provisioned("hello")) == 1 and kube.provisioned("hello"))
    kube.set_pod_ready(names(first)[0])
    kube.patch_fn("hello", {"provisionedConcurrency": 4})
    eventually(lambda: len(kube.provisioned("hello")) == 4)
    kube.patch_fn("hello", {"provisionedConcurrency": 1})
    eventually(lambda: names(kube.provisioned("hello")) == names(first))  # the Ready one stays
    kube.patch_fn("hello", {"provisionedConcurrency": 0})
    eventually(lambda: kube.provisioned("hello") == [])
    eventually(lambda: cond(kube, "hello", "Ready") == ("True", "Ready"))
    eventually(lambda: "EnvironmentsDeleted" in kube.event_reasons("hello"))


def test_a_deleted_provisioned_pod_is_replaced(kube, operator):
    kube.apply(function("hello", provisionedConcurrency=2))
    pods = eventually(lambda: len(kube.provisioned("hello")) == 2 and names(kube.provisioned("hello")))
    kube.core.delete_namespaced_pod(pods[0], kube.ns)
    now = eventually(
        lambda: (
            len(kube.provisioned("hello")) == 2
            and names(kube.provisioned("hello")) != pods
            and names(kube.provisioned("hello"))
        )
    )
    assert pods[1] in now and pods[0] not in now


def test_spec_change_rolls_out_new_environments_first(kube, operator):
    """Sets pod status Ready by hand (no kubelet). The router is absent, so the old
    pods leave through the operator's drain deadline (timeoutSeconds 1 + grace 0)."""
    kube.apply(function("hello", provisionedConcurrency=2, timeoutSeconds=1))
    old = eventually(lambda: len(kube.provisioned("hello")) == 2 and names(kube.provisioned("hello")))
    for name in old:
        kube.set_pod_ready(name)
    eventually(lambda: cond(kube, "hello", "Ready") == ("True", "Ready"))
    old_hash = kube.fn("hello")["status"]["specHash"]

    kube.patch_fn("hello", {"env": {"VERSION": "2"}})
    new_hash = spec_hash(FunctionSpec.model_validate(kube.fn("hello")["spec"]))
    assert new_hash != old_hash

    def new_pods():
        return [p for p in kube.provisioned("hello") if p["metadata"]["labels"][labels.SPEC_HASH] == new_hash]

    new = eventually(lambda: len(new_pods()) == 2 and names(new_pods()))
    eventually(lambda: cond(kube, "hello", "Progressing") == ("True", "RollingOut"))
    # The new environments are not Ready: the old ones keep serving, undrained.
    wait_for_resyncs()
    still = {p["metadata"]["name"]: p["metadata"]["labels"] for p in kube.pods("hello")}
    assert set(old) <= set(still)
    assert all(labels.DRAINING not in still[n] for n in old)

    for name in new:
        kube.set_pod_ready(name)
    # Old pods are marked draining, then deleted after their drain deadline.
    eventually(lambda: set(names(kube.pods("hello"))) == set(new), timeout=30)
    eventually(lambda: cond(kube, "hello", "Progressing") == ("False", "UpToDate"))
    status = kube.fn("hello")["status"]
    assert status["specHash"] == new_hash and status["provisioned"] == 2
    # The pass that finishes the rollout writes the status, then posts its Events.
    wanted = {"RolloutStarted", "EnvironmentsDraining", "EnvironmentsDeleted", "RolloutFinished"}
    eventually(lambda: wanted <= kube.event_reasons("hello"))


def test_reservation_over_quota_is_rejected(kube, operator):
    kube.apply(
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "ConcurrencyQuota",
            "metadata": {"name": "default"},
            "spec": {"concurrentExecutions": 1000, "minimumUnreserved": 100},
        }
    )
    kube.apply(function("first", reservedConcurrency=500))
    eventually(lambda: cond(kube, "first", "QuotaExceeded") == ("False", "ReservationGranted"))
    kube.apply(function("second", reservedConcurrency=600))
    eventually(lambda: cond(kube, "second", "QuotaExceeded") == ("True", "ReservationRejected"))
    assert kube.condition("second", "QuotaExceeded")["message"] == (
        "reservedConcurrency 600 does not fit: namespace quota 1000, already reserved 500, 100 must stay unreserved"
    )
    assert cond(kube, "second", "Ready") == ("False", "QuotaExceeded")
    warning = eventually(lambda: [e for e in kube.events("second") if e["reason"] == "QuotaExceeded"])
    assert warning[0]["type"] == "Warning" and "600 does not fit" in warning[0]["message"]
    status = eventually(
        lambda: (kube.quota().get("status") or {}).get("rejected") == ["second"] and kube.quota()["status"]
    )
    assert status["granted"] == {"first": 500, "second": 0}
    assert (status["reserved"], status["unreserved"]) == (500, 500)
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("ReservationsFit", "False")]
    assert list(status["rejectedReasons"]) == ["second"] and "600 does not fit" in status["rejectedReasons"]["second"]

    # Fix it by shrinking the reservation: granted, condition cleared.
    kube.patch_fn("second", {"reservedConcurrency": 400})
    eventually(lambda: cond(kube, "second", "QuotaExceeded") == ("False", "ReservationGranted"))
    status = eventually(lambda: kube.quota()["status"].get("rejected") == [] and kube.quota()["status"])
    assert status["granted"] == {"first": 500, "second": 400} and status["unreserved"] == 100
    assert status.get("rejectedReasons") in (None, {})  # the null in the merge patch removed it
    # Raising the quota would have worked too; deleting a function frees its share.
    kube.cp.kubectl("delete", "fn", "first", "-n", kube.ns)
    eventually(lambda: kube.quota()["status"].get("granted") == {"second": 400})


def test_quota_change_reevaluates_functions(kube, operator):
    kube.apply(function("fn", reservedConcurrency=950))
    eventually(lambda: cond(kube, "fn", "QuotaExceeded") == ("True", "ReservationRejected"))
    # The namespace had no quota: the operator created `default` with Lambda's defaults.
    quota = kube.quota()
    assert quota["spec"]["concurrentExecutions"] == 1000 and quota["spec"]["minimumUnreserved"] == 100
    assert quota["metadata"]["labels"][labels.MANAGED_BY] == labels.OPERATOR_NAME
    kube.cp.kubectl(
        "patch",
        "cq",
        "default",
        "-n",
        kube.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"concurrentExecutions": 2000}}),
    )
    eventually(lambda: cond(kube, "fn", "QuotaExceeded") == ("False", "ReservationGranted"))
    eventually(lambda: kube.quota()["status"]["granted"] == {"fn": 950})
    assert "ReservationGranted" in eventually(lambda: kube.event_reasons("fn"))


def test_invalid_update_is_refused_and_the_pods_stay(kube, operator):
    kube.apply(function("hello", provisionedConcurrency=2, reservedConcurrency=2))
    before = eventually(lambda: len(kube.provisioned("hello")) == 2 and names(kube.provisioned("hello")))
    out = kube.cp.kubectl(
        "patch",
        "fn",
        "hello",
        "-n",
        kube.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"provisionedConcurrency": 3}}),
        check=False,
    )
    assert out.returncode != 0 and "provisionedConcurrency must not exceed reservedConcurrency" in out.stderr
    out = kube.cp.kubectl(
        "patch",
        "fn",
        "hello",
        "-n",
        kube.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"timeoutSeconds": 0}}),
        check=False,
    )
    assert out.returncode != 0 and "spec.timeoutSeconds" in out.stderr
    wait_for_resyncs()
    assert names(kube.provisioned("hello")) == before


def test_delete_removes_pods_and_finalizer(kube, operator):
    kube.apply(function("hello", provisionedConcurrency=2))
    eventually(lambda: len(kube.provisioned("hello")) == 2)
    on_demand_pod(kube, "hello")
    assert labels.FINALIZER in kube.fn("hello")["metadata"]["finalizers"]
    kube.cp.kubectl("delete", "fn", "hello", "-n", kube.ns, "--wait=false")
    eventually(lambda: kube.fn("hello") is None)
    eventually(lambda: kube.pods("hello", include_terminating=True) == [])
    cms = kube.core.list_namespaced_config_map(kube.ns, label_selector=f"{labels.FUNCTION}=hello").items
    assert cms == []


def test_operator_restart_resumes_without_duplicates(kube, start_operator):
    op = start_operator()
    kube.apply(function("hello", provisionedConcurrency=3))
    pods = eventually(lambda: len(kube.provisioned("hello")) == 3 and names(kube.provisioned("hello")))
    op.stop()
    # While the operator is down, one environment disappears.
    kube.core.delete_namespaced_pod(pods[0], kube.ns)
    start_operator()
    after = eventually(lambda: len(kube.provisioned("hello")) == 3 and names(kube.provisioned("hello")))
    wait_for_resyncs()
    assert names(kube.provisioned("hello")) == after
    assert set(pods[1:]) <= set(after) and pods[0] not in after
    assert len(kube.pods("hello")) == 3


def test_ownerless_on_demand_pod_is_adopted(kube, operator):
    kube.apply(function("hello"))
    eventually(lambda: kube.condition("hello", "Ready"))
    body = on_demand_pod(kube, "hello", owned=False)
    uid = kube.fn("hello")["metadata"]["uid"]

    def owner():
        pod = kube.core.read_namespaced_pod(body["metadata"]["name"], kube.ns)
        refs = pod.metadata.owner_references or []
        return [(r.kind, r.name, r.uid, r.controller) for r in refs]

    eventually(lambda: owner() == [("Function", "hello", uid, True)])
    assert kube.pods("hello", role=labels.ROLE_ON_DEMAND)  # adopted, not deleted


def test_init_failure_is_reported(kube, operator):
    """No kubelet and no router: the test writes the runtime's Init error onto the pod
    the way the router's pod backend does (annotation lambdakube.dev/init-error)."""
    kube.apply(function("hello", provisionedConcurrency=1))
    pod = eventually(lambda: kube.provisioned("hello") and names(kube.provisioned("hello"))[0])
    error = "Runtime.ImportModuleError: Unable to import module 'index': No module named 'requests'"
    kube.core.patch_namespaced_pod(pod, kube.ns, {"metadata": {"annotations": {labels.INIT_ERROR: error}}})
    eventually(lambda: cond(kube, "hello", "InitFailed") == ("True", "InitError"))
    assert kube.condition("hello", "InitFailed")["message"] == error
    assert kube.fn("hello")["status"]["initError"] == error
    assert cond(kube, "hello", "Ready") == ("False", "InitFailed")
    events = eventually(lambda: [e for e in kube.events("hello") if e["reason"] == "InitFailed"])
    assert events[0]["type"] == "Warning" and "No module named 'requests'" in events[0]["message"]
    # Fixing the code rolls a new spec: the error is the old spec's, and clears.
    kube.patch_fn("hello", {"code": {"inline": {"source": "def handler(event, context):\n    return 1\n"}}})
    eventually(lambda: cond(kube, "hello", "InitFailed") == ("False", "NoInitError"))
    assert "initError" not in kube.fn("hello")["status"]


def test_orphan_hygiene_deletes_never_ready_pods(kube, start_operator):
    """A pod that never turns Ready within the start deadline (1 s here) is deleted."""
    start_operator(timing=Timing(start_deadline=1.0, drain_grace=0.0))
    kube.apply(function("hello"))
    eventually(lambda: kube.condition("hello", "Ready"))
    stuck = on_demand_pod(kube, "hello")["metadata"]["name"]
    eventually(lambda: stuck not in names(kube.pods("hello", include_terminating=True)))
    events = eventually(lambda: [e for e in kube.events("hello") if e["reason"] == "EnvironmentsDeleted"])
    assert any(NOT_READY in e["message"] for e in events)


def test_orphan_hygiene_deletes_exited_pods(kube, operator):
    """Sets a pod's phase to Failed by hand (no kubelet). The start deadline is long
    (120 s), so the pod can only be deleted because its process ended."""
    kube.apply(function("hello"))
    eventually(lambda: kube.condition("hello", "Ready"))
    crashed = on_demand_pod(kube, "hello")["metadata"]["name"]
    kube.cp.kubectl(
        "patch",
        "pod",
        crashed,
        "-n",
        kube.ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Failed"}}),
    )
    eventually(lambda: crashed not in names(kube.pods("hello", include_terminating=True)))
    events = eventually(lambda: [e for e in kube.events("hello") if e["reason"] == "EnvironmentsDeleted"])
    assert any(EXITED in e["message"] for e in events)


def test_router_activity_fields_are_left_alone(kube, operator):
    kube.apply(function("hello"))
    eventually(lambda: cond(kube, "hello", "Ready") == ("True", "Ready"))
    kube.cp.kubectl(
        "patch",
        "fn",
        "hello",
        "-n",
        kube.ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"busy": 3, "idle": 2, "coldStarts": 11}}),
    )
    wait_for_resyncs()
    kube.patch_fn("hello", {"provisionedConcurrency": 1})  # a spec change writes status too
    eventually(lambda: kube.fn("hello")["status"].get("starting") == 1)
    status = kube.fn("hello")["status"]
    assert (status["busy"], status["idle"], status["coldStarts"]) == (3, 2, 11)


def test_steady_state_writes_nothing(kube, operator):
    """Level-triggered, but not chatty: resync passes that change nothing write nothing
    (neither the Function, its status, its pods nor the namespace quota)."""
    kube.apply(function("hello", provisionedConcurrency=1, reservedConcurrency=5))
    eventually(lambda: kube.quota() and (kube.quota().get("status") or {}).get("granted") == {"hello": 5})
    eventually(lambda: (kube.fn("hello").get("status") or {}).get("starting") == 1)
    wait_for_resyncs(1)

    def versions():
        return (
            kube.fn("hello")["metadata"]["resourceVersion"],
            kube.quota()["metadata"]["resourceVersion"],
            [p["metadata"]["resourceVersion"] for p in kube.pods("hello")],
        )

    before = versions()
    wait_for_resyncs(3)
    assert versions() == before


def test_a_name_too_long_for_pod_labels_is_reported_not_retried_forever(kube, operator):
    name = "f" * 70
    kube.apply(function(name, provisionedConcurrency=1))
    eventually(lambda: cond(kube, name, "Ready") == ("False", "InvalidSpec"))
    assert "longer than 63 characters" in kube.condition(name, "Ready")["message"]
    kube.cp.kubectl("delete", "fn", name, "-n", kube.ns, "--wait=false")
    eventually(lambda: kube.fn(name) is None)
