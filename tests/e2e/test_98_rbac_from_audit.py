"""The chart's RBAC, proven from what the code actually did: every request the operator's
and the router's ServiceAccounts made during this e2e session, read from the real node's
kube-apiserver audit log, is allowed by the installed RBAC and by a namespaced install's
RBAC (both asked with `kubectl auth can-i --as` on the real cluster); and the chart
grants nothing beyond those requests and the short list below, each entry with its
reason.

No list of needed verbs is kept here: the audit log is the list. It runs after every
other scenario (the modules are numbered) and before the uninstall.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.chart.conftest import helm_template
from tests.chart.test_render import rule_map
from tests.e2e.cluster import RELEASE, RELEASE_NS, Cluster

COMPONENTS = ("operator", "router")

#: Granted although this session may not exercise them, with the reason. Anything else
#: granted but never requested fails the test: unused rights are removed, not kept.
GRANTED_BEYOND_OBSERVED = {
    (
        "operator",
        "",
        "pods",
        "delete",
    ): "hygiene: pods that exited, never became Ready, or outlived their drain deadline;"
    " a session where every pod behaves needs none",
    (
        "router",
        "lambdakube.dev",
        "functions",
        "get",
    ): "a Function's uid comes with the watch; the router reads the object only as a fallback",
}

Request = tuple[str, str, str, str | None]  # verb, group, resource (with /subresource), namespace

#: Cluster-scoped resources a component asks about (the router's reviews of its callers):
#: granted by a ClusterRole in either RBAC mode, so never mapped into a namespace.
CLUSTER_SCOPED = {("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")}


def observed(c: Cluster) -> dict[str, set[Request]]:
    """Resource requests per component, from the audit log (every response code: a
    request that got 403 is a right the code needs)."""
    sa = {f"system:serviceaccount:{RELEASE_NS}:{RELEASE}-lambdakube-{comp}": comp for comp in COMPONENTS}
    out: dict[str, set[Request]] = defaultdict(set)
    with open(c.node.cp.audit_log) as f:
        for line in f:
            ev = json.loads(line)
            comp = sa.get(ev.get("user", {}).get("username"))
            ref = ev.get("objectRef")
            if comp is None or ref is None:  # other users; discovery (non-resource URLs)
                continue
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            out[comp].add((ev["verb"], ref.get("apiGroup", ""), resource, ref.get("namespace")))
    return out


def can_i(c: Cluster, comp: str, req: Request, release: str = RELEASE) -> tuple[Request, bool, str]:
    verb, group, resource, ns = req
    name, _, sub = resource.partition("/")
    args = [
        "auth",
        "can-i",
        verb,
        f"{name}.{group}" if group else name,
        f"--as=system:serviceaccount:{RELEASE_NS}:{release}-lambdakube-{comp}",
    ]
    args += [f"--subresource={sub}"] if sub else []
    args += ["-n", ns] if ns else ["--all-namespaces"]
    out = c.kubectl(*args, check=False)
    return req, out.stdout.strip() == "yes", out.stdout.strip() + out.stderr.strip()


@pytest.fixture(scope="module")
def requests(release: Cluster) -> dict[str, set[Request]]:
    if release.node is None:
        pytest.fail(
            "the RBAC check reads the real node's audit log: run it on tests/e2e/node.py "
            "(make test-e2e), not on LAMBDAKUBE_E2E_KUBECONFIG"
        )
    got = observed(release)
    for comp in COMPONENTS:
        assert got[comp], f"no audit events of the {comp}'s ServiceAccount: is the log read right?"
    return got


@pytest.mark.parametrize("comp", COMPONENTS)
def test_every_request_made_is_allowed_by_the_installed_rbac(release: Cluster, requests, comp):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: can_i(release, comp, r), sorted(requests[comp], key=str)))
    denied = [(req, why) for req, ok, why in answers if not ok]
    assert not denied, f"{comp} made requests its RBAC does not allow: {denied}"


#: A second, namespaced install's RBAC (its ServiceAccounts, Roles and bindings only),
#: watching one namespace of its own.
NAMESPACED_RELEASE, WATCHED = "lkns", "rbac-watched"


@pytest.fixture(scope="module")
def namespaced_rbac(release: Cluster):
    rendered = helm_template(
        release.helm_bin,
        release=NAMESPACED_RELEASE,
        namespace=RELEASE_NS,
        # the callers' ClusterRoles are the session release's (cluster-wide names)
        set_=["watch.allNamespaces=false", f"watch.namespaces={{{WATCHED}}}", "userRoles.create=false"],
    )
    rbac = [
        o
        for o in rendered
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    ]
    assert {o["kind"] for o in rbac} >= {"ServiceAccount", "Role", "RoleBinding"}, rendered.kinds()
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac})
    release.kubectl("create", "namespace", WATCHED)
    release.kubectl("apply", "-f", "-", input=text)
    yield
    release.kubectl("delete", "-f", "-", "--wait=false", input=text, check=False)
    release.kubectl("delete", "namespace", WATCHED, "--wait=false", check=False)


def in_namespaced_mode(req: Request) -> Request:
    """The same request as a namespaced install makes it: in its watched namespace. The
    cluster-wide install lists and watches across namespaces, a namespaced one does so
    per watched namespace; and the release namespace is served like any other (its
    ``default`` ConcurrencyQuota is the chart's), so it maps to a watched one too.
    Cluster-scoped requests (the router's TokenReviews) stay cluster-scoped."""
    verb, group, resource, _ = req
    return verb, group, resource, None if (group, resource) in CLUSTER_SCOPED else WATCHED


@pytest.mark.parametrize("comp", COMPONENTS)
def test_the_namespaced_install_allows_them_too(release: Cluster, requests, namespaced_rbac, comp):
    asked = sorted({in_namespaced_mode(r) for r in requests[comp]}, key=str)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: can_i(release, comp, r, NAMESPACED_RELEASE), asked))
    denied = [(req, why) for req, ok, why in answers if not ok]
    assert not denied, f"a namespaced install refuses requests the {comp} makes: {denied}"
    # And it is namespaced: nothing outside the watched namespace.
    outside = [r for r in asked if r[3] == WATCHED]
    with ThreadPoolExecutor(8) as pool:
        elsewhere = list(pool.map(lambda r: can_i(release, comp, (*r[:3], "default"), NAMESPACED_RELEASE), outside))
    granted = [req for req, ok, _ in elsewhere if ok]
    assert not granted, f"a namespaced install lets the {comp} act outside its namespace: {granted}"


@pytest.mark.parametrize("comp", COMPONENTS)
def test_nothing_is_granted_beyond_what_is_used(release: Cluster, requests, comp):
    rendered = helm_template(release.helm_bin, release=RELEASE, namespace=RELEASE_NS)
    granted = rule_map(rendered.one("ClusterRole", f"{RELEASE}-lambdakube-{comp}"))
    if comp == "router":  # and its review rights (a ClusterRole of their own)
        granted.update(rule_map(rendered.one("ClusterRole", f"{RELEASE}-lambdakube-router-auth")))
    used = {(g, r, v) for v, g, r, _ in requests[comp]}
    extra = sorted(
        (g, r, v)
        for (g, r), verbs in granted.items()
        for v in verbs
        if (g, r, v) not in used and (comp, g, r, v) not in GRANTED_BEYOND_OBSERVED
    )
    assert not extra, f"the {comp} is granted rights it never used in the e2e session: {extra}"
