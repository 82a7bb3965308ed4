"""``lambdakube`` with only a kubeconfig: the router's URL from the context's
``lambdakube.dev`` extension, the namespace from the context, and a token for the
router's audience asked for with the kubeconfig's own credentials (``kubectl create
token``). Everything real: kubectl, a kube-apiserver, TokenReviews, RBAC with the
chart's ClusterRoles, and the router in ``--auth tokenreview`` mode on the local backend.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import base_url, lk
from tests.router.test_router_auth_kubernetes import NO_DENY_CACHE, start_router

pytestmark = pytest.mark.cluster


def user_kubeconfig(cp, path: Path, *, namespace: str | None, extension) -> Path:
    """The admin's kubeconfig (as a cluster user has one), its context given a namespace
    and, unless None, the lambdakube.dev extension."""
    doc = yaml.safe_load(cp.kubeconfig.read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    if namespace:
        context["namespace"] = namespace
    if extension is not None:
        context["extensions"] = [{"name": "lambdakube.dev", "extension": extension}]
    path.write_text(yaml.safe_dump(doc))
    return path


def kube_env(cp, kubeconfig: Path) -> dict:
    """Only the kubeconfig: no LAMBDAKUBE_* variable (``lk`` drops them), kubectl on PATH."""
    return {"KUBECONFIG": str(kubeconfig), "PATH": f"{cp.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


async def test_the_kubeconfig_names_the_router_the_namespace_and_the_token(make_router, cluster, teams, tmp_path):
    team_a, _ = teams
    router = await start_router(make_router, cluster, teams, ttls=NO_DENY_CACHE)
    await cluster.service_account(team_a, "cli")
    await cluster.bind(team_a, "lambdakube-invoker", team_a, "cli")
    await cluster.bind(team_a, "lambdakube-admin", team_a, "cli")  # inspect: the overview behind get
    ext = {"router": base_url(router), "serviceAccount": f"{team_a}/cli"}
    env = kube_env(cluster.cp, user_kubeconfig(cluster.cp, tmp_path / "kc", namespace=team_a, extension=ext))

    # RBAC's authorizer sees the new bindings through its own informer: a moment later
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        run = await lk("invoke", "hello", "--payload", '{"name": "k"}', "-o", "json", env=env)
        if run.code == 0 or "403" not in run.err or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert run.code == 0, run.err
    assert json.loads(run.out)["result"] == {"hello": "k"}, run.out

    run = await lk("get", "functions", "-o", "json", env=env)  # the context's namespace: team-a's one function
    assert run.code == 0, run.err
    assert [f["name"] for f in json.loads(run.out)["functions"]] == ["hello"], run.out

    # a flag still wins: --token with a token of nobody's is refused by the router (exit 1)
    run = await lk("invoke", "hello", "--token", "not-a-token", env=env)
    assert run.code == 1 and "401" in run.err, (run.code, run.err)


async def test_a_context_that_names_no_service_account_sends_no_token(make_router, cluster, teams, tmp_path):
    team_a, _ = teams
    router = await start_router(make_router, cluster, teams)
    env = kube_env(
        cluster.cp,
        user_kubeconfig(cluster.cp, tmp_path / "kc", namespace=team_a, extension={"router": base_url(router)}),
    )
    run = await lk("invoke", "hello", env=env)
    assert run.code == 1 and "401 UnrecognizedClientException" in run.err, (run.code, run.err)


async def test_kubeconfig_problems_are_usage_errors(make_router, cluster, teams, tmp_path):
    """Exit 2 with the reason; the router is never called with the wrong identity."""
    team_a, _ = teams
    router = await start_router(make_router, cluster, teams)
    url = base_url(router)

    ext = {"router": url, "serviceAccount": f"{team_a}/nobody"}
    env = kube_env(cluster.cp, user_kubeconfig(cluster.cp, tmp_path / "a", namespace=None, extension=ext))
    run = await lk("invoke", "hello", env=env)
    assert run.code == 2 and f"a token for ServiceAccount {team_a}/nobody:" in run.err, run.err
    assert "not found" in run.err, run.err

    env = kube_env(cluster.cp, user_kubeconfig(cluster.cp, tmp_path / "b", namespace=None, extension={"route": url}))
    run = await lk("get", env=env)
    assert run.code == 2 and "unknown field(s) route" in run.err, run.err

    plain = user_kubeconfig(cluster.cp, tmp_path / "c", namespace=None, extension=None)
    run = await lk("get", "--kubeconfig", str(plain), env=kube_env(cluster.cp, plain))
    assert run.code == 2 and "names no router: add the lambdakube.dev extension" in run.err, run.err

    run = await lk("get", "--context", "nope", env=kube_env(cluster.cp, plain))
    assert run.code == 2 and "kubectl config view:" in run.err and "nope" in run.err, run.err


def test_no_kubectl_or_no_kubeconfig_leaves_the_defaults(control_plane, tmp_path, monkeypatch):
    """make dev users may have neither: nothing found, no error; unless one was asked for."""
    from lambdakube_router.ctl import kubeconfig

    assert kubeconfig.lookup(kubeconfig.Selection(kubectl=str(tmp_path / "no-kubectl"))) is None
    with pytest.raises(kubeconfig.KubeconfigError, match="need kubectl"):
        kubeconfig.lookup(kubeconfig.Selection(kubectl=str(tmp_path / "no-kubectl"), context="prod"))
    real = str(control_plane.bin_dir / "kubectl")
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(empty))
    assert kubeconfig.lookup(kubeconfig.Selection(kubectl=real)) is None
    with pytest.raises(kubeconfig.KubeconfigError, match="current-context must exist"):
        kubeconfig.lookup(kubeconfig.Selection(kubectl=real, kubeconfig=str(empty)))
