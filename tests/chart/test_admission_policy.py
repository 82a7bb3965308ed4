"""The chart's ValidatingAdmissionPolicy on a real kube-apiserver: what the router's and
the operator's pod rights can still do if their tokens leak. As their ServiceAccounts
(impersonated, with the chart's own RBAC), a pod built by ``environment_pod`` is
admitted, also as a Function's own ServiceAccount with its audience-bound token; a
privileged pod, a hostPath pod, a pod with the API server's token (mounted, or projected
for another audience), a foreign image, a patched image or a foreign label are denied
with the policy's message; only our pods can be deleted. Anyone else (here the test's
admin) is not affected."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import yaml

from lambdakube.models import DEFAULT_NODEJS_RUNTIME_IMAGE, DEFAULT_RUNTIME_IMAGE, FunctionSpec
from lambdakube.resources import identity, labels
from lambdakube.resources.pods import environment_pod
from tests.chart.conftest import helm_template

pytestmark = pytest.mark.cluster


def env_pod(
    namespace: str,
    name: str | None = None,
    service_account: str | None = None,
    version: str = "$LATEST",
    **fields,
) -> dict:
    spec = FunctionSpec.model_validate(
        {
            "handler": "index.handler",
            "code": {"inline": {"source": "x = 1\n"}},
            "serviceAccountName": service_account,
            **fields,
        }
    )
    pod = environment_pod(
        function_name="fn",
        namespace=namespace,
        function_uid=str(uuid.uuid4()),
        spec=spec,
        env_id=name or f"fn-d{uuid.uuid4().hex[:8]}",
        role=labels.ROLE_ON_DEMAND,
        runtime_image=DEFAULT_RUNTIME_IMAGE,
        managed_by=labels.ROUTER_NAME,
        version=version,
    )
    return pod


def _container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def privileged(pod):
    _container(pod)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)


def escalating(pod):
    _container(pod)["securityContext"]["allowPrivilegeEscalation"] = True


def added_capability(pod):
    _container(pod)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def host_path(pod):
    pod["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})


def host_network(pod):
    pod["spec"]["hostNetwork"] = True


def api_token(pod):
    """A token of the pod's ServiceAccount for the API server (a projection's default audience)."""
    pod["spec"]["volumes"].append(
        {"name": "api", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    )


def other_audience(pod):
    pod["spec"]["volumes"].append(
        {
            "name": "api",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token", "audience": "https://vault.example"}}]},
        }
    )


def token_and_more(pod):
    """Our token volume, with a ConfigMap projected next to it."""
    volume = identity.token_volume()
    volume["projected"]["sources"].append({"configMap": {"name": "kube-root-ca.crt"}})
    pod["spec"]["volumes"].append(volume)


def mounted_token(pod):
    pod["spec"]["automountServiceAccountToken"] = True


def foreign_image(pod):
    _container(pod)["image"] = "evil.example/miner:latest"


def not_ours(pod):
    del pod["metadata"]["labels"][labels.ROLE]


def second_container(pod):
    pod["spec"]["containers"].append({**copy.deepcopy(_container(pod)), "name": "sidecar"})


CREATE_DENIED = [
    pytest.param(privileged, "not privileged", id="privileged"),
    pytest.param(escalating, "cannot escalate", id="privilege escalation"),
    pytest.param(added_capability, "none added", id="an added capability"),
    pytest.param(host_path, "emptyDir volumes only", id="hostPath"),
    pytest.param(host_network, "no host network", id="hostNetwork"),
    pytest.param(api_token, "no token for the API server", id="a projected API token"),
    pytest.param(other_audience, "a projected ServiceAccount token for audience lambdakube", id="another audience"),
    pytest.param(token_and_more, "emptyDir volumes only", id="a token projected with a ConfigMap"),
    # the ServiceAccount admission adds the token as a projected volume before any
    # policy runs: that volume is what is refused
    pytest.param(mounted_token, "emptyDir volumes only", id="a mounted token"),
    pytest.param(foreign_image, "image not allowed for an environment: evil.example/miner:latest", id="foreign image"),
    pytest.param(not_ours, "only create environment pods", id="without our labels"),
    pytest.param(second_container, "one container", id="a second container"),
]


@pytest.fixture(scope="module")
def installed(control_plane, helm):
    """The chart rendered and applied into a namespace of its own (RBAC, ServiceAccounts,
    the policy); the policy's cluster-scoped objects are removed afterwards."""
    control_plane.install_crds()
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", namespace)
    rendered = helm_template(helm, release=namespace, namespace=namespace, values={"userRoles": {"create": False}})
    out = control_plane.kubectl("apply", "-f", "-", input=rendered.text, check=False)
    assert out.returncode == 0, out.stderr
    control_plane.kubectl("create", "serviceaccount", "builder", "-n", namespace)  # exists: only the policy refuses
    sa = f"system:serviceaccount:{namespace}"
    users = {"router": f"{sa}:{namespace}-lambdakube-router", "operator": f"{sa}:{namespace}-lambdakube-operator"}
    # The policy takes effect once the apiserver has compiled it: wait until it denies.
    deadline = time.monotonic() + 60
    bad = env_pod(namespace)
    foreign_image(bad)
    while "ValidatingAdmissionPolicy" not in create(control_plane, bad, users["router"]).stderr:
        assert time.monotonic() < deadline, "the admission policy never took effect"
        time.sleep(0.2)
    try:
        yield control_plane, namespace, users
    finally:
        cluster_scoped = [o for o in rendered if o["kind"].startswith(("Cluster", "ValidatingAdmission"))]
        control_plane.kubectl(
            "delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(cluster_scoped), check=False
        )
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def create(cp, pod: dict, user: str | None, dry_run: bool = True):
    args = ["create", "-f", "-", "-o", "name"] + (["--dry-run=server"] if dry_run else [])
    if user:
        args.append(f"--as={user}")
    return cp.kubectl(*args, input=json.dumps(pod), check=False)


@pytest.mark.parametrize("component", ["router", "operator"])
def test_an_environment_pod_is_admitted(installed, component):
    cp, namespace, users = installed
    out = create(cp, env_pod(namespace), users[component])
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("component", ["router", "operator"])
def test_a_nodejs_environment_pod_is_admitted_with_the_nodejs_runtime_image(installed, component):
    cp, namespace, users = installed
    pod = env_pod(namespace, runtime="nodejs20.x", perEnvironmentConcurrency=2)
    assert _container(pod)["image"] == DEFAULT_NODEJS_RUNTIME_IMAGE
    out = create(cp, pod, users[component])
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("component", ["router", "operator"])
def test_a_version_pod_is_admitted(installed, component):
    cp, namespace, users = installed
    pod = env_pod(namespace, version="3")
    assert pod["metadata"]["labels"][labels.VERSION] == "3"
    out = create(cp, pod, users[component])
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("component", ["router", "operator"])
def test_a_function_with_its_own_service_account_is_admitted(installed, component):
    """Whatever ServiceAccount it names, the pod's one credential is its token for the
    router (``identity.AUDIENCE``); the API server refuses that token."""
    cp, namespace, users = installed
    pod = env_pod(namespace, service_account="builder")
    assert pod["spec"]["serviceAccountName"] == "builder"
    out = create(cp, pod, users[component])
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("component", ["router", "operator"])
def test_a_service_account_with_its_api_token_is_denied(installed, component):
    cp, namespace, users = installed
    pod = env_pod(namespace, service_account="builder")
    mounted_token(pod)
    out = create(cp, pod, users[component])
    assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, out.stderr


@pytest.mark.parametrize("component", ["router", "operator"])
@pytest.mark.parametrize("change, message", CREATE_DENIED)
def test_a_pod_that_is_no_environment_is_denied(installed, component, change, message):
    cp, namespace, users = installed
    pod = env_pod(namespace)
    change(pod)
    out = create(cp, pod, users[component])
    assert out.returncode != 0
    assert "ValidatingAdmissionPolicy" in out.stderr and message in out.stderr, out.stderr


def test_other_users_are_not_affected(installed):
    cp, namespace, _ = installed
    pod = env_pod(namespace)
    privileged(pod)
    out = create(cp, pod, None)  # the test's own admin identity
    assert out.returncode == 0, out.stderr


def patch(cp, namespace: str, name: str, body: dict, user: str) -> tuple[int, str]:
    """A strategic-merge patch as ``user``: (status, message). Not ``kubectl patch``: it
    reads the pod first, a right neither component has (they watch)."""
    status, answer = cp.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", body, as_user=user)
    return status, answer.get("message", "")


def delete(cp, namespace: str, name: str, user: str) -> tuple[int, str]:
    status, answer = cp.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", as_user=user)
    return status, answer.get("message", "")


@pytest.fixture
def live_pod(installed):
    """An environment pod that exists (created by the admin, so without an owner that the
    garbage collector would miss)."""
    cp, namespace, _ = installed
    pod = env_pod(namespace)
    del pod["metadata"]["ownerReferences"]
    out = create(cp, pod, None, dry_run=False)
    assert out.returncode == 0, out.stderr
    return pod["metadata"]["name"]


@pytest.mark.parametrize(
    "body, message",
    [
        pytest.param(
            {"spec": {"containers": [{"name": "runtime", "image": "evil.example/miner:latest"}]}},
            "may not change an environment pod's spec",
            id="its image",
        ),
        pytest.param({"metadata": {"labels": {"team": "x"}}}, "only change its own labels", id="a foreign label"),
        pytest.param(
            {"metadata": {"annotations": {"example.com/owner": "x"}}},
            "only change its own labels and annotations",
            id="a foreign annotation",
        ),
        pytest.param(
            {
                "metadata": {
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "1"}]
                }
            },
            "only be owned by a Function",
            id="a foreign owner",
        ),
    ],
)
def test_a_patch_beyond_our_labels_is_denied(installed, live_pod, body, message):
    cp, namespace, users = installed
    status, text = patch(cp, namespace, live_pod, body, users["router"])
    assert status == 403 and "ValidatingAdmissionPolicy" in text and message in text, (status, text)


def test_our_labels_annotations_and_owner_can_be_patched(installed, live_pod):
    cp, namespace, users = installed
    body = {
        "metadata": {
            # (a generic pod claimed for a version gets its version label)
            "labels": {labels.DRAINING: "true", labels.MANAGED_BY: labels.OPERATOR_NAME, labels.VERSION: "2"},
            "annotations": {labels.INIT_ERROR: "boom"},
            "ownerReferences": [
                {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "Function", "name": "fn", "uid": str(uuid.uuid4())}
            ],
        }
    }
    status, text = patch(cp, namespace, live_pod, body, users["router"])
    assert status == 200, (status, text)


def test_only_our_pods_can_be_deleted(installed, live_pod):
    cp, namespace, users = installed
    other = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"app-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "app.example/app:1"}]},
    }
    assert create(cp, other, None, dry_run=False).returncode == 0
    for user in users.values():
        status, text = delete(cp, namespace, other["metadata"]["name"], user)
        assert status == 403 and "only delete its own environment pods" in text, (status, text)
    status, text = delete(cp, namespace, live_pod, users["router"])
    assert status == 200, (status, text)


# -- the router's one Function write (function-writes policy) ------------------------


@pytest.fixture
def live_function(installed):
    cp, namespace, _ = installed
    name = f"fn-{uuid.uuid4().hex[:6]}"
    fn = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"handler": "index.handler", "code": {"inline": {"source": "x = 1\n"}}},
    }
    out = cp.kubectl("apply", "-f", "-", input=json.dumps(fn), check=False)
    assert out.returncode == 0, out.stderr
    return name


def patch_function(cp, namespace: str, name: str, body: dict, user: str) -> tuple[int, str]:
    path = f"/apis/lambdakube.dev/v1alpha1/namespaces/{namespace}/functions/{name}"
    status, answer = cp.request("PATCH", path, body, as_user=user, content_type="application/merge-patch+json")
    return status, answer.get("message", "")


def test_the_router_may_change_a_functions_reservation(installed, live_function):
    cp, namespace, users = installed
    for value in (7, None):  # PutFunctionConcurrency, DeleteFunctionConcurrency
        status, message = patch_function(
            cp, namespace, live_function, {"spec": {"reservedConcurrency": value}}, users["router"]
        )
        assert status == 200, message


@pytest.mark.parametrize(
    "body, message",
    [
        pytest.param(
            {"spec": {"code": {"inline": {"source": "import os\n"}}}},
            "only a Function's spec.reservedConcurrency",
            id="its code",
        ),
        pytest.param(
            {"spec": {"image": "evil.example/miner:latest"}},
            "only a Function's spec.reservedConcurrency",
            id="an image",
        ),
        pytest.param(
            {"spec": {"serviceAccountName": "builder"}},
            "only a Function's spec.reservedConcurrency",
            id="its ServiceAccount",
        ),
        pytest.param(
            {"spec": {"reservedConcurrency": 3, "env": {"X": "1"}}},
            "only a Function's spec.reservedConcurrency",
            id="the reservation and something else",
        ),
        pytest.param(
            {"metadata": {"labels": {"team": "x"}}}, "labels, annotations, finalizers or owners", id="a label"
        ),
    ],
)
def test_the_router_may_change_nothing_else_of_a_function(installed, live_function, body, message):
    cp, namespace, users = installed
    status, got = patch_function(cp, namespace, live_function, body, users["router"])
    assert status == 403 and "ValidatingAdmissionPolicy" in got and message in got, got


def test_the_function_writes_policy_covers_every_spec_field(helm):
    """Every FunctionSpec field but reservedConcurrency is compared (a new field the
    policy did not list would be writable by the router)."""
    from lambdakube.models import FunctionSpec

    rendered = helm_template(helm, release="lk", namespace="lambdakube-system")
    policy = rendered.one("ValidatingAdmissionPolicy", "lk-lambdakube-function-writes")
    rule = policy["spec"]["validations"][0]["expression"]
    fields = {f.alias or n for n, f in FunctionSpec.model_fields.items()} - {"reservedConcurrency"}
    for field in fields:
        assert f"object.spec.{field} == oldObject.spec.{field}" in rule, field
    assert "object.spec.reservedConcurrency" not in rule


@pytest.fixture
def version_and_alias(installed):
    """A published version and an alias of it (names unique per test)."""
    cp, namespace, _ = installed
    suffix = uuid.uuid4().hex[:6]
    config = {"handler": "index.handler", "code": {"inline": {"source": "x = 1\n"}}}
    docs = [
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "FunctionVersion",
            "metadata": {"name": f"fn-v1-{suffix}", "namespace": namespace},
            "spec": {"function": "fn", "version": 1, "config": config},
        },
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "FunctionAlias",
            "metadata": {"name": f"live-{suffix}", "namespace": namespace},
            "spec": {"function": "fn", "functionVersion": "1"},
        },
    ]
    out = cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
    assert out.returncode == 0, out.stderr
    return {"functionversions": f"fn-v1-{suffix}", "functionaliases": f"live-{suffix}"}


def patch_object(cp, namespace: str, plural: str, name: str, body: dict, user: str) -> tuple[int, str]:
    path = f"/apis/lambdakube.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}"
    status, answer = cp.request("PATCH", path, body, as_user=user, content_type="application/merge-patch+json")
    return status, answer.get("message", "")


@pytest.mark.parametrize("plural", ["functionversions", "functionaliases"])
def test_the_router_may_set_provisioned_concurrency(installed, version_and_alias, plural):
    cp, namespace, users = installed
    for value in (3, 0):  # PutProvisionedConcurrencyConfig, DeleteProvisionedConcurrencyConfig
        body = {"spec": {"provisionedConcurrency": value}}
        status, message = patch_object(cp, namespace, plural, version_and_alias[plural], body, users["router"])
        assert status == 200, message


ONLY = "only spec.provisionedConcurrency"
META = "labels, annotations"


@pytest.mark.parametrize(
    "plural, body, message",
    [
        pytest.param("functionaliases", {"spec": {"functionVersion": "2"}}, ONLY, id="retarget"),
        pytest.param(
            "functionaliases", {"spec": {"routingConfig": {"additionalVersionWeights": {"2": 0.5}}}}, ONLY, id="weights"
        ),
        pytest.param("functionaliases", {"spec": {"description": "x"}}, ONLY, id="alias-description"),
        pytest.param("functionversions", {"metadata": {"labels": {"a": "b"}}}, META, id="version-label"),
        pytest.param("functionaliases", {"metadata": {"annotations": {"a": "b"}}}, META, id="alias-annotation"),
    ],
)
def test_the_router_may_change_nothing_else_of_a_version_or_alias(installed, version_and_alias, plural, body, message):
    cp, namespace, users = installed
    status, got = patch_object(cp, namespace, plural, version_and_alias[plural], body, users["router"])
    assert status == 403 and "ValidatingAdmissionPolicy" in got and message in got, got


def test_the_provisioned_writes_policy_covers_every_spec_field(helm):
    """Every FunctionVersionSpec and FunctionAliasSpec field but provisionedConcurrency is
    compared (a new field the policy did not list would be writable by the router)."""
    from lambdakube.models import FunctionAliasSpec, FunctionVersionSpec

    rendered = helm_template(helm, release="lk", namespace="lambdakube-system")
    rule = rendered.one("ValidatingAdmissionPolicy", "lk-lambdakube-provisioned-writes")["spec"]["validations"][0]
    fields = {f.alias or n for m in (FunctionVersionSpec, FunctionAliasSpec) for n, f in m.model_fields.items()}
    for field in fields - {"provisionedConcurrency"}:
        assert f"object.spec.{field} == oldObject.spec.{field}" in rule["expression"], field
    assert "object.spec.provisionedConcurrency" not in rule["expression"]
