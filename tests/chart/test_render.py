"""The chart renders, lints clean, and says what the design says: one operator replica
with Recreate, the router's command and state volume, least-privilege rules, security
context, probes, and every optional piece switched by its value. No cluster needed."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from lambdakube.models import DEFAULT_RUNTIME_IMAGE
from lambdakube.resources import labels
from lambdakube.resources.pods import PORT
from tests.chart.conftest import CHART

#: The router Service's in-cluster URL: handlers' AWS_ENDPOINT_URL_LAMBDA.
ENDPOINT = "http://lk-lambdakube-router.lambdakube-system.svc:9000"

NON_DEFAULT = {
    "watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]},
    "router": {
        "persistence": {"enabled": True, "storageClass": "fast", "size": "5Gi"},
        "accountNamespaces": {"123456789012": "team-a", "210987654321": "team-b"},
        "defaultAccount": "111111111111",
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "quota": {"namespace": "team-a", "concurrentExecutions": 50, "minimumUnreserved": 10},
    "image": {"repository": "registry.example/lk", "tag": "dev", "pullPolicy": "Always"},
}


def rule_map(role: dict) -> dict:
    got: dict = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                got.setdefault((group, res), set()).update(rule["verbs"])
    return got


def container(deploy: dict) -> dict:
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c


def test_lint_clean(helm, tmp_path):
    values = tmp_path / "non-default.yaml"
    values.write_text(yaml.safe_dump(NON_DEFAULT))
    for extra in ([], ["--values", str(values)]):
        out = subprocess.run(
            [str(helm), "lint", "--strict", str(CHART), *extra], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def test_defaults(render):
    r = render()
    assert r.kinds() == sorted(
        [
            "ServiceAccount",
            "ServiceAccount",
            *["ClusterRole"] * 3,  # operator, router, the router's reviews
            *["ClusterRole"] * 4,  # lambdakube-invoker, -viewer, -queue-admin, -admin
            *["ClusterRoleBinding"] * 3,
            "Deployment",
            "Deployment",
            "Service",
            "Service",
            "PersistentVolumeClaim",
            "ConcurrencyQuota",
            "ValidatingAdmissionPolicy",  # what the components' pod rights can do
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",  # the router's one Function write (reservedConcurrency)
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",  # its one version/alias write (provisionedConcurrency)
            "ValidatingAdmissionPolicyBinding",
            "NetworkPolicy",  # the router's (environments' need watched namespaces)
        ]
    )
    for obj in r:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding") and not obj["kind"].startswith("Validating"):
            assert obj["metadata"]["namespace"] == "lambdakube-system", obj["metadata"]

    op = r.one("Deployment", "lk-lambdakube-operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}
    c = container(op)
    assert c["image"] == "lambdakube/lambdakube:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert [*c["command"], *c["args"]] == [
        "lambdakube-operator",
        "--all-namespaces",
        "--metrics-port",
        "9102",
        "--liveness-port",
        "8080",
        "--runtime-image",
        DEFAULT_RUNTIME_IMAGE,
        "--function-endpoint",  # AWS_ENDPOINT_URL_LAMBDA of every environment
        ENDPOINT,
        "--generic-pool-size",
        "2",
        "--log-level",
        "INFO",
    ]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9102, "liveness": 8080}

    router = r.one("Deployment", "lk-lambdakube-router")
    c = container(router)
    assert [*c["command"], *c["args"]] == [
        "lambdakube-router",
        "--backend",
        "kubernetes",
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
        "--state-dir",
        "/var/lib/lambdakube",
        "--runtime-image",
        DEFAULT_RUNTIME_IMAGE,
        "--function-endpoint",  # the same as the operator's: both creators' pods agree
        ENDPOINT,
        "--announce-url",
        "http://$(LAMBDAKUBE_ROUTER_POD_IP):9000/internal/v1/environments/listening",
        "--log-level",
        "INFO",
        "--keepalive-seconds",
        "75",
        "--body-timeout-seconds",
        "60",
        "--max-connections",
        "4096",
        "--auth",
        "tokenreview",
        "--token-audience",  # functions' own tokens' audience, no API server token
        "lambdakube",
    ]
    # Fresh pods announce themselves straight to this router pod's IP (downward API).
    assert {"name": "LAMBDAKUBE_ROUTER_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in c["env"]
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    # readiness includes the async store; liveness does not (a restart mends no full disk)
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # the router's own Pod, for its Events (an async store quarantined)
    env = {e["name"]: e.get("valueFrom") for e in c["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    volumes = {v["name"]: v for v in router["spec"]["template"]["spec"]["volumes"]}
    # the async queue survives the pod by default (a PVC of the default StorageClass)
    assert volumes["state"] == {"name": "state", "persistentVolumeClaim": {"claimName": "lk-lambdakube-router-state"}}
    assert "emptyDir" in volumes["tmp"]
    pvc = r.one("PersistentVolumeClaim", "lk-lambdakube-router-state")
    assert "storageClassName" not in pvc["spec"] and pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"state": "/var/lib/lambdakube", "tmp": "/tmp"}

    svc = r.one("Service", "lk-lambdakube-router")
    # NotReady for a broken async store, still serving sync invokes: keep its endpoint
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == router["spec"]["selector"]["matchLabels"]
    assert (
        r.one("Service", "lk-lambdakube-operator-metrics")["spec"]["selector"] == op["spec"]["selector"]["matchLabels"]
    )

    quota = r.one("ConcurrencyQuota", "default")
    assert quota["spec"]["concurrentExecutions"] == 1000
    assert quota["spec"]["minimumUnreserved"] == 100


@pytest.mark.parametrize("component", ["operator", "router"])
def test_security_context(render, component):
    deploy = render().one("Deployment", f"lk-lambdakube-{component}")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    sc = container(deploy)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    tmp = [m for m in container(deploy)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp and any(v["name"] == tmp[0]["name"] and "emptyDir" in v for v in pod["volumes"])
    assert pod["serviceAccountName"] == f"lk-lambdakube-{component}"
    assert container(deploy)["resources"]["requests"]


def component_rules(rendered, comp: str) -> dict:
    """The rules the chart grants one component, (group, resource) -> verbs, from its
    ClusterRole or (namespaced install) its first Role. What those rules must contain
    is proven from the audit log of the e2e session (tests/e2e/test_98_rbac_from_audit.py),
    not from a list kept here."""
    roles = rendered.of("ClusterRole") + rendered.of("Role")
    return rule_map(next(r for r in roles if r["metadata"]["name"].endswith(f"-lambdakube-{comp}")))


def test_rbac_cluster_wide_binds_the_same_rules_as_namespaced(render):
    r = render()
    namespaced = render(values=NON_DEFAULT)
    for comp in ("operator", "router"):
        assert component_rules(r, comp) == component_rules(namespaced, comp)
    for comp in ("operator", "router"):
        binding = r.one("ClusterRoleBinding", f"lk-lambdakube-{comp}")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": f"lk-lambdakube-{comp}",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"lk-lambdakube-{comp}", "namespace": "lambdakube-system"}
        ]


#: The cluster-scoped RBAC of every install, namespaced or not: the router's review
#: rights (cluster-scoped resources) and the callers' ClusterRoles.
CLUSTER_SCOPED_ALWAYS = [
    ("ClusterRole", "lambdakube-admin"),
    ("ClusterRole", "lambdakube-invoker"),
    ("ClusterRole", "lambdakube-queue-admin"),
    ("ClusterRole", "lambdakube-viewer"),
    ("ClusterRole", "lk-lambdakube-router-auth"),
    ("ClusterRoleBinding", "lk-lambdakube-router-auth"),
]


def cluster_scoped(r) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in r.of("ClusterRole") + r.of("ClusterRoleBinding"))


def test_non_default_values(render):
    r = render(values=NON_DEFAULT)
    assert cluster_scoped(r) == CLUSTER_SCOPED_ALWAYS
    roles = r.of("Role")
    assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in roles) == [
        ("lambdakube-system", "lk-lambdakube-router-own-events"),
        ("team-a", "lk-lambdakube-operator"),
        ("team-a", "lk-lambdakube-router"),
        ("team-b", "lk-lambdakube-operator"),
        ("team-b", "lk-lambdakube-router"),
    ]
    # the release namespace is not watched: the router may still post Events on its own
    # Pod there (a quarantined async store), and nothing else
    own = r.one("Role", "lk-lambdakube-router-own-events")
    assert rule_map(own) == {("", "events"): {"create"}}
    own_binding = r.one("RoleBinding", "lk-lambdakube-router-own-events")
    assert own_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lk-lambdakube-router", "namespace": "lambdakube-system"}
    ]
    roles = [o for o in roles if o is not own]
    cluster_wide = render()
    for role in roles:
        comp = "operator" if role["metadata"]["name"].endswith("operator") else "router"
        assert rule_map(role) == component_rules(cluster_wide, comp)
    for b in r.of("RoleBinding"):
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"][0]["namespace"] == "lambdakube-system"

    op = container(r.one("Deployment", "lk-lambdakube-operator"))
    assert op["args"][:4] == ["--namespace", "team-a", "--namespace", "team-b"]
    assert "--all-namespaces" not in op["args"]
    assert op["image"] == "registry.example/lk:dev" and op["imagePullPolicy"] == "Always"
    router = r.one("Deployment", "lk-lambdakube-router")
    args = container(router)["args"]
    assert args[args.index("--watch-namespace") :] == [
        "--watch-namespace",
        "team-a",
        "--watch-namespace",
        "team-b",
        "--namespace",
        "team-a",
        "--account-namespace",
        "123456789012=team-a",
        "--account-namespace",
        "210987654321=team-b",
        "--default-account",
        "111111111111",
    ]

    pvc = r.one("PersistentVolumeClaim", "lk-lambdakube-router-state")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    state = [v for v in router["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    assert state == [{"name": "state", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}}]
    assert router["spec"]["strategy"] == {"type": "Recreate"}

    sm = r.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert {e["port"] for e in sm["spec"]["endpoints"]} == {"http", "metrics"}
    quota = r.one("ConcurrencyQuota", "default")
    assert quota["metadata"]["namespace"] == "team-a"
    assert quota["spec"]["concurrentExecutions"] == 50 and quota["spec"]["minimumUnreserved"] == 10


def test_optional_pieces_switch_off(render):
    r = render(
        set_=[
            "quota.create=false",
            "admissionPolicy.enabled=false",
            "networkPolicy.enabled=false",
            "router.persistence.enabled=true",
            "router.persistence.existingClaim=mine",
            "watch.allNamespaces=false",
        ]
    )
    assert not r.of("ConcurrencyQuota") and not r.of("PersistentVolumeClaim")
    assert not r.of("ServiceMonitor") and not r.of("ValidatingAdmissionPolicy") and not r.of("NetworkPolicy")
    router = r.one("Deployment", "lk-lambdakube-router")
    state = [v for v in router["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    assert state[0]["persistentVolumeClaim"] == {"claimName": "mine"}
    # namespaced mode without a list: the release namespace only (and no extra Role for
    # the router's own Events: its Role there covers them)
    assert {o["metadata"]["namespace"] for o in r.of("Role")} == {"lambdakube-system"}
    assert {o["metadata"]["name"] for o in r.of("Role")} == {"lk-lambdakube-operator", "lk-lambdakube-router"}


def test_persistence_opt_out_is_an_emptydir(render):
    r = render(set_=["router.persistence.enabled=false"])
    assert not r.of("PersistentVolumeClaim")
    router = r.one("Deployment", "lk-lambdakube-router")
    (state,) = [v for v in router["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    assert state == {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}}


def test_serviceaccounts_can_be_external(render):
    r = render(
        set_=[
            "operator.serviceAccount.create=false",
            "operator.serviceAccount.name=op-sa",
            "router.serviceAccount.create=false",
            "router.serviceAccount.name=rt-sa",
        ]
    )
    assert not r.of("ServiceAccount")
    assert r.one("ClusterRoleBinding", "lk-lambdakube-operator")["subjects"][0]["name"] == "op-sa"
    assert r.one("Deployment", "lk-lambdakube-router")["spec"]["template"]["spec"]["serviceAccountName"] == "rt-sa"


def test_router_auth(render):
    """tokenreview (the default): the router may create TokenReviews and
    SubjectAccessReviews and nothing else cluster-wide; the callers' ClusterRoles grant
    only verbs on lambdakube.dev resources. none: no review rights, and `--insecure`
    (the router listens on 0.0.0.0)."""
    r = render()
    auth = r.one("ClusterRole", "lk-lambdakube-router-auth")
    assert rule_map(auth) == {
        ("authentication.k8s.io", "tokenreviews"): {"create"},
        ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
    }
    binding = r.one("ClusterRoleBinding", "lk-lambdakube-router-auth")
    assert binding["roleRef"]["name"] == "lk-lambdakube-router-auth"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lk-lambdakube-router", "namespace": "lambdakube-system"}
    ]
    roles = {name: rule_map(r.one("ClusterRole", name)) for name in USER_ROLES}
    assert roles == USER_ROLES

    off = render(set_=["router.auth.mode=none", "userRoles.create=false"])
    assert cluster_scoped(off) == [
        ("ClusterRole", "lk-lambdakube-operator"),
        ("ClusterRole", "lk-lambdakube-router"),
        ("ClusterRoleBinding", "lk-lambdakube-operator"),
        ("ClusterRoleBinding", "lk-lambdakube-router"),
    ]
    args = container(off.one("Deployment", "lk-lambdakube-router"))["args"]
    assert args[args.index("--auth") :][:3] == ["--auth", "none", "--insecure"]
    assert "--token-audience" not in args and "--token-audience=" not in args


@pytest.mark.parametrize(
    "values, want",
    [
        pytest.param({}, ["--token-audience", "lambdakube"], id="default: functions' own audience"),
        pytest.param(
            {"router": {"auth": {"audiences": ["lambdakube", "https://kubernetes.default.svc"]}}},
            ["--token-audience", "lambdakube", "--token-audience", "https://kubernetes.default.svc"],
            id="several",
        ),
        pytest.param({"router": {"auth": {"audiences": []}}}, ["--token-audience="], id="none: the API server's"),
    ],
)
def test_router_token_audiences(render, values, want):
    args = container(render(values=values).one("Deployment", "lk-lambdakube-router"))["args"]
    got = [a for i, a in enumerate(args) if a.startswith("--token-audience") or args[i - 1] == "--token-audience"]
    assert got == want


def test_function_endpoint_override(render):
    """Both creators of environment pods get the same endpoint, the Service's by default."""
    r = render(values={"router": {"functionEndpoint": "https://lambda.example"}})
    for name in ("lk-lambdakube-router", "lk-lambdakube-operator"):
        args = container(r.one("Deployment", name))["args"]
        assert args[args.index("--function-endpoint") + 1] == "https://lambda.example", name


#: The callers' ClusterRoles, (group, resource) -> verbs (access.ROUTES asks these verbs).
USER_ROLES = {
    "lambdakube-invoker": {("lambdakube.dev", "functions"): {"invoke"}},
    "lambdakube-viewer": {
        ("lambdakube.dev", "functions"): {"get", "list", "watch"},
        ("lambdakube.dev", "queues"): {"get"},
        ("lambdakube.dev", "asyncevents"): {"list"},
        ("lambdakube.dev", "concurrencyquotas"): {"get", "list", "watch"},
        ("lambdakube.dev", "eventsourcemappings"): {"get", "list", "watch"},
    },
    "lambdakube-queue-admin": {("lambdakube.dev", "queues"): {"get", "delete", "create"}},
    "lambdakube-admin": {
        ("lambdakube.dev", "functions"): {"invoke", "inspect", "configure-concurrency", "get", "list", "watch"},
        ("lambdakube.dev", "queues"): {"get", "delete", "create"},
        ("lambdakube.dev", "asyncevents"): {"list"},
        ("lambdakube.dev", "concurrencyquotas"): {"get", "list", "watch"},
        ("lambdakube.dev", "eventsourcemappings"): {"get", "list", "watch"},
    },
}


def test_the_callers_roles_cover_every_router_verb():
    """Every (verb, resource) the router asks for is in lambdakube-admin, and each role
    grants only verbs the router (or the API server, for Functions) knows."""
    from lambdakube_router.access import NEEDS, Need

    asked = set()
    for rule in NEEDS.values():
        match = {"FunctionName": "fn", "namespace": "ns", "name": "fn", "queue": "q"}
        need = rule(match, {}, None, "ns")
        if isinstance(need, Need):
            asked |= {(a.resource, a.verb) for a in need.checks}
    admin = {(res, v) for (_, res), verbs in USER_ROLES["lambdakube-admin"].items() for v in verbs}
    assert asked <= admin
    kube_verbs = {
        (crd, v) for crd in ("functions", "concurrencyquotas", "eventsourcemappings") for v in ("get", "list", "watch")
    }
    for name, rules in USER_ROLES.items():
        granted = {(res, v) for (_, res), verbs in rules.items() for v in verbs}
        assert granted <= asked | kube_verbs, name


@pytest.mark.parametrize(
    "bad, message",
    [
        (["quota.concurrentExecutions=0"], "minimum: got 0, want 1"),
        (["quota.minimumUnreserved=200", "quota.concurrentExecutions=100"], "minimumUnreserved must not exceed"),
        (["watch.namespaces={Not_A_Namespace}"], "does not match pattern"),
        (["image.pullPolicy=Sometimes"], "pullPolicy"),
        (["router.auth.mode=token-file"], "value must be one of 'tokenreview', 'none'"),
        (["router.accountNamespaces.12345=team-a"], "does not match pattern"),
        (["router.defaultAccount=abc"], "does not match pattern"),
    ],
)
def test_bad_values_are_refused(helm, bad, message):
    cmd = [str(helm), "template", "lk", str(CHART)]
    for s in bad:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_generic_pool_size(render):
    """`operator.genericPoolSize` becomes `--generic-pool-size` (0 disables the pool)."""
    for value in ("0", "5"):
        args = container(
            render(set_=[f"operator.genericPoolSize={value}"]).one("Deployment", "lk-lambdakube-operator")
        )["args"]
        assert args[args.index("--generic-pool-size") + 1] == value


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["cluster-wide", "namespaced"])
def test_rendered_commands_parse_with_the_components_own_parsers(render, values):
    """The chart and the CLIs must agree: every flag the chart passes exists, and a
    namespaced install makes both components watch every listed namespace."""
    from lambdakube_operator.settings import parse_args
    from lambdakube_router.__main__ import build_parser

    r = render(values=values)

    def argv(component: str) -> list[str]:
        c = container(r.one("Deployment", f"lk-lambdakube-{component}"))
        return (c.get("command", []) + c.get("args", []))[1:]

    router = build_parser().parse_args(argv("router"))
    operator = parse_args(argv("operator"))
    assert router.backend == "kubernetes"
    if values is None:
        assert router.watch_namespaces == []
        assert operator.all_namespaces and operator.namespaces == ()
        assert router.account_namespace == [] and router.default_account is None
    else:
        assert router.watch_namespaces == ["team-a", "team-b"]
        assert router.namespace == "team-a"
        assert router.account_namespace == ["123456789012=team-a", "210987654321=team-b"]
        assert router.default_account == "111111111111"
        assert not operator.all_namespaces and operator.namespaces == ("team-a", "team-b")


def test_admission_policy_binds_to_the_two_service_accounts_and_allows_the_images(render):
    r = render(set_=["admissionPolicy.extraAllowedImages={registry.example/functions/}"])
    policy = r.one("ValidatingAdmissionPolicy", "lk-lambdakube-environments")
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username in ["system:serviceaccount:lambdakube-system:lk-lambdakube-router",'
        '"system:serviceaccount:lambdakube-system:lk-lambdakube-operator"]'
    )
    images = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}["images"]
    assert images == f'["{DEFAULT_RUNTIME_IMAGE}","registry.example/functions/"]'
    binding = r.one("ValidatingAdmissionPolicyBinding", "lk-lambdakube-environments")
    assert binding["spec"] == {"policyName": "lk-lambdakube-environments", "validationActions": ["Deny"]}


def test_network_policies_let_only_the_router_and_operator_reach_environments(render):
    r = render(values={**NON_DEFAULT, "networkPolicy": {"routerClientNamespaces": ["apps"]}})
    by_ns = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in r.of("NetworkPolicy")}
    assert sorted(by_ns) == [
        ("lambdakube-system", "lk-lambdakube-router"),
        ("team-a", "lk-lambdakube-environments"),
        ("team-b", "lk-lambdakube-environments"),
    ]
    pod_labels = {
        comp: r.one("Deployment", f"lk-lambdakube-{comp}")["spec"]["template"]["metadata"]["labels"]
        for comp in ("router", "operator")
    }
    env = by_ns[("team-a", "lk-lambdakube-environments")]["spec"]
    assert env["podSelector"] == {"matchExpressions": [{"key": labels.ROLE, "operator": "Exists"}]}
    (rule,) = env["ingress"]
    assert rule["ports"] == [{"port": PORT, "protocol": "TCP"}]  # the runtime's port, as the pods say
    for peer, comp in zip(rule["from"], ("router", "operator")):
        assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "lambdakube-system"}}
        assert peer["podSelector"]["matchLabels"].items() <= pod_labels[comp].items()
    router = by_ns[("lambdakube-system", "lk-lambdakube-router")]["spec"]
    assert router["podSelector"]["matchLabels"].items() <= pod_labels["router"].items()
    (rule,) = router["ingress"]
    clients, announces = rule["from"]
    assert clients == {
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["apps"]}]
        }
    }
    assert announces["podSelector"] == {"matchExpressions": [{"key": labels.ROLE, "operator": "Exists"}]}
    # all namespaces: the router's policy only, unless namespaces are named
    assert [p["metadata"]["namespace"] for p in render().of("NetworkPolicy")] == ["lambdakube-system"]
    named = render(set_=["networkPolicy.environmentNamespaces={fns}"]).of("NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in named) == ["fns", "lambdakube-system"]
