"""``--auth tokenreview`` against a real kube-apiserver: real ServiceAccount tokens from
the TokenRequest API (``kubectl create token``), checked with real TokenReviews, and
rights decided by real RBAC through SubjectAccessReviews, with the chart's own
ClusterRoles (rendered by helm, renamed per test so tests never share them).

The router runs on the local backend (the functions are runtime processes on loopback):
what is under test is who gets through, not where the function runs. It reviews with
the credentials of a ServiceAccount that holds only the chart's ``<router>-auth`` rules,
so the test also proves those rules are enough.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import yaml

from lambdakube.resources import identity
from lambdakube_router import keys
from lambdakube_router.access import AuthSettings, Ttls
from tests.chart.conftest import BUILD_TOOLS, helm_template
from tests.cluster.controlplane import ToolMissing, locate
from tests.router.conftest import function, kubectl

pytestmark = pytest.mark.cluster

HELLO = """
def handler(event, context):
    return {"hello": event.get("name")}
"""
QUEUE = "/lambdakube/v1/namespaces/{ns}/queues/done/messages"


def helm() -> Path:
    try:
        return locate(BUILD_TOOLS, "helm") / "helm"
    except ToolMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


class Cluster:
    """The test's objects on the control plane: namespaces, ServiceAccounts and their
    tokens, bindings, and the chart's ClusterRoles under names of this test's own."""

    def __init__(self, cp, tmp: Path) -> None:
        self.cp, self.tmp = cp, tmp
        self.suffix = uuid.uuid4().hex[:8]
        self.namespaces: list[str] = []
        self.cluster_objects: list[dict] = []
        self.roles: dict[str, str] = {}  # chart name -> name here

    async def kubectl(self, *args: str, input: str | None = None) -> str:
        return (await kubectl(self.cp, *args, input=input)).stdout

    async def namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        await self.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        return name

    async def apply(self, *objs: dict) -> None:
        await self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))

    async def chart_cluster_roles(self) -> None:
        """The chart's ClusterRoles for callers and for the router's reviews."""
        rendered = helm_template(helm(), release="lk", namespace="lambdakube-system")
        wanted = ["lambdakube-invoker", "lambdakube-viewer", "lambdakube-queue-admin", "lambdakube-admin"]
        for name in [*wanted, "lk-lambdakube-router-auth"]:
            role = rendered.one("ClusterRole", name)
            role["metadata"] = {"name": f"{name}-{self.suffix}"}
            self.roles[name] = role["metadata"]["name"]
            self.cluster_objects.append(role)
        await self.apply(*self.cluster_objects)

    async def service_account(self, ns: str, name: str, audience: str | None = identity.AUDIENCE) -> str:
        """A ServiceAccount and a token of it from the TokenRequest API."""
        await self.kubectl("create", "serviceaccount", name, "-n", ns)
        return await self.token(ns, name, audience)

    async def token(self, ns: str, name: str, audience: str | None = identity.AUDIENCE) -> str:
        """A token for ``audience`` (default: the router's; None: the API server's)."""
        flags = [f"--audience={audience}"] if audience else []
        return (await self.kubectl("create", "token", name, "-n", ns, "--duration=1h", *flags)).strip()

    async def bind(self, ns: str, role: str, sa_ns: str, sa: str) -> None:
        """A RoleBinding in ``ns`` of the chart's ClusterRole ``role`` to a ServiceAccount."""
        await self.kubectl(
            "create", "rolebinding", f"{sa}-{role}", "-n", ns,
            f"--clusterrole={self.roles[role]}", f"--serviceaccount={sa_ns}:{sa}",
        )  # fmt: skip

    async def router_kubeconfig(self, ns: str, name: str, *, reviews: bool = True) -> Path:
        """Credentials for the router: a ServiceAccount bound to the chart's review rules
        (a ClusterRoleBinding, as the chart makes it), or to nothing."""
        token = await self.service_account(ns, name, audience=None)  # the API server's
        if reviews:
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{ns}-{name}-{self.suffix}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.roles["lk-lambdakube-router-auth"],
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            }
            self.cluster_objects.append(binding)
            await self.apply(binding)
        path = self.tmp / f"kubeconfig-{name}"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": self.cp.server,
                                "certificate-authority": str(self.cp.workdir / "pki" / "apiserver.crt"),
                            },
                        }
                    ],
                    "users": [{"name": name, "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": name}}],
                    "current-context": "test",
                }
            )
        )
        return path

    async def close(self) -> None:
        if self.cluster_objects:
            await kubectl(
                self.cp, "delete", "--ignore-not-found", "-f", "-",
                input=yaml.safe_dump_all(self.cluster_objects), check=False,
            )  # fmt: skip
        for ns in self.namespaces:
            await kubectl(self.cp, "delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
async def cluster(control_plane, tmp_path):
    c = Cluster(control_plane, tmp_path)
    await c.chart_cluster_roles()
    yield c
    await c.close()


@pytest.fixture
async def teams(cluster):
    """Two namespaces: team-a (the callers' home) and team-b, each with a function
    ``hello`` (and team-b a second one, ``other``)."""
    return await cluster.namespace(), await cluster.namespace()


async def start_router(make_router, cluster, teams, **auth):
    team_a, team_b = teams
    overrides = {"state_dir": auth.pop("state_dir")} if "state_dir" in auth else {}
    kubeconfig = await cluster.router_kubeconfig(
        team_a, f"router-{uuid.uuid4().hex[:6]}", reviews=auth.pop("reviews", True)
    )
    docs = [
        function("hello", HELLO, namespace=team_a),
        function("hello", HELLO, namespace=team_b),
        function("other", HELLO, namespace=team_b),
        *auth.pop("extra", ()),
    ]
    return await make_router(
        *docs,
        namespace=team_a,
        kubeconfig=str(kubeconfig),
        auth=AuthSettings(mode="tokenreview", **auth),
        **overrides,
    )


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def invoke(router, token: str, name: str, ns: str | None = None):
    headers = bearer(token) if token else {}
    if ns:
        headers["X-Lambdakube-Namespace"] = ns
    status, resp_headers, body = await router.invoke(name, {"name": "x"}, headers=headers)
    return status, resp_headers.get("x-amzn-ErrorType"), json.loads(body) if body else None


async def request(router, method: str, path: str, token: str):
    async with router.client.request(method, path, headers=bearer(token)) as resp:
        return resp.status, resp.headers.get("x-amzn-ErrorType")


async def eventually_status(router, call, want: int, timeout: float = 10.0):
    """RBAC's authorizer sees a new binding through its own informer: a moment later."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await call()
        if got[0] == want or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.1)


NO_DENY_CACHE = Ttls(denied=0)  # a grant made during the test is seen at the next request


async def test_a_cross_namespace_invoke_needs_a_rolebinding(make_router, cluster, teams):
    """alice (a ServiceAccount of team-a) may not invoke team-b's function: 403
    AccessDeniedException. A RoleBinding in team-b to lambdakube-invoker lets her (200),
    there only: not in team-a, and not bob."""
    team_a, team_b = teams
    router = await start_router(make_router, cluster, teams, ttls=NO_DENY_CACHE)
    alice = await cluster.service_account(team_a, "alice")
    bob = await cluster.service_account(team_a, "bob")

    status, error, body = await invoke(router, alice, "hello", team_b)
    assert (status, error) == (403, "AccessDeniedException"), body
    assert body["message"] == (
        f"User: system:serviceaccount:{team_a}:alice is not authorized to perform:"
        f" invoke on functions.lambdakube.dev/hello in namespace {team_b}"
    )
    # the same by ARN, and for a function that does not exist: 403, not 404
    assert (await invoke(router, alice, f"lambdakube:{team_b}:function:hello"))[:2] == (403, "AccessDeniedException")
    assert (await invoke(router, alice, "nope", team_b))[0] == 403

    await cluster.bind(team_b, "lambdakube-invoker", team_a, "alice")
    status, error, body = await eventually_status(router, lambda: invoke(router, alice, "hello", team_b), 200)
    assert status == 200 and body == {"hello": "x"}, body
    assert (await invoke(router, alice, f"lambdakube:{team_b}:function:other"))[0] == 200
    assert (await invoke(router, alice, "nope", team_b))[:2] == (404, "ResourceNotFoundException")
    assert (await invoke(router, alice, "hello", team_a))[:2] == (403, "AccessDeniedException")  # home: no binding
    assert (await invoke(router, bob, "hello", team_b))[:2] == (403, "AccessDeniedException")


async def test_a_grant_on_one_function_name(make_router, cluster, teams):
    """RBAC's resourceNames narrow a grant: a Role allowing invoke on ``hello`` only."""
    team_a, team_b = teams
    router = await start_router(make_router, cluster, teams, ttls=NO_DENY_CACHE)
    carol = await cluster.service_account(team_a, "carol")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "invoke-hello", "namespace": team_b},
        "rules": [
            {
                "apiGroups": ["lambdakube.dev"],
                "resources": ["functions"],
                "verbs": ["invoke"],
                "resourceNames": ["hello"],
            }
        ],
    }
    await cluster.apply(role)
    await cluster.kubectl(
        "create", "rolebinding", "carol", "-n", team_b, "--role=invoke-hello", f"--serviceaccount={team_a}:carol"
    )
    assert (await eventually_status(router, lambda: invoke(router, carol, "hello", team_b), 200))[0] == 200
    assert (await invoke(router, carol, "other", team_b))[:2] == (403, "AccessDeniedException")
    # a qualified invoke is allowed by the grant on the function (then: no alias prod exists)
    status, _, _ = await router.invoke("hello", {}, headers={**bearer(carol), "X-Lambdakube-Namespace": team_b},
                                       params={"Qualifier": "prod"})  # fmt: skip
    assert status == 404


async def test_queue_read_and_delete_need_their_own_rights(make_router, cluster, teams):
    """Without rights: read 403, delete 403. lambdakube-viewer: read only.
    lambdakube-queue-admin: delete too."""
    team_a, team_b = teams
    router = await start_router(make_router, cluster, teams, ttls=NO_DENY_CACHE)
    dave = await cluster.service_account(team_a, "dave")
    read = lambda: request(router, "GET", QUEUE.format(ns=team_b), dave)  # noqa: E731
    delete = lambda: request(router, "DELETE", QUEUE.format(ns=team_b) + "?upTo=10", dave)  # noqa: E731
    events = lambda: request(router, "GET", f"/lambdakube/v1/namespaces/{team_b}/async-events", dave)  # noqa: E731
    for call in (read, delete, events):
        assert await call() == (403, "AccessDeniedException")

    await cluster.bind(team_b, "lambdakube-viewer", team_a, "dave")
    assert await eventually_status(router, read, 200) == (200, None)
    assert await events() == (200, None)
    assert await delete() == (403, "AccessDeniedException")
    await cluster.bind(team_b, "lambdakube-queue-admin", team_a, "dave")
    assert await eventually_status(router, delete, 200) == (200, None)
    # the pools' state (environment addresses) is lambdakube-admin's, not a viewer's
    pool = lambda: request(router, "GET", f"/lambdakube/v1/namespaces/{team_b}/functions/hello", dave)  # noqa: E731
    assert await pool() == (403, "AccessDeniedException")
    await cluster.bind(team_b, "lambdakube-admin", team_a, "dave")
    assert await eventually_status(router, pool, 200) == (200, None)


async def test_tokens_the_api_server_refuses_are_401(make_router, cluster, teams):
    team_a, _ = teams
    router = await start_router(make_router, cluster, teams)
    erin = await cluster.service_account(team_a, "erin")
    await cluster.bind(team_a, "lambdakube-invoker", team_a, "erin")
    assert (await eventually_status(router, lambda: invoke(router, erin, "hello"), 200))[0] == 200
    elsewhere = await cluster.token(team_a, "erin", "https://not-the-api-server")
    api_server = await cluster.token(team_a, "erin", None)  # valid, but not for the router
    for token in ("", "not-a-token", erin[:-4] + "AAAA", elsewhere, api_server):
        status, error, _ = await invoke(router, token, "hello")
        assert (status, error) == (401, "UnrecognizedClientException"), token[:20]


async def test_cached_decisions_never_cross_identities(make_router, cluster, teams):
    """With the default TTLs (allowed: 60 s), frank's allowed decision is cached; grace,
    asking the very same question right after, is asked about herself and refused.
    A second token of frank's is reviewed itself, and is even a subject of its own: the
    API server puts each ServiceAccount token's credential id in the identity's extra
    fields, which a SubjectAccessReview is asked with, so it gets its own decisions."""
    team_a, team_b = teams
    router = await start_router(make_router, cluster, teams)
    gate = router.app[keys.GATE]
    frank = await cluster.service_account(team_a, "frank")
    grace = await cluster.service_account(team_a, "grace")
    await cluster.bind(team_b, "lambdakube-invoker", team_a, "frank")
    # the binding is new: frank's denials (cached 10 s) would hide it, so wait for it by
    # asking the API server directly first
    await eventually_can_i(cluster, team_b, f"system:serviceaccount:{team_a}:frank")

    assert (await invoke(router, frank, "hello", team_b))[0] == 200
    assert gate.reviews == {"token": 1, "access": 1}
    assert (await invoke(router, grace, "hello", team_b))[:2] == (403, "AccessDeniedException")
    assert gate.reviews == {"token": 2, "access": 2}
    assert (await invoke(router, frank, "hello", team_b))[0] == 200
    assert gate.reviews == {"token": 2, "access": 2}  # both from the cache
    frank_again = await cluster.token(team_a, "frank")
    assert (await invoke(router, frank_again, "hello", team_b))[0] == 200
    assert gate.reviews == {"token": 3, "access": 3}
    first, second = [await gate.user(t) for t in (frank, frank_again)]
    assert first.username == second.username and first.groups == second.groups and first != second
    # concurrent first requests of a new identity: one review each, not one per request
    henry = await cluster.service_account(team_a, "henry")
    replies = await asyncio.gather(*(invoke(router, henry, "hello", team_b) for _ in range(10)))
    assert {r[0] for r in replies} == {403} and gate.reviews == {"token": 4, "access": 4}


async def eventually_can_i(cluster, ns: str, user: str, timeout: float = 10.0) -> None:
    """The API server's authorizer allows ``user`` to invoke ``hello`` in ``ns`` (asked
    with a SubjectAccessReview of the test's own, not through the router)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "resourceAttributes": {
                "group": "lambdakube.dev", "resource": "functions", "verb": "invoke", "namespace": ns, "name": "hello",
            },
        },
    }  # fmt: skip
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        out = await cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
        if json.loads(out)["status"].get("allowed"):
            return
        assert asyncio.get_running_loop().time() < deadline, out
        await asyncio.sleep(0.1)


async def test_a_router_without_review_rights_fails_closed(make_router, cluster, teams):
    """The router's own ServiceAccount may not create TokenReviews: 503 ServiceException
    with Retry-After, never a request let through."""
    team_a, _ = teams
    router = await start_router(make_router, cluster, teams, reviews=False)
    ivan = await cluster.service_account(team_a, "ivan")
    status, headers, body = await router.invoke("hello", {}, headers=bearer(ivan))
    assert status == 503 and headers["x-amzn-ErrorType"] == "ServiceException", body
    assert headers["Retry-After"] == "1" and b"TokenReview failed: 403" in body
    async with router.client.get("/healthz") as resp:
        assert resp.status == 200


URL_ECHO = """
def handler(event, context):
    return {"caller": event["requestContext"].get("authorizer"), "account": event["requestContext"]["accountId"]}
"""


async def test_function_urls_none_is_public_kubernetes_needs_invoke(make_router, cluster, teams):
    """authType NONE answers without a token; KUBERNETES asks for one (401), then for
    ``invoke`` on the function (403 until a RoleBinding grants it), and tells the handler
    who called (``requestContext.authorizer.kubernetes``)."""
    team_a, team_b = teams
    extra = [
        function("public", URL_ECHO, namespace=team_b, url={"authType": "NONE"}),
        function("private", URL_ECHO, namespace=team_b, url={"authType": "KUBERNETES"}),
    ]
    router = await start_router(make_router, cluster, teams, ttls=NO_DENY_CACHE, extra=extra)
    alice = await cluster.service_account(team_a, "alice")

    async def get(name: str, token: str | None):
        headers = bearer(token) if token else {}
        async with router.client.get(f"/lambdakube/url/{team_b}/{name}/x", headers=headers) as resp:
            return resp.status, await resp.json()

    status, body = await get("public", None)
    assert status == 200 and body == {"caller": None, "account": "anonymous"}, body
    assert (await get("private", None))[0] == 401
    status, body = await get("private", alice)
    assert status == 403 and body["message"].endswith(
        f"invoke on functions.lambdakube.dev/private in namespace {team_b}"
    )
    assert (await get("nope", alice))[0] == 403  # no URL there: nothing learnt without the right
    await cluster.bind(team_b, "lambdakube-invoker", team_a, "alice")
    status, body = await eventually_status(router, lambda: get("private", alice), 200)
    assert status == 200, body
    assert body["caller"]["kubernetes"]["username"] == f"system:serviceaccount:{team_a}:alice"
    assert body["account"] == team_b
    assert (await get("nope", alice))[0] == 404
