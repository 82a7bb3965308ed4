"""Authentication and authorization of the router's callers: the thin drivers.

The rules are ``access`` (what a request needs) and ``access_cache`` (what is
remembered, and for how long); this module only executes them:

- ``TokenReviewer``: ``Authorization: Bearer <token>`` checked with a TokenReview, the
  API server's own answer (ServiceAccount tokens, OIDC, whatever the cluster accepts),
  as kube-rbac-proxy does;
- ``AccessReviewer``: a SubjectAccessReview per (identity, attributes), so RBAC
  (Roles, ClusterRoles, bindings) decides who may invoke what;
- ``StaticTokens`` + ``allow_authenticated``: ``--auth token-file=PATH`` for a router
  without a cluster (``lambdakube dev``): the file is the access list;
- ``Gate``: the two caches in front of them, with one review in flight per key (a burst
  of requests with a new token sends one TokenReview, not one per request);
- ``middleware``: the aiohttp middleware that answers 401/403/503 in Lambda's error
  shape before a handler runs.

Answers (documented in the README's threat model):

- no token, or one the reviewer refuses: **401** ``UnrecognizedClientException`` (with
  ``WWW-Authenticate: Bearer``). Lambda answers bad credentials with 403 and this error
  type; the status is HTTP's (RFC 6750), so a client can tell "who are you?" from "you
  may not", and AWS SDKs branch on the error type, which is Lambda's;
- authenticated but not allowed: **403** ``AccessDeniedException``, naming the verb,
  resource and namespace that were missing;
- the API server cannot be asked (down, timeout, the router's own RBAC missing):
  **503** ``ServiceException`` with ``Retry-After``. Fail closed, never cached.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from lambdakube_router import keys
from lambdakube_router.access import (
    GROUP,
    Attributes,
    AuthSettings,
    ConfigError,
    FunctionUrl,
    Need,
    Public,
    Requirement,
    UserInfo,
    request_token,
    exposure_problem,
    parse_token_file,
    requirement,
    token_digest,
    url_requirement,
)
from lambdakube_router.access_cache import MISSING, ReviewCache
from lambdakube_router.invoke_api import error_response
from lambdakube_router.kube_api import ApiError, KubeApi
from lambdakube_router.names import NO_ACCOUNTS, Accounts

if TYPE_CHECKING:
    from lambdakube_router.app import RouterConfig

log = logging.getLogger(__name__)

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: A review is on a request's path: far below the invoke's own deadlines.
REVIEW_TIMEOUT = 5.0
RETRY_AFTER_SECONDS = 1

Authenticate = Callable[[str], Awaitable[UserInfo | None]]
Authorize = Callable[[UserInfo, Attributes], Awaitable[bool]]


class ReviewUnavailable(Exception):
    """The API server could not answer a review: the request gets 503, nothing is cached."""


def _unavailable(what: str, exc: Exception) -> ReviewUnavailable:
    if isinstance(exc, ApiError):
        detail = f"{exc.status} {exc.reason}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    log.warning("%s failed: %s", what, detail)
    return ReviewUnavailable(f"{what} failed: {detail}")


class TokenReviewer:
    def __init__(self, kube: KubeApi, audiences: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.audiences = audiences

    async def __call__(self, token: str) -> UserInfo | None:
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = list(self.audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            answer = await self.kube.create(TOKENREVIEWS, body)
        except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable("TokenReview", exc) from None
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            return None
        return UserInfo.from_review(status.get("user") or {})


class AccessReviewer:
    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube

    async def __call__(self, user: UserInfo, attrs: Attributes) -> bool:
        resource: dict[str, Any] = {
            "group": GROUP,
            "resource": attrs.resource,
            "verb": attrs.verb,
            "namespace": attrs.namespace,
        }
        if attrs.name:
            resource["name"] = attrs.name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {**user.review_fields(), "resourceAttributes": resource},
        }
        try:
            answer = await self.kube.create(SUBJECTACCESSREVIEWS, body)
        except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable("SubjectAccessReview", exc) from None
        return bool((answer.get("status") or {}).get("allowed"))


class StaticTokens:
    """The tokens of a ``--token-auth-file``-format file (``access.parse_token_file``)."""

    def __init__(self, users: dict[bytes, UserInfo]) -> None:
        self.users = users

    async def __call__(self, token: str) -> UserInfo | None:
        return self.users.get(token_digest(token))


async def allow_authenticated(user: UserInfo, attrs: Attributes) -> bool:
    """token-file mode: every listed token may do everything (the file is the access list)."""
    return True


class Gate:
    def __init__(
        self,
        authenticate: Authenticate,
        authorize: Authorize,
        cache: ReviewCache,
        clock: Callable[[], float],
    ) -> None:
        self.authenticate = authenticate
        self.authorize = authorize
        self.cache = cache
        self.clock = clock
        self._inflight: dict[Hashable, asyncio.Task] = {}
        #: Reviews asked of ``authenticate``/``authorize`` (not answered from the cache).
        self.reviews = {"token": 0, "access": 0}

    async def _once(self, key: Hashable, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """One review in flight per key; a waiter that goes away does not cancel it for
        the others (``shield``)."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(make())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def user(self, token: str) -> UserInfo | None:
        digest = token_digest(token)
        cached = self.cache.user(digest, self.clock())
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def review() -> UserInfo | None:
            self.reviews["token"] += 1
            user = await self.authenticate(token)
            self.cache.remember_user(digest, user, self.clock())
            return user

        return await self._once(("token", digest), review)

    async def allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        cached = self.cache.decision(user, attrs, self.clock())
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def review() -> bool:
            self.reviews["access"] += 1
            allowed = await self.authorize(user, attrs)
            self.cache.remember_decision(user, attrs, allowed, self.clock())
            return allowed

        return await self._once(("access", user, attrs), review)

    async def allowed_any(self, user: UserInfo, need: Need) -> bool:
        """Most specific first; the first allowed one ends it."""
        for attrs in need.checks:
            if await self.allowed(user, attrs):
                return True
        return False


# -- the answers ---------------------------------------------------------------------------


def _answer(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return error_response(status, error_type, message, {"X-Amz-Request-Id": str(uuid.uuid4()), **(headers or {})})


def unauthenticated(message: str) -> web.Response:
    return _answer(401, "UnrecognizedClientException", message, {"WWW-Authenticate": 'Bearer realm="lambdakube"'})


def denied(user: UserInfo, need: Need) -> web.Response:
    wanted = need.checks[-1]  # the broadest: the grant that would do it
    alternatives = "" if len(need.checks) == 1 else f" (or {need.checks[0].describe()})"
    return _answer(
        403,
        "AccessDeniedException",
        f"User: {user.username} is not authorized to perform: {wanted.describe()}{alternatives}",
    )


def unavailable(message: str) -> web.Response:
    return _answer(503, "ServiceException", message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


class Access:
    """The check in front of every handler, written once for aiohttp's routes
    (``middleware``) and the router's front (``fast_invoke``)."""

    def __init__(self, gate: Gate, default_namespace: str, accounts: Accounts = NO_ACCOUNTS, invalid_hint: str = ""):
        """``invalid_hint``: why a token may be refused, added to the 401's message."""
        self.gate = gate
        self.default_namespace = default_namespace
        self.accounts = accounts
        self.invalid = "The security token included in the request is invalid." + invalid_hint

    async def check(self, need_in: Callable[[str], Requirement], headers: Mapping[str, str]) -> web.Response | Grant:
        """The refusal to answer, or who may go on. ``need_in(namespace)``: what the
        request needs when a plain name is in ``namespace`` (the caller's home may
        change it)."""
        default_namespace = self.default_namespace
        need = need_in(default_namespace)
        if isinstance(need, Public):
            return PUBLIC_GRANT
        token = request_token(headers)
        if token is None:
            return unauthenticated(
                "Missing authentication token: send Authorization: Bearer <token>"
                " (or an AWS SDK's session token, X-Amz-Security-Token)"
            )
        gate = self.gate
        try:
            user = await gate.user(token)
            if user is None:
                return unauthenticated(self.invalid)
            home = user.home_namespace
            if home is not None and home != default_namespace:
                need = need_in(home)
            else:
                home = None
            if isinstance(need, Need) and not await gate.allowed_any(user, need):
                log.debug("denied %s: %s", user.username, need)
                return denied(user, need)
        except ReviewUnavailable as exc:
            return unavailable(f"The request could not be authorized, retry later: {exc}")
        return Grant(user, home)


@dataclass(frozen=True, slots=True)
class Grant:
    """A request may go on: as ``user`` (None: a public route), with plain names in
    ``home`` (None: the router's default namespace)."""

    user: UserInfo | None
    home: str | None


PUBLIC_GRANT = Grant(None, None)


def middleware(access: Access):
    @web.middleware
    async def check_access(request: web.Request, handler):
        match = request.match_info
        resource = match.route.resource

        def need_in(default: str):
            need = requirement(
                request.method,
                resource.canonical if resource is not None else None,
                match,
                request.query,
                header_namespace=request.headers.get("X-Lambdakube-Namespace"),
                default_namespace=default,
                accounts=access.accounts,
            )
            if isinstance(need, FunctionUrl):  # the function's own authType says
                return url_requirement(_url_auth_type(request, need), need)
            return need

        grant = await access.check(need_in, request.headers)
        if isinstance(grant, web.Response):
            return grant
        if grant.home is not None:
            request[keys.DEFAULT_NAMESPACE] = grant.home
        if grant.user is not None:
            request[keys.CALLER] = grant.user
        return await handler(request)

    return check_access


def _url_auth_type(request: web.Request, url: FunctionUrl) -> str | None:
    """The authType of the function a URL names (None: no such function, or no URL)."""
    engine = request.app.get(keys.ENGINE)
    state = engine.get(url.namespace, url.name) if engine is not None else None
    if state is None or state.spec.url is None:
        return None
    return state.spec.url.auth_type


# -- wiring ----------------------------------------------------------------------------


def _kube(config: RouterConfig) -> tuple[KubeApi, Callable[[], Awaitable[None]]]:
    """The API client of the reviews: the router's credentials (``--kubeconfig``, else
    in-cluster), on connections of its own (a burst of cold starts' pod writes never
    holds a request's review)."""
    import kubernetes  # noqa: PLC0415 - only this mode needs the client

    from lambdakube import kubeclient  # noqa: PLC0415
    from lambdakube_router.informer import ApiSession  # noqa: PLC0415

    try:
        own = kubeclient.api_client(config.kubeconfig)
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ConfigError(f"--auth tokenreview needs the Kubernetes API (in-cluster or --kubeconfig): {exc}") from None
    configuration = own.configuration
    own.close()
    http = ApiSession(configuration)
    return KubeApi(http, configuration, timeout=REVIEW_TIMEOUT), http.close


def install(app: web.Application, config: RouterConfig) -> None:
    """Check the settings (``ConfigError``: the router does not start) and put the gate in
    front of every handler. ``none`` installs nothing: no cost on the hot path."""
    settings: AuthSettings = config.auth
    problem = exposure_problem(config.host, settings)
    if problem:
        raise ConfigError(problem)
    if settings.mode == "none":
        level = logging.WARNING if settings.insecure else logging.INFO
        log.log(level, "--auth none: whoever reaches %s may invoke every function", config.host)
        return
    cache = ReviewCache(settings.ttls, settings.max_entries)
    if settings.mode == "token-file":
        path = Path(settings.token_file or "")
        try:
            users = parse_token_file(path.read_text(), str(path))
        except OSError as exc:
            raise ConfigError(f"--auth token-file: cannot read {path}: {exc}") from None
        gate = Gate(StaticTokens(users), allow_authenticated, cache, config.clock)
    else:
        kube, close = _kube(config)
        gate = Gate(TokenReviewer(kube, settings.audiences), AccessReviewer(kube), cache, config.clock)

        async def session(app: web.Application):
            yield
            await close()

        app.cleanup_ctx.append(session)
    app[keys.GATE] = gate
    hint = ""
    if settings.mode == "tokenreview":
        audiences = ", ".join(settings.audiences) or "the API server's own"
        hint = f" Tokens must be valid for the audience {audiences} (kubectl create token SA --audience ...)."
    access = app[keys.ACCESS] = Access(gate, config.namespace, config.accounts, hint)
    app.middlewares.append(middleware(access))
