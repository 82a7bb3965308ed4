"""Who may call what on the router: the rules, as pure functions (no I/O, no aiohttp).

Every request maps to what it needs (``requirement``): nothing (``Public``: probes,
metrics, the OpenAPI document, and the environments' announce, which carries its own
per-pod token), any authenticated caller (``AUTHENTICATED``: a request no route
matches, a malformed function name, or an ARN of an account that maps to no namespace
(``names``); the handler then answers 400/404), or the right to do a verb on a resource
of the ``lambdakube.dev`` API group (``Need``), which the router asks the API server
with a SubjectAccessReview, so ordinary RBAC rules grant it.

The attributes, one table (``NEEDS``; ``PUBLIC`` names the open routes and why):

============================================  ======  ==============  =============
request                                       verb    resource        name
============================================  ======  ==============  =============
POST /2015-03-31/functions/{F}/invocations    invoke  functions       ``fn`` (below)
GET  .../namespaces/{ns}/functions            inspect functions       (none)
GET  .../namespaces/{ns}/functions/{name}     inspect functions       ``name``
GET  .../namespaces/{ns}/queues/{q}/messages  get     queues          ``q``
DELETE .../namespaces/{ns}/queues/{q}/...     delete  queues          ``q``
POST .../namespaces/{ns}/queues/{q}/messages  create  queues          ``q``
GET  .../namespaces/{ns}/eventsourcemappings  list    eventsourcemappings  (none)
GET  .../namespaces/{ns}/async-events         list    asyncevents     (none)
GET  .../namespaces/{ns}/overview             inspect functions       (none)
GET  .../namespaces/{ns}/functions/{n}/logs   inspect functions       ``n``
GET  /2015-03-31/functions[/]                 list    functions       (none)
GET  /2015-03-31/functions/{F}[/...]          get     functions       ``fn`` (below)
GET  /2019-09-30/functions/{F}/concurrency    get     functions       ``fn``
GET  /2016-08-19/account-settings[/]          get     concurrencyquotas  ``default``
PUT|DELETE .../functions/{F}/concurrency    configure-concurrency  functions  ``fn``
GET  .../functions/{F}/provisioned-concurrency  get  functions       ``fn`` (below)
PUT|DELETE .../{F}/provisioned-concurrency  configure-concurrency  functions  ``fn`` (below)
============================================  ======  ==============  =============

The read API's routes (``lambda_read_api``) are those of Lambda's GetFunction,
GetFunctionConfiguration, ListVersionsByFunction, ListAliases, GetFunctionConcurrency,
ListFunctions and GetAccountSettings; a route without a function is in the namespace of
a plain name (header, a ServiceAccount's own, the router's default).

``invoke`` and ``inspect`` are custom verbs (RBAC accepts any verb). ``inspect`` is its
own verb, not ``get``: the pool state lists every environment's address, and a runtime
serves whoever reaches it, so seeing it is an operator's right, not a viewer's.
``queues`` and ``asyncevents`` are resources of the group that exist only in the
router (no CRD): RBAC matches them like any other.

Qualifiers (``resourceName``): an unqualified invoke, or ``$LATEST``, needs ``invoke`` on
``fn``. A qualified one (``fn:prod``, Lambda's alias or version) is allowed by a grant on
``fn:prod`` *or* on ``fn``: a grant on the function covers all its qualifiers, a grant
on ``fn:prod`` only that one. A SubjectAccessReview matches resourceNames exactly, so
the router asks for both names (``Need.checks`` are alternatives). Today only
``$LATEST`` exists, and a qualified invoke is refused as not found *after* this check:
an unauthorized caller learns nothing about which functions exist.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from lambdakube.resources import identity
from lambdakube_router.names import LATEST, NO_ACCOUNTS, Accounts, BadFunctionName, UnknownAccount, parse_function_name

GROUP = "lambdakube.dev"
INVOKE_ROUTE = "/2015-03-31/functions/{FunctionName}/invocations"
_NS = "/lambdakube/v1/namespaces/{namespace}"

Mode = Literal["none", "tokenreview", "token-file"]
MODES = ("none", "tokenreview", "token-file")


# -- what a request needs ----------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    """A SubjectAccessReview's resourceAttributes in ``GROUP`` (name "" = none)."""

    verb: str
    resource: str
    namespace: str
    name: str = ""

    def describe(self) -> str:
        target = f"{self.resource}.{GROUP}" + (f"/{self.name}" if self.name else "")
        return f"{self.verb} on {target} in namespace {self.namespace}"


@dataclass(frozen=True)
class Public:
    """No credentials asked."""

    why: str


@dataclass(frozen=True)
class Authenticated:
    """Any authenticated caller (the handler answers)."""


@dataclass(frozen=True)
class Need:
    """Allowed when any one of ``checks`` is allowed (a qualifier's alternatives)."""

    checks: tuple[Attributes, ...]


Requirement = Public | Authenticated | Need
AUTHENTICATED = Authenticated()


def function_names(name: str, qualifier: str | None) -> tuple[str, ...]:
    """The resourceNames that allow invoking ``name`` at ``qualifier``, most specific first."""
    if qualifier in (None, "", LATEST):
        return (name,)
    return (f"{name}:{qualifier}", name)


def _named(verb: str) -> Callable[..., Requirement]:
    """A route of one function (``FunctionName``, a qualifier): ``verb`` on it."""

    def rule(
        match: Mapping[str, str],
        query: Mapping[str, str],
        header_ns: str | None,
        default_ns: str,
        accounts: Accounts = NO_ACCOUNTS,
    ) -> Requirement:
        try:
            ns, name, arn_qualifier = parse_function_name(match["FunctionName"], header_ns, default_ns, accounts)
        except (BadFunctionName, UnknownAccount):
            return AUTHENTICATED  # the handler answers 400 / 404
        qualifier = query.get("Qualifier") or arn_qualifier  # as the handlers read it
        return Need(tuple(Attributes(verb, "functions", ns, n) for n in function_names(name, qualifier)))

    return rule


def _in_namespace(verb: str, resource: str, name: str = "") -> Callable[..., Requirement]:
    """A route of the caller's namespace (Lambda's account): header, else default."""

    def rule(match, query, header_ns: str | None, default_ns: str, accounts=NO_ACCOUNTS) -> Requirement:
        return Need((Attributes(verb, resource, header_ns or default_ns, name),))

    return rule


_invoke = _named("invoke")


def _on(verb: str, resource: str, name_key: str | None = None) -> Callable[..., Requirement]:
    def rule(match: Mapping[str, str], query, header_ns, default_ns, accounts=NO_ACCOUNTS) -> Requirement:
        name = match.get(name_key, "") if name_key else ""
        return Need((Attributes(verb, resource, match["namespace"], name),))

    return rule


#: (method, route pattern) -> the rule of a route that needs a caller.
NEEDS: dict[tuple[str, str], Callable[..., Requirement]] = {
    ("POST", INVOKE_ROUTE): _invoke,
    # Lambda's read API (lambda_read_api): what a viewer may see with kubectl too
    ("GET", "/2015-03-31/functions"): _in_namespace("list", "functions"),
    ("GET", "/2015-03-31/functions/"): _in_namespace("list", "functions"),
    ("GET", "/2015-03-31/functions/{FunctionName}"): _named("get"),
    ("GET", "/2015-03-31/functions/{FunctionName}/configuration"): _named("get"),
    ("GET", "/2015-03-31/functions/{FunctionName}/versions"): _named("get"),
    ("GET", "/2015-03-31/functions/{FunctionName}/aliases"): _named("get"),
    ("GET", "/2015-03-31/functions/{FunctionName}/aliases/{Name}"): _named("get"),
    ("GET", "/2019-09-30/functions/{FunctionName}/concurrency"): _named("get"),
    # Lambda's reserved-concurrency writes (lambda_write_api): a verb of their own, as
    # Lambda's lambda:PutFunctionConcurrency (patch would grant editing the code too)
    ("PUT", "/2017-10-31/functions/{FunctionName}/concurrency"): _named("configure-concurrency"),
    ("DELETE", "/2017-10-31/functions/{FunctionName}/concurrency"): _named("configure-concurrency"),
    # Lambda's provisioned-concurrency calls (lambda_provisioned_api), on a version or
    # an alias: a grant on ``fn:qualifier`` is enough
    ("GET", "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"): _named("get"),
    ("PUT", "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"): _named("configure-concurrency"),
    ("DELETE", "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"): _named("configure-concurrency"),
    ("GET", "/2016-08-19/account-settings"): _in_namespace("get", "concurrencyquotas", "default"),
    ("GET", "/2016-08-19/account-settings/"): _in_namespace("get", "concurrencyquotas", "default"),
    ("GET", _NS + "/functions"): _on("inspect", "functions"),
    ("GET", _NS + "/functions/{name}"): _on("inspect", "functions", "name"),
    ("GET", _NS + "/queues/{queue}/messages"): _on("get", "queues", "queue"),
    ("DELETE", _NS + "/queues/{queue}/messages"): _on("delete", "queues", "queue"),
    # SQS's SendMessage onto a durable queue (``event_source_api``): its mappings' input
    ("POST", _NS + "/queues/{queue}/messages"): _on("create", "queues", "queue"),
    ("GET", _NS + "/eventsourcemappings"): _on("list", "eventsourcemappings"),
    ("GET", _NS + "/async-events"): _on("list", "asyncevents"),
    # the web view's data and the environments' output (``ui``): the pool's inner state
    ("GET", _NS + "/overview"): _on("inspect", "functions"),
    ("GET", _NS + "/functions/{name}/logs"): _on("inspect", "functions", "name"),
}
#: (method, route pattern) -> why it asks for no credentials.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("GET", "/metrics"): "Prometheus scrape (counts only, no payloads)",
    ("GET", "/openapi.json"): "the static API document",
    # Static HTML and JS, no data: what it shows comes from .../overview, which needs a token.
    ("GET", "/lambdakube/ui"): "the web view's static page (its data calls need inspect)",
    # A fresh pod's runtime has no router credentials: its per-pod token authenticates
    # it (announce_api; KubernetesBackend.announced checks token, pod and peer IP).
    ("POST", "/internal/v1/environments/listening"): "checked by its per-pod announce token",
}
#: Every route the app registers (tests/unit/test_router_access.py checks it); HEAD is
#: asked as GET.
ROUTES = set(NEEDS) | set(PUBLIC)


def requirement(
    method: str,
    route: str | None,
    match: Mapping[str, str],
    query: Mapping[str, str],
    *,
    header_namespace: str | None,
    default_namespace: str,
    accounts: Accounts = NO_ACCOUNTS,
) -> Requirement:
    """What a request needs. ``route`` is the matched route's pattern (None: no route
    matched, or the method is not allowed: an authenticated caller gets the 404/405)."""
    method = "GET" if method == "HEAD" else method
    if route is None:
        return AUTHENTICATED
    why = PUBLIC.get((method, route))
    if why is not None:
        return Public(why)
    rule = NEEDS.get((method, route))
    if rule is None:
        return AUTHENTICATED
    return rule(match, query, header_namespace, default_namespace, accounts)


# -- who is calling --------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity, as TokenReview reports it. Frozen and hashable: the
    whole of it (groups and extra included) is part of every cached decision's key."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_review(cls, user: Mapping) -> UserInfo:
        extra = user.get("extra") or {}
        return cls(
            username=user.get("username", ""),
            uid=user.get("uid", ""),
            groups=tuple(user.get("groups") or ()),
            extra=tuple(sorted((k, tuple(v or ())) for k, v in extra.items())),
        )

    @property
    def home_namespace(self) -> str | None:
        """A ServiceAccount's namespace (``system:serviceaccount:<ns>:<name>``), else None.

        A plain function name a ServiceAccount invokes is looked up there, as a plain
        name in Lambda means "in the caller's account": a handler calling ``worker``
        reaches the ``worker`` next to it, with the SDK's defaults."""
        prefix, _, rest = self.username.partition("system:serviceaccount:")
        namespace, sep, name = rest.partition(":")
        return namespace if not prefix and sep and namespace and name else None

    def review_fields(self) -> dict:
        """The SubjectAccessReview spec's user fields."""
        out: dict = {"user": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive, RFC 6750),
    or None when absent or another scheme."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


#: Where an AWS SDK puts its session token (SigV4, ``lambdakube.resources.identity``).
SECURITY_TOKEN_HEADER = "X-Amz-Security-Token"


def request_token(headers: Mapping[str, str]) -> str | None:
    """The caller's token: ``Authorization: Bearer``, else the session token of an AWS
    SDK's SigV4-signed request (``X-Amz-Security-Token``: a function's own token, or any
    token a user configured as ``AWS_SESSION_TOKEN``). The signature is not checked: the
    SDK's key pair is not a secret, the token is the credential."""
    token = bearer_token(headers.get("Authorization"))
    if token is not None:
        return token
    session = (headers.get(SECURITY_TOKEN_HEADER) or "").strip()
    return session if session and " " not in session else None


def token_digest(token: str) -> bytes:
    """What caches and the token file are keyed by: never the token itself."""
    return hashlib.sha256(token.encode()).digest()


class ConfigError(ValueError):
    """The router's access settings are refused at start (it does not bind)."""


def parse_token_file(text: str, source: str = "token file") -> dict[bytes, UserInfo]:
    """kube-apiserver's ``--token-auth-file`` format: CSV lines ``token,user,uid`` and an
    optional fourth column of groups, comma-separated and quoted (``"g1,g2"``). Blank
    lines and lines starting with ``#`` are skipped. Keyed by ``token_digest``."""
    out: dict[bytes, UserInfo] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or len(row) > 4 or not row[0].strip() or not row[1].strip():
            raise ConfigError(f'{source}:{n}: expected token,user,uid[,"group1,group2"]')
        token, user, uid = (c.strip() for c in row[:3])
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) == 4 else ()
        digest = token_digest(token)
        if digest in out:
            raise ConfigError(f"{source}:{n}: a token is listed twice")
        out[digest] = UserInfo(username=user, uid=uid, groups=groups)
    return out


# -- the router's settings ---------------------------------------------------------------


@dataclass(frozen=True)
class Ttls:
    """Seconds a result is reused. Short on purpose: a deleted ServiceAccount or
    RoleBinding takes effect within ``authenticated``/``allowed``; a failure or denial is
    kept shorter, so a new grant is seen quickly, yet a caller retrying with a bad token
    does not send a review per request. (kube-apiserver's webhook defaults are 2 min for
    tokens, 5 min allowed and 30 s denied; kube-rbac-proxy reuses those.)"""

    authenticated: float = 60.0
    unauthenticated: float = 10.0
    allowed: float = 60.0
    denied: float = 10.0


@dataclass(frozen=True)
class AuthSettings:
    #: none: no checks (loopback only, unless ``insecure``); tokenreview: bearer tokens
    #: checked with TokenReview, rights with SubjectAccessReview; token-file: tokens of a
    #: static file, and every listed token may do everything (the file is the access list).
    mode: Mode = "none"
    token_file: str | None = None
    #: tokenreview: the audiences a token must be issued for (one of them). The default
    #: is the functions' own tokens' (``identity.AUDIENCE``), so a token made for this
    #: router is no API server token and the other way round; () asks for the API
    #: server's own audiences (``kubectl create token`` without ``--audience``).
    audiences: tuple[str, ...] = (identity.AUDIENCE,)
    #: Allow ``mode="none"`` on an address other than loopback.
    insecure: bool = False
    ttls: Ttls = field(default_factory=Ttls)
    #: Entries per cache (tokens, decisions); the oldest go first beyond it.
    max_entries: int = 10_000


def parse_mode(value: str) -> tuple[Mode, str | None]:
    """``--auth``: ``none``, ``tokenreview`` or ``token-file=PATH``."""
    if value in ("none", "tokenreview"):
        return value, None  # type: ignore[return-value]
    key, sep, path = value.partition("=")
    if key == "token-file" and sep and path:
        return "token-file", path
    raise ConfigError(f"--auth must be none, tokenreview or token-file=PATH, got {value!r}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, settings: AuthSettings) -> str | None:
    """Why the router must not start on ``host`` with ``settings`` (None: it may)."""
    if settings.mode == "none" and not settings.insecure and not is_loopback(host):
        return (
            f"refusing to serve on {host} without authentication: anyone who reaches it could invoke"
            " every function and read every queue. Use --auth tokenreview or --auth token-file=PATH,"
            " bind to 127.0.0.1, or pass --insecure to accept that"
        )
    if settings.mode == "token-file" and not settings.token_file:
        return "--auth token-file needs a path: --auth token-file=PATH"
    return None
