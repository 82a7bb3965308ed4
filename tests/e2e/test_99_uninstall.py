"""`helm uninstall` leaves nothing behind but the CRDs (once the Functions, which are
the user's objects, are deleted)."""

from __future__ import annotations

import json

from tests.e2e.cluster import RELEASE, RELEASE_NS, Cluster, wait_for

KINDS = (
    "deployments",
    "replicasets",
    "pods",
    "services",
    "serviceaccounts",
    "configmaps",
    "persistentvolumeclaims",
    "roles",
    "rolebindings",
    "concurrencyquotas",
)
CLUSTER_KINDS = ("clusterroles", "clusterrolebindings")


def _ours(c: Cluster, kind: str, all_namespaces: bool = True) -> list[str]:
    args = ["get", kind, "-o", "json"] + (["-A"] if all_namespaces else [])
    items = json.loads(c.kubectl(*args).stdout)["items"]
    found = []
    for o in items:
        meta = o["metadata"]
        lbl = meta.get("labels") or {}
        if (
            lbl.get("app.kubernetes.io/instance") == RELEASE
            or "lambdakube.dev/function" in lbl
            or "lambdakube.dev/role" in lbl
            or lbl.get("app.kubernetes.io/managed-by", "").startswith("lambdakube")
            or kind == "concurrencyquotas"
        ):
            found.append(f"{meta.get('namespace', '')}/{meta['name']}")
    return found


def test_helm_uninstall_leaves_only_the_crds(release: Cluster):
    release.kubectl("delete", "functions", "--all", "-A", "--wait=true", timeout=180)
    release.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout", "3m")

    def leftovers():
        left = {k: _ours(release, k) for k in KINDS}
        left.update({k: _ours(release, k, all_namespaces=False) for k in CLUSTER_KINDS})
        return {k: v for k, v in left.items() if v}

    try:
        wait_for(lambda: not leftovers(), 120, "the release's objects to be gone")
    except AssertionError:
        raise AssertionError(f"left behind by helm uninstall: {leftovers()}") from None
    crds = json.loads(release.kubectl("get", "crd", "-o", "json").stdout)["items"]
    assert {c["metadata"]["name"] for c in crds} >= {"functions.lambdakube.dev", "concurrencyquotas.lambdakube.dev"}
