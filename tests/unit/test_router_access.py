"""The router's access rules (``access``), its review caches (``access_cache``) and the
``Gate`` in front of the reviewers: tables of named cases, a fake clock, no sleeping.
The reviewers against a real kube-apiserver are tests/router/test_router_auth_kubernetes.py."""

from __future__ import annotations

import asyncio

import pytest

from lambdakube_router.access import (
    AUTHENTICATED,
    INVOKE_ROUTE,
    ROUTES,
    Attributes,
    AuthSettings,
    ConfigError,
    Need,
    Public,
    Ttls,
    UserInfo,
    bearer_token,
    request_token,
    exposure_problem,
    function_names,
    parse_mode,
    parse_token_file,
    requirement,
    token_digest,
)
from lambdakube_router.access_cache import MISSING, ReviewCache, TtlCache
from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.auth import Gate, ReviewUnavailable
from lambdakube_router.names import Accounts

NS = "/lambdakube/v1/namespaces/{namespace}"


def invoke(ns: str, *names: str) -> Need:
    return Need(tuple(Attributes("invoke", "functions", ns, n) for n in names))


# -- what each request needs -------------------------------------------------------------

# (case, method, route, match, query, header namespace) -> requirement; default namespace "home"
REQUIREMENTS = [
    ("plain name: the default namespace", "POST", INVOKE_ROUTE, {"FunctionName": "fn"}, {}, None, invoke("home", "fn")),
    ("plain name + namespace header", "POST", INVOKE_ROUTE, {"FunctionName": "fn"}, {}, "b", invoke("b", "fn")),
    (
        "an ARN's namespace wins over the header",
        "POST",
        INVOKE_ROUTE,
        {"FunctionName": "lambdakube:c:function:fn"},
        {},
        "b",
        invoke("c", "fn"),
    ),
    ("$LATEST is the unqualified name", "POST", INVOKE_ROUTE, {"FunctionName": "fn"}, {"Qualifier": "$LATEST"}, None,
     invoke("home", "fn")),
    ("a qualifier: fn:q, or fn itself", "POST", INVOKE_ROUTE, {"FunctionName": "fn"}, {"Qualifier": "prod"}, None,
     invoke("home", "fn:prod", "fn")),
    ("an ARN's qualifier", "POST", INVOKE_ROUTE, {"FunctionName": "lambdakube:c:function:fn:prod"}, {}, None,
     invoke("c", "fn:prod", "fn")),
    ("the query's qualifier wins over the ARN's (as invoke_api reads it)", "POST", INVOKE_ROUTE,
     {"FunctionName": "lambdakube:c:function:fn:a"}, {"Qualifier": "b"}, None, invoke("c", "fn:b", "fn")),
    ("a malformed name: authenticated, the handler says 400", "POST", INVOKE_ROUTE, {"FunctionName": "a/b"}, {}, None,
     AUTHENTICATED),
    ("pool state of a namespace", "GET", NS + "/functions", {"namespace": "a"}, {}, None,
     Need((Attributes("inspect", "functions", "a"),))),
    ("pool state of a function", "GET", NS + "/functions/{name}", {"namespace": "a", "name": "fn"}, {}, "zz",
     Need((Attributes("inspect", "functions", "a", "fn"),))),
    ("HEAD is GET", "HEAD", NS + "/functions/{name}", {"namespace": "a", "name": "fn"}, {}, None,
     Need((Attributes("inspect", "functions", "a", "fn"),))),
    ("read a queue", "GET", NS + "/queues/{queue}/messages", {"namespace": "a", "queue": "q"}, {}, None,
     Need((Attributes("get", "queues", "a", "q"),))),
    ("delete from a queue: its own verb", "DELETE", NS + "/queues/{queue}/messages", {"namespace": "a", "queue": "q"},
     {"upTo": "3"}, None, Need((Attributes("delete", "queues", "a", "q"),))),
    ("pending async events", "GET", NS + "/async-events", {"namespace": "a"}, {}, None,
     Need((Attributes("list", "asyncevents", "a"),))),
    ("liveness", "GET", "/healthz", {}, {}, None, Public("liveness probe")),
    ("readiness", "GET", "/readyz", {}, {}, None, Public("readiness probe")),
    ("metrics", "GET", "/metrics", {}, {}, None, Public("Prometheus scrape (counts only, no payloads)")),
    ("announce: its own per-pod token", "POST", "/internal/v1/environments/listening", {}, {}, None,
     Public("checked by its per-pod announce token")),
    ("no route: authenticated, then 404", "GET", None, {}, {}, None, AUTHENTICATED),
    ("a method the route lacks: authenticated, then 405", "POST", "/metrics", {}, {}, None, AUTHENTICATED),
]  # fmt: skip


@pytest.mark.parametrize(
    "method,route,match,query,header,want", [c[1:] for c in REQUIREMENTS], ids=[c[0] for c in REQUIREMENTS]
)
def test_requirement(method, route, match, query, header, want):
    assert requirement(method, route, match, query, header_namespace=header, default_namespace="home") == want


ACCOUNTS = Accounts(namespaces={"123456789012": "team-a"}, default="111111111111")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"

# (case, FunctionName, query, header namespace) -> requirement with ACCOUNTS; default namespace "home".
# Each form of tests/unit/test_function_names.py asks for the function it names.
ACCOUNT_REQUIREMENTS = [
    ("full ARN: its account's namespace, not the header's", ARN, {}, "b", invoke("team-a", "fn")),
    ("full ARN with an alias", ARN + ":live", {}, None, invoke("team-a", "fn:live", "fn")),
    ("full ARN with $LATEST", ARN + ":$LATEST", {}, None, invoke("team-a", "fn")),
    ("full ARN + Qualifier", ARN, {"Qualifier": "live"}, None, invoke("team-a", "fn:live", "fn")),
    ("partial ARN", "123456789012:function:fn:7", {}, None, invoke("team-a", "fn:7", "fn")),
    ("the default account: like a plain name", "111111111111:function:fn", {}, "b", invoke("b", "fn")),
    ("name:qualifier", "fn:live", {}, None, invoke("home", "fn:live", "fn")),
    ("name:$LATEST", "fn:$LATEST", {}, None, invoke("home", "fn")),
    ("an unmapped account: authenticated, the handler says 404",
     "arn:aws:lambda:us-east-1:999999999999:function:fn", {}, "b", AUTHENTICATED),
    ("a bad region: authenticated, the handler says 400", "arn:aws:lambda:moon:123456789012:function:fn", {}, None,
     AUTHENTICATED),
    ("a name too long: authenticated, the handler says 400", "f" * 65, {}, None, AUTHENTICATED),
]  # fmt: skip


@pytest.mark.parametrize(
    "raw,query,header,want", [c[1:] for c in ACCOUNT_REQUIREMENTS], ids=[c[0] for c in ACCOUNT_REQUIREMENTS]
)
def test_requirement_of_aws_names(raw, query, header, want):
    got = requirement(
        "POST",
        INVOKE_ROUTE,
        {"FunctionName": raw},
        query,
        header_namespace=header,
        default_namespace="home",
        accounts=ACCOUNTS,
    )
    assert got == want


async def test_every_route_has_a_rule(tmp_path):
    app = await init_app(RouterConfig(state_dir=tmp_path))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    assert routes == set(ROUTES)


@pytest.mark.parametrize(
    "qualifier,names",
    [(None, ("fn",)), ("", ("fn",)), ("$LATEST", ("fn",)), ("prod", ("fn:prod", "fn")), ("7", ("fn:7", "fn"))],
)
def test_function_names(qualifier, names):
    assert function_names("fn", qualifier) == names


@pytest.mark.parametrize(
    "header,token",
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Basic YWxhZGRpbjpvcGVu", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("AWS4-HMAC-SHA256 Credential=x", None),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


SIGV4 = "AWS4-HMAC-SHA256 Credential=LK/20261203/lambdakube/lambda/aws4_request, SignedHeaders=host, Signature=0"


@pytest.mark.parametrize(
    "headers, token",
    [
        pytest.param({}, None, id="nothing"),
        pytest.param({"Authorization": "Bearer abc"}, "abc", id="bearer"),
        pytest.param({"Authorization": SIGV4, "X-Amz-Security-Token": "jwt"}, "jwt", id="an SDK's session token"),
        pytest.param({"Authorization": "Bearer abc", "X-Amz-Security-Token": "jwt"}, "abc", id="bearer first"),
        pytest.param({"Authorization": SIGV4}, None, id="SigV4 keys alone are no credential"),
        pytest.param({"X-Amz-Security-Token": "  "}, None, id="an empty session token"),
        pytest.param({"X-Amz-Security-Token": "a b"}, None, id="a session token with a space"),
    ],
)
def test_request_token(headers, token):
    assert request_token(headers) == token


def test_token_file_is_kube_apiservers_format():
    text = '# comment\n\ntok-a,alice,uid-a,"dev,ops"\ntok-b,bob,uid-b\n'
    users = parse_token_file(text)
    assert users == {
        token_digest("tok-a"): UserInfo("alice", "uid-a", ("dev", "ops")),
        token_digest("tok-b"): UserInfo("bob", "uid-b", ()),
    }
    assert all(b"tok" not in k for k in users)  # keyed by digest, never the token


@pytest.mark.parametrize(
    "text,message",
    [
        ("tok-a,alice\n", ":1: expected"),
        ("tok-a,alice,u,g,extra\n", ":1: expected"),
        (",alice,u\n", ":1: expected"),
        ("t,a,u\nt,b,v\n", ":2: a token is listed twice"),
    ],
)
def test_token_file_refusals(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_token_file(text)


@pytest.mark.parametrize(
    "value,want",
    [("none", ("none", None)), ("tokenreview", ("tokenreview", None)), ("token-file=/x", ("token-file", "/x"))],
)
def test_parse_mode(value, want):
    assert parse_mode(value) == want


@pytest.mark.parametrize("value", ["", "token-file", "token-file=", "webhook", "None"])
def test_parse_mode_refusals(value):
    with pytest.raises(ConfigError):
        parse_mode(value)


EXPOSURE = [
    ("none on loopback", "127.0.0.1", AuthSettings(), None),
    ("none on 127.0.0.2", "127.0.0.2", AuthSettings(), None),
    ("none on ::1", "::1", AuthSettings(), None),
    ("none on localhost", "localhost", AuthSettings(), None),
    ("none on every address", "0.0.0.0", AuthSettings(), "refusing to serve on 0.0.0.0"),
    ("none on a LAN address", "192.168.1.5", AuthSettings(), "refusing"),
    ("none on ::", "::", AuthSettings(), "refusing"),
    ("none on a hostname", "myhost", AuthSettings(), "refusing"),
    ("none, insecure", "0.0.0.0", AuthSettings(insecure=True), None),
    ("tokenreview anywhere", "0.0.0.0", AuthSettings(mode="tokenreview"), None),
    ("token-file anywhere", "0.0.0.0", AuthSettings(mode="token-file", token_file="/t"), None),
    ("token-file without a path", "127.0.0.1", AuthSettings(mode="token-file"), "needs a path"),
]


@pytest.mark.parametrize("host,settings,problem", [c[1:] for c in EXPOSURE], ids=[c[0] for c in EXPOSURE])
def test_exposure(host, settings, problem):
    got = exposure_problem(host, settings)
    assert (got is None) if problem is None else (got is not None and problem in got)


async def test_the_router_refuses_to_start_exposed_without_auth(tmp_path):
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0"):
        await init_app(RouterConfig(state_dir=tmp_path, host="0.0.0.0"))
    await init_app(RouterConfig(state_dir=tmp_path, host="0.0.0.0", auth=AuthSettings(insecure=True)))


# -- the caches ------------------------------------------------------------------------------

ALICE = UserInfo("alice", "uid-a", ("dev",))
# Identities that share something with ALICE and must never share her decisions.
NOT_ALICE = [
    UserInfo("bob", "uid-a", ("dev",)),
    UserInfo("alice", "uid-other", ("dev",)),  # a recreated ServiceAccount: same name, new uid
    UserInfo("alice", "uid-a", ("dev", "admins")),
    UserInfo("alice", "uid-a", ()),
    UserInfo("alice", "uid-a", ("dev",), (("scopes", ("x",)),)),
]
READ = Attributes("get", "queues", "a", "q")
TTLS = Ttls(authenticated=60, unauthenticated=10, allowed=60, denied=10)

# (case, steps) where a step is ("put", user, attrs, allowed, t) or ("get", user, attrs, t, want)
DECISIONS = [
    ("an allowed decision lives 60 s", [("put", ALICE, READ, True, 0), ("get", ALICE, READ, 59.9, True),
                                        ("get", ALICE, READ, 60, MISSING)]),
    ("a denial lives 10 s", [("put", ALICE, READ, False, 0), ("get", ALICE, READ, 9.9, False),
                             ("get", ALICE, READ, 10, MISSING)]),
    ("another verb is another question", [("put", ALICE, READ, True, 0),
                                          ("get", ALICE, Attributes("delete", "queues", "a", "q"), 1, MISSING)]),
    ("another namespace", [("put", ALICE, READ, True, 0), ("get", ALICE, Attributes("get", "queues", "b", "q"), 1,
                                                           MISSING)]),
    ("another name", [("put", ALICE, READ, True, 0), ("get", ALICE, Attributes("get", "queues", "a", "r"), 1,
                                                      MISSING)]),
    ("a later answer replaces the earlier", [("put", ALICE, READ, True, 0), ("put", ALICE, READ, False, 5),
                                             ("get", ALICE, READ, 6, False), ("get", ALICE, READ, 15, MISSING)]),
] + [
    (f"never across identities: {other}", [("put", ALICE, READ, True, 0), ("get", other, READ, 1, MISSING)])
    for other in NOT_ALICE
]  # fmt: skip


@pytest.mark.parametrize("steps", [c[1] for c in DECISIONS], ids=[c[0] for c in DECISIONS])
def test_decision_cache(steps):
    cache = ReviewCache(TTLS, max_entries=100)
    for step in steps:
        if step[0] == "put":
            _, user, attrs, allowed, t = step
            cache.remember_decision(user, attrs, allowed, t)
        else:
            _, user, attrs, t, want = step
            assert cache.decision(user, attrs, t) == want, step


TOKENS = [
    ("an identity lives 60 s", ALICE, [(59.9, ALICE), (60, MISSING)]),
    ("a refused token lives 10 s", None, [(9.9, None), (10, MISSING)]),
]


@pytest.mark.parametrize("user,reads", [c[1:] for c in TOKENS], ids=[c[0] for c in TOKENS])
def test_token_cache(user, reads):
    cache = ReviewCache(TTLS, max_entries=100)
    cache.remember_user(token_digest("t"), user, 0)
    assert cache.user(token_digest("other"), 1) is MISSING
    for t, want in reads:
        assert cache.user(token_digest("t"), t) == want


def test_the_cache_is_bounded_expired_first_then_oldest():
    cache: TtlCache[int] = TtlCache(max_entries=3)
    cache.put("short", 0, ttl=1, now=0)
    cache.put("a", 1, ttl=100, now=0)
    cache.put("b", 2, ttl=100, now=0)
    cache.put("c", 3, ttl=100, now=5)  # over the bound: the expired one goes
    assert len(cache) == 3 and cache.get("short", 5) is MISSING and cache.get("a", 5) == 1
    cache.put("d", 4, ttl=100, now=6)  # nothing expired: the oldest goes
    assert len(cache) == 3 and cache.get("a", 6) is MISSING and cache.get("d", 6) == 4
    cache.put("d", 5, ttl=0, now=7)  # ttl 0: not kept (and the old value is gone)
    assert cache.get("d", 7) is MISSING


# -- the gate: caches in front of the reviewers ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Reviewers:
    """Fake reviewers: tokens map to identities; ``grants`` is the set of (username,
    attributes) allowed. Counts every question, and can be told to fail or to hold."""

    def __init__(self, tokens: dict[str, UserInfo], grants: set[tuple[str, Attributes]]) -> None:
        self.tokens, self.grants = tokens, grants
        self.asked: list = []
        self.fail = False
        self.hold: asyncio.Event | None = None

    async def authenticate(self, token: str) -> UserInfo | None:
        self.asked.append(("token", token))
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise ReviewUnavailable("down")
        return self.tokens.get(token)

    async def authorize(self, user: UserInfo, attrs: Attributes) -> bool:
        self.asked.append(("access", user.username, attrs))
        if self.fail:
            raise ReviewUnavailable("down")
        return (user.username, attrs) in self.grants


BOB = UserInfo("bob", "uid-b", ("dev",))


def gate(reviewers: Reviewers, clock: Clock) -> Gate:
    return Gate(reviewers.authenticate, reviewers.authorize, ReviewCache(TTLS, 100), clock)


async def test_identity_b_never_rides_on_identity_a():
    """Alice is allowed and her decision is cached; Bob asks the same question at once
    after: the reviewer is asked again, for Bob, and says no."""
    r = Reviewers({"ta": ALICE, "tb": BOB}, {("alice", READ)})
    g = gate(r, Clock())
    assert await g.allowed(await g.user("ta"), READ)
    assert not await g.allowed(await g.user("tb"), READ)
    assert await g.allowed(await g.user("ta"), READ)  # from the cache
    assert r.asked == [("token", "ta"), ("access", "alice", READ), ("token", "tb"), ("access", "bob", READ)]


async def test_cached_until_the_ttl_then_asked_again():
    r = Reviewers({"ta": ALICE}, {("alice", READ)})
    clock = Clock()
    g = gate(r, clock)
    for t in (0, 30, 59):
        clock.now = t
        assert await g.user("ta") == ALICE and await g.allowed(ALICE, READ)
    assert len(r.asked) == 2
    clock.now = 60
    r.grants.clear()  # the RoleBinding was deleted
    assert await g.user("ta") == ALICE and not await g.allowed(ALICE, READ)
    assert len(r.asked) == 4
    r.grants.add(("alice", READ))
    clock.now = 69  # a denial is kept 10 s
    assert not await g.allowed(ALICE, READ)
    clock.now = 70
    assert await g.allowed(ALICE, READ)


async def test_a_refused_token_is_cached_briefly():
    r = Reviewers({}, set())
    clock = Clock()
    g = gate(r, clock)
    assert await g.user("bad") is None and await g.user("bad") is None
    assert r.asked == [("token", "bad")]
    clock.now = 10
    assert await g.user("bad") is None and len(r.asked) == 2


async def test_an_unavailable_reviewer_is_never_cached():
    r = Reviewers({"ta": ALICE}, {("alice", READ)})
    g = gate(r, Clock())
    r.fail = True
    with pytest.raises(ReviewUnavailable):
        await g.user("ta")
    r.fail = False
    assert await g.user("ta") == ALICE
    r.fail = True
    with pytest.raises(ReviewUnavailable):
        await g.allowed(ALICE, READ)
    r.fail = False
    assert await g.allowed(ALICE, READ)


async def test_one_review_in_flight_per_token():
    """A burst with a new token sends one TokenReview; a waiter cancelled meanwhile does
    not cancel it for the others."""
    r = Reviewers({"ta": ALICE}, set())
    r.hold = asyncio.Event()
    g = gate(r, Clock())
    waiters = [asyncio.ensure_future(g.user("ta")) for _ in range(20)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    r.hold.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [ALICE] * 19 and r.asked == [("token", "ta")]


async def test_a_qualified_invoke_is_allowed_by_either_name():
    on_fn = Attributes("invoke", "functions", "a", "fn")
    on_alias = Attributes("invoke", "functions", "a", "fn:prod")
    need = invoke("a", "fn:prod", "fn")
    cases = [({("alice", on_fn)}, True), ({("alice", on_alias)}, True), (set(), False)]
    for grants, allowed in cases:
        assert await gate(Reviewers({}, grants), Clock()).allowed_any(ALICE, need) is allowed, grants
    # a grant on the alias alone does not cover the unqualified function
    assert not await gate(Reviewers({}, {("alice", on_alias)}), Clock()).allowed_any(ALICE, invoke("a", "fn"))


@pytest.mark.parametrize(
    "username, home",
    [
        pytest.param("system:serviceaccount:team-a:orchestrator", "team-a", id="a ServiceAccount"),
        pytest.param("alice", None, id="a user"),
        pytest.param("system:serviceaccount:team-a", None, id="no account name"),
        pytest.param("system:serviceaccount::x", None, id="no namespace"),
        pytest.param("oidc:system:serviceaccount:team-a:x", None, id="only as a prefix"),
    ],
)
def test_home_namespace(username, home):
    assert UserInfo(username).home_namespace == home
