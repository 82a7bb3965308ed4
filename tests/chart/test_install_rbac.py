"""The chart's rendered manifests install into a real kube-apiserver, and its RBAC binds
to each ServiceAccount exactly the rules the chart renders, in both RBAC modes
(cluster-wide and per-namespace): every rendered verb is allowed (asked the apiserver's
authorizer with `kubectl auth can-i --as=system:serviceaccount:...`), the complete rule
set is the rendered one (SelfSubjectRulesReview, impersonated), and a sample of dangerous
things is refused. Which rules are *needed* is proven from the e2e session's audit log
(tests/e2e/test_98_rbac_from_audit.py), not from a list kept here."""

from __future__ import annotations

import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.chart.conftest import CHART, helm_template
from tests.chart.test_render import component_rules, rule_map

pytestmark = pytest.mark.cluster


# A stand-in for prometheus-operator's CRD, so a ServiceMonitor can be applied.
SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}

# Rules every authenticated identity has (system:basic-user); not the chart's doing.
BASELINE = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
}

# Things neither ServiceAccount may ever do: (verb, resource, subresource).
FORBIDDEN_BOTH = [
    ("get", "secrets", None),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("create", "pods", "exec"),
    ("create", "pods", "attach"),
    ("create", "pods", "portforward"),
    ("create", "pods", "eviction"),
    ("update", "pods", None),
    ("create", "deployments.apps", None),
    ("patch", "deployments.apps", None),
    ("create", "daemonsets.apps", None),
    ("create", "jobs.batch", None),
    ("create", "functions.lambdakube.dev", None),
    ("delete", "functions.lambdakube.dev", None),
    ("delete", "concurrencyquotas.lambdakube.dev", None),
    # Versions and aliases are users' objects: the operator only publishes (creates)
    # versions and writes both kinds' status.
    ("delete", "functionversions.lambdakube.dev", None),
    ("update", "functionversions.lambdakube.dev", None),
    ("update", "functionaliases.lambdakube.dev", None),
    ("create", "functionaliases.lambdakube.dev", None),
    ("create", "serviceaccounts", None),
    ("create", "serviceaccounts", "token"),
    ("create", "roles.rbac.authorization.k8s.io", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", None),
    ("get", "services", None),
    ("create", "services", None),
    ("delete", "events", None),
    ("list", "events", None),
    ("create", "kopfpeerings.kopf.dev", None),
    ("update", "functions.lambdakube.dev", "finalizers"),
    # Inline code goes to the runtime in POST /init: neither component touches ConfigMaps.
    ("get", "configmaps", None),
    ("list", "configmaps", None),
    ("create", "configmaps", None),
    ("update", "configmaps", None),
    ("delete", "configmaps", None),
    ("deletecollection", "configmaps", None),
]
FORBIDDEN_CLUSTER = [  # cluster-scoped objects
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("get", "clusterroles.rbac.authorization.k8s.io", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ("list", "nodes", None),
    ("list", "namespaces", None),
    ("create", "namespaces", None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("list", "clusterkopfpeerings.kopf.dev", None),
]
FORBIDDEN_ROUTER_ONLY = [
    # patch on functions: Lambda's PutFunctionConcurrency (reservedConcurrency only; the
    # admission policy's function-writes rule, tests/chart/test_admission_policy.py)
    ("update", "functions.lambdakube.dev", None),
    ("update", "functions.lambdakube.dev", "status"),
    ("get", "functions.lambdakube.dev", "status"),
    ("create", "concurrencyquotas.lambdakube.dev", None),
    ("patch", "concurrencyquotas.lambdakube.dev", "status"),
    ("create", "functionversions.lambdakube.dev", None),
    ("patch", "functionversions.lambdakube.dev", "status"),
    ("patch", "functionaliases.lambdakube.dev", "status"),
    ("deletecollection", "pods", None),
    ("patch", "events", None),
    ("create", "events.events.k8s.io", None),
    # EventSourceMappings are users' objects: the router only reads them and writes status
    ("create", "eventsourcemappings.lambdakube.dev", None),
    ("patch", "eventsourcemappings.lambdakube.dev", None),
    ("delete", "eventsourcemappings.lambdakube.dev", None),
    ("update", "eventsourcemappings.lambdakube.dev", "status"),
]
FORBIDDEN_OPERATOR_ONLY = [
    # the router's: Lambda's PutProvisionedConcurrencyConfig (provisionedConcurrency only;
    # the admission policy's provisioned-writes rule)
    ("patch", "functionversions.lambdakube.dev", None),
    ("patch", "functionaliases.lambdakube.dev", None),
    ("delete", "functions.lambdakube.dev", "status"),
    ("update", "concurrencyquotas.lambdakube.dev", None),
]

# Asked through `kubectl auth can-i --as=...` too (the rest go in bulk, same API).
SPOT_CHECKS = [
    ("get", "secrets", None),
    ("create", "pods", "exec"),
    ("create", "deployments.apps", None),
    ("delete", "functions.lambdakube.dev", None),
    ("create", "pods", None),
    ("watch", "functions.lambdakube.dev", None),
    ("patch", "functions.lambdakube.dev", "status"),
    ("create", "configmaps", None),
    ("list", "configmaps", None),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
]


def json_stream(text: str):
    """kubectl prints one JSON document per created object, back to back."""
    decoder, pos = json.JSONDecoder(), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        doc, pos = decoder.raw_decode(text, pos)
        yield doc


def resource_arg(group: str, resource: str) -> tuple[str, str | None]:
    res, _, sub = resource.partition("/")
    return (f"{res}.{group}" if group else res), (sub or None)


def allowed_checks(rules: dict) -> list[tuple[str, str, str | None]]:
    checks = []
    for (group, resource), verbs in rules.items():
        res, sub = resource_arg(group, resource)
        checks += [(verb, res, sub) for verb in sorted(verbs)]
    return checks


class Rbac:
    def __init__(self, cp, namespace: str):
        self.cp, self.namespace = cp, namespace

    def sa(self, name: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{name}"

    def can_i(self, user: str, verb: str, resource: str, sub: str | None, namespace: str | None) -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={user}"]
        args += ["-A"] if namespace is None else ["-n", namespace]
        if sub:
            args.append(f"--subresource={sub}")
        out = self.cp.kubectl(*args, check=False)
        answer = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        assert answer in ("yes", "no"), f"can-i {args}: {out.stdout} {out.stderr}"
        return answer == "yes"

    def answers(self, user: str, checks, namespace: str | None) -> dict:
        """Many questions at once: the SelfSubjectAccessReviews that `kubectl auth can-i`
        sends, impersonated, in one kubectl call (one process instead of hundreds)."""
        checks = list(checks)
        reviews = []
        for verb, resource, sub in checks:
            res, _, group = resource.partition(".")
            attrs = {"verb": verb, "resource": res, "group": group}
            if sub:
                attrs["subresource"] = sub
            if namespace is not None:
                attrs["namespace"] = namespace
            reviews.append(
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attrs},
                }
            )
        out = self.cp.kubectl(
            "create",
            f"--as={user}",
            "--validate=false",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
        )
        items = []
        for doc in json_stream(out.stdout):
            items += doc["items"] if doc.get("kind") == "List" else [doc]
        assert len(items) == len(checks), out.stdout[:2000]
        return {c: bool(item["status"].get("allowed")) for c, item in zip(checks, items)}

    def spot_check(self, user: str, checks, namespace: str | None) -> None:
        """`kubectl auth can-i --as=...` itself, for a few questions, must agree."""
        expected = self.answers(user, checks, namespace)
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = dict(zip(checks, pool.map(lambda c: self.can_i(user, *c, namespace), checks)))
        assert got == expected

    def assert_allowed(self, user, checks, namespace):
        denied = [c for c, ok in self.answers(user, checks, namespace).items() if not ok]
        assert not denied, f"{user} in {namespace or 'all namespaces'} is refused {denied}"

    def assert_refused(self, user, checks, namespace):
        granted = [c for c, ok in self.answers(user, checks, namespace).items() if ok]
        assert not granted, f"{user} in {namespace or 'all namespaces'} may {granted}"

    def rules(self, user: str, namespace: str) -> dict:
        """The user's complete resource rules in a namespace (what `can-i --list` shows)."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        }
        out = self.cp.kubectl(
            "create", f"--as={user}", "--validate=false", "-o", "json", "-f", "-", input=json.dumps(review)
        )
        got: dict = {}
        for rule in json.loads(out.stdout)["status"]["resourceRules"]:
            assert not rule.get("resourceNames"), rule
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    if (group, res) not in BASELINE:
                        got.setdefault((group, res), set()).update(rule["verbs"])
        return got


@pytest.fixture(scope="module")
def crds(control_plane):
    control_plane.install_crds()
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(SERVICEMONITOR_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=30s"
    )
    return control_plane


@pytest.fixture
def extra_namespaces(control_plane):
    made: list[str] = []

    def make(n: int) -> list[str]:
        for _ in range(n):
            name = f"t-{uuid.uuid4().hex[:10]}"
            control_plane.kubectl("create", "namespace", name)
            made.append(name)
        return made[-n:]

    yield make
    for name in made:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def apply_chart(crds, helm):
    """Render with helm, apply with kubectl (CRDs are already in); cluster-scoped objects
    (not removed with the namespace) are deleted afterwards."""
    applied = []

    def _apply(release: str, namespace: str, values: dict | None = None):
        rendered = helm_template(helm, release=release, namespace=namespace, values=values)
        out = crds.kubectl("apply", "-f", "-", input=rendered.text, check=False)
        assert out.returncode == 0, out.stderr
        applied.append(rendered)
        return rendered

    yield _apply
    for rendered in applied:
        cluster_scoped = [o for o in rendered if o["kind"].startswith("Cluster")]
        if cluster_scoped:
            crds.kubectl(
                "delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(cluster_scoped), check=False
            )


def assert_installed(cp, rendered):
    """Every rendered object exists on the server as rendered (kind, namespace, name)."""
    for obj in rendered:
        md = obj["metadata"]
        ns = ["-n", md["namespace"]] if "namespace" in md else []
        kind = (
            obj["kind"].lower() + "." + obj["apiVersion"].split("/")[0]
            if "/" in obj["apiVersion"]
            else obj["kind"].lower()
        )
        cp.kubectl("get", kind, md["name"], *ns, "-o", "name")


def with_reviews(rendered, release: str, rules: dict) -> dict:
    """The router's namespace rules plus its cluster-wide review rights (TokenReview,
    SubjectAccessReview), which every namespace's rules review shows too."""
    reviews = rule_map(rendered.one("ClusterRole", f"{release}-lambdakube-router-auth"))
    assert set(reviews) == {("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")}
    return {**rules, **reviews}


def test_cluster_wide_install_and_rbac(crds, apply_chart, namespace, extra_namespaces):
    release = namespace  # unique per test, so ClusterRoles never collide
    rendered = apply_chart(release, namespace)
    assert_installed(crds, rendered)
    deploy = json.loads(crds.kubectl("get", "deploy", "-n", namespace, "-o", "json").stdout)
    assert sorted(d["metadata"]["name"] for d in deploy["items"]) == [
        f"{release}-lambdakube-operator",
        f"{release}-lambdakube-router",
    ]

    rbac = Rbac(crds, namespace)
    operator, router = rbac.sa(f"{release}-lambdakube-operator"), rbac.sa(f"{release}-lambdakube-router")
    op_rules, rt_rules = component_rules(rendered, "operator"), component_rules(rendered, "router")
    rt_rules = with_reviews(rendered, release, rt_rules)
    (elsewhere,) = extra_namespaces(1)
    for ns in (namespace, elsewhere):
        assert rbac.rules(operator, ns) == op_rules
        assert rbac.rules(router, ns) == rt_rules
    # Every needed verb, in some other namespace and across all namespaces.
    for ns in (elsewhere, None):
        rbac.assert_allowed(operator, allowed_checks(op_rules), ns)
        rbac.assert_allowed(router, allowed_checks(rt_rules), ns)
    rbac.assert_refused(operator, FORBIDDEN_BOTH + FORBIDDEN_OPERATOR_ONLY, elsewhere)
    rbac.assert_refused(router, FORBIDDEN_BOTH + FORBIDDEN_ROUTER_ONLY, elsewhere)
    rbac.assert_refused(operator, FORBIDDEN_CLUSTER, None)
    rbac.assert_refused(router, FORBIDDEN_CLUSTER, None)
    rbac.spot_check(router, SPOT_CHECKS, elsewhere)
    rbac.spot_check(operator, SPOT_CHECKS, None)


def test_namespaced_install_persistence_servicemonitor(crds, apply_chart, namespace, extra_namespaces):
    team_a, team_b, outside = extra_namespaces(3)
    release = namespace
    values = {
        "watch": {"allNamespaces": False, "namespaces": [team_a, team_b]},
        "router": {"persistence": {"enabled": True}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "quota": {"namespace": team_a, "concurrentExecutions": 20, "minimumUnreserved": 5},
    }
    rendered = apply_chart(release, namespace, values)
    # cluster-scoped: only the router's review rights and the callers' roles
    assert sorted(o["metadata"]["name"] for o in rendered.of("ClusterRole")) == [
        "lambdakube-admin",
        "lambdakube-invoker",
        "lambdakube-queue-admin",
        "lambdakube-viewer",
        f"{release}-lambdakube-router-auth",
    ]
    assert_installed(crds, rendered)
    pvc = json.loads(
        crds.kubectl("get", "pvc", f"{release}-lambdakube-router-state", "-n", namespace, "-o", "json").stdout
    )
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    quota = json.loads(crds.kubectl("get", "concurrencyquota", "default", "-n", team_a, "-o", "json").stdout)
    assert quota["spec"]["concurrentExecutions"] == 20
    assert quota["spec"]["scalingRate"] == {"burst": 1000, "periodSeconds": 10}

    rbac = Rbac(crds, namespace)
    operator, router = rbac.sa(f"{release}-lambdakube-operator"), rbac.sa(f"{release}-lambdakube-router")
    op_rules, rt_rules = component_rules(rendered, "operator"), component_rules(rendered, "router")
    reviews = with_reviews(rendered, release, {})
    for ns in (team_a, team_b):
        assert rbac.rules(operator, ns) == op_rules
        assert rbac.rules(router, ns) == {**rt_rules, **reviews}
        rbac.assert_allowed(operator, allowed_checks(op_rules), ns)
        rbac.assert_allowed(router, allowed_checks(rt_rules), ns)
        rbac.assert_refused(router, FORBIDDEN_BOTH + FORBIDDEN_ROUTER_ONLY, ns)
    # Nothing outside the listed namespaces; in the release's own namespace the router
    # may only post Events (on its own Pod: a quarantined async store).
    for ns in (outside, namespace):
        assert rbac.rules(operator, ns) == {}
    assert rbac.rules(router, outside) == reviews  # cluster-scoped: asking questions only
    assert rbac.rules(router, namespace) == {**reviews, ("", "events"): {"create"}}
    rbac.assert_allowed(router, allowed_checks(reviews), None)
    for user in (operator, router):
        rbac.assert_refused(user, [("list", "functions.lambdakube.dev", None), ("watch", "pods", None)], None)
        rbac.assert_refused(user, FORBIDDEN_CLUSTER, None)
    rbac.spot_check(router, SPOT_CHECKS, team_b)
    rbac.spot_check(operator, SPOT_CHECKS, outside)


def test_helm_install_and_notes(crds, helm, namespace):
    """A real `helm install` (CRDs in crds/ already exist: helm skips them) prints NOTES
    with the port-forward and invoke commands, and uninstalls cleanly."""
    release = namespace
    base = [str(helm), "--kubeconfig", str(crds.kubeconfig), "-n", namespace]
    out = subprocess.run([*base, "install", release, str(CHART)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        notes = out.stdout.split("NOTES:", 1)[1]
        assert f"port-forward svc/{release}-lambdakube-router 9000:9000" in notes
        assert "curl" in notes and "-X POST" in notes
        assert "/2015-03-31/functions/hello/invocations" in notes
        status = subprocess.run([*base, "status", release, "-o", "json"], capture_output=True, text=True, timeout=60)
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    finally:
        out = subprocess.run([*base, "uninstall", release, "--wait=false"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert crds.kubectl("get", "clusterrole", f"{release}-lambdakube-operator", check=False).returncode != 0
