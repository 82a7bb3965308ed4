"""Lambda's provisioned-concurrency calls: Put/Get/DeleteProvisionedConcurrencyConfig
and ListProvisionedConcurrencyConfigs (``aws lambda put-provisioned-concurrency-config``,
boto3's ``put_provisioned_concurrency_config``; all on
``/2019-09-30/functions/{F}/provisioned-concurrency``, the list with ``?List=ALL``).

A configuration belongs to a version or an alias, never to ``$LATEST`` (Lambda's 400);
on a cluster it is that ``FunctionVersion``'s or ``FunctionAlias``'s
``spec.provisionedConcurrency``, merge-patched by the router (the chart's admission policy
holds the router to that one field), and the counts come from the environments the
router holds for the version (on a cluster: the operator's pods it follows): Allocated is
the initialised ones, Available the idle ones, ``READY`` once all are up. An alias that
splits by weight splits its environments the same way (``lambdakube.provisioning``).

As Lambda, a configuration that would not fit is refused at the call: beyond the
function's reserved concurrency, or (with none) beyond what the namespace's unreserved
pool may give while keeping ``minimumUnreserved`` (``lambda_shapes.provisioned_problem``).
The caller needs ``configure-concurrency`` on the function (a grant on ``fn:qualifier``
is enough), reads need ``get``: ``access.NEEDS``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from aiohttp import web

from lambdakube import provisioning
from lambdakube.formats import function_arn
from lambdakube.models import LATEST, PROVISIONED_ON_LATEST
from lambdakube_router import keys, lambda_shapes
from lambdakube_router.invocations import FunctionState
from lambdakube_router.invoke_api import error_response
from lambdakube_router.kube_api import ApiError
from lambdakube_router.lambda_read_api import Refused, function_state
from lambdakube_router.lambda_write_api import READ_BACK_SECONDS, api_refusal, read_count
from lambdakube_router.snapshot import ALIAS_KIND, VERSION_KIND
from lambdakube_router.sources import ReadOnly

log = logging.getLogger(__name__)

PROVISIONED = "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"


def _last_modified(moment: float) -> str:
    """Lambda's timestamp shape: ``2026-12-03T18:00:00.000+0000``."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _qualifier(request: web.Request, state: FunctionState, arn_qualifier: str | None) -> tuple[str, str]:
    """(kind, object name) of the version or alias the call names, else Refused."""
    ns, name = state.ref.namespace, state.ref.name
    qualifier = request.query.get("Qualifier") or arn_qualifier
    if not qualifier:
        raise Refused(error_response(400, "ValidationException", "Qualifier is required: a version or an alias"))
    alias = state.aliases.get(qualifier)
    if qualifier == LATEST or (alias is not None and alias.spec.function_version == LATEST):
        raise Refused(error_response(400, "InvalidParameterValueException", PROVISIONED_ON_LATEST))
    if alias is not None:
        return ALIAS_KIND, qualifier
    if qualifier.isdigit() and int(qualifier) in state.versions:
        return VERSION_KIND, state.versions[int(qualifier)].object_name
    raise Refused(error_response(404, "ResourceNotFoundException", f"Function not found: {ns}/{name}:{qualifier}"))


def _counts(state: FunctionState, qualifier: str) -> tuple[int, int]:
    """(allocated, available) of a configuration: what the version pools hold of it. An
    alias's share of a version is its part of that version's environments."""
    if qualifier in state.aliases:
        shares = provisioning.alias_split(state.aliases[qualifier].spec)
    else:
        shares = {qualifier: state.provisioned_configs.get(qualifier, (0, 0.0))[0]}
    allocated = available = 0
    for version, share in shares.items():
        pool = state.version_pools.get(int(version)) if version != LATEST else None
        ready, idle = pool.provisioned_ready() if pool is not None else (0, 0)
        allocated, available = allocated + min(share, ready), available + min(share, idle)
    return allocated, available


def _config(state: FunctionState, qualifier: str, with_arn: bool = False) -> dict:
    requested, since = state.provisioned_configs[qualifier]
    allocated, available = _counts(state, qualifier)
    arn = f"{function_arn(state.ref.namespace, state.ref.name)}:{qualifier}" if with_arn else None
    return lambda_shapes.provisioned_config(requested, allocated, available, _last_modified(since), arn)


async def _get(request: web.Request) -> web.Response:
    try:
        state, arn_qualifier = function_state(request)
        if request.query.get("List") is not None:
            return _list(request, state)
        _qualifier(request, state, arn_qualifier)
    except Refused as refused:
        return refused.response
    except lambda_shapes.InvalidParameter as exc:  # Marker, MaxItems
        return error_response(400, "InvalidParameterValueException", str(exc))
    qualifier = request.query.get("Qualifier") or arn_qualifier or ""
    if qualifier not in state.provisioned_configs:
        return error_response(404, "ProvisionedConcurrencyConfigNotFoundException", lambda_shapes.NO_PROVISIONED_CONFIG)
    return web.json_response(_config(state, qualifier))


def _list(request: web.Request, state: FunctionState) -> web.Response:
    limit = lambda_shapes.max_items(request.query.get("MaxItems"))
    names = sorted(state.provisioned_configs, key=lambda q: (not q.isdigit(), q.zfill(12) if q.isdigit() else q))
    chunk, marker = lambda_shapes.page(names, request.query.get("Marker"), limit)
    out: dict = {"ProvisionedConcurrencyConfigs": [_config(state, q, with_arn=True) for q in chunk]}
    if marker:
        out["NextMarker"] = marker
    return web.json_response(out)


def _fit(request: web.Request, state: FunctionState, qualifier: str, value: int) -> str | None:
    """Lambda's refusal of ``value`` for ``qualifier`` (None: it fits)."""
    versions = {n: v.spec.provisioned_concurrency for n, v in state.versions.items()}
    aliases = {a: e.spec for a, e in state.aliases.items()}
    if qualifier in aliases:
        aliases[qualifier] = aliases[qualifier].model_copy(update={"provisioned_concurrency": value})
    else:
        versions[int(qualifier)] = value
    total = provisioning.total(provisioning.by_version(state.spec.provisioned_concurrency, versions, aliases.values()))
    limits = state.limits
    engine = request.app[keys.ENGINE]
    others = 0
    for fn, fl in limits.functions.items():
        if fn == state.ref.name or fn in limits.plan.rejected:
            continue
        other = engine.get(state.ref.namespace, fn)
        held = provisioning.total(other.provisioned()) if other is not None else 0
        others += fl.spec.reserved_concurrency if fl.spec.reserved_concurrency is not None else held
    return lambda_shapes.provisioned_problem(limits.quota, state.spec, others, total)


async def _write(request: web.Request, value: int) -> web.Response | None:
    """Patch the version's or alias's ``spec.provisionedConcurrency`` and wait for the
    router's view; None when done."""
    try:
        state, arn_qualifier = function_state(request)
        kind, object_name = _qualifier(request, state, arn_qualifier)
    except Refused as refused:
        return refused.response
    qualifier = request.query.get("Qualifier") or arn_qualifier or ""
    if value:
        problem = _fit(request, state, qualifier, value)
        if problem:
            return error_response(400, "InvalidParameterValueException", problem)
    elif qualifier not in state.provisioned_configs:
        return error_response(404, "ProvisionedConcurrencyConfigNotFoundException", lambda_shapes.NO_PROVISIONED_CONFIG)
    namespace, name = state.ref.namespace, state.ref.name
    what = f"{namespace}/{name}:{qualifier}"
    try:
        await request.app[keys.SOURCE].patch(kind, namespace, object_name, {"spec": {"provisionedConcurrency": value}})
    except ReadOnly as exc:
        return error_response(400, "InvalidParameterValueException", str(exc))
    except ApiError as exc:
        return api_refusal(exc, what)
    engine = request.app[keys.ENGINE]

    def applied() -> bool:
        now = engine.get(namespace, name)
        return now is None or now.provisioned_configs.get(qualifier, (0, 0.0))[0] == value

    if not await engine.wait_applied(applied, READ_BACK_SECONDS):
        log.warning("%s: provisionedConcurrency=%d written, not seen by the watch yet", what, value)
    return None


async def _put(request: web.Request) -> web.Response:
    value = await read_count(request, "ProvisionedConcurrentExecutions", 1)
    if isinstance(value, web.Response):
        return value
    refused = await _write(request, value)
    if refused is not None:
        return refused
    try:
        state, arn_qualifier = function_state(request)
    except Refused as gone:  # deleted meanwhile
        return gone.response
    qualifier = request.query.get("Qualifier") or arn_qualifier or ""
    if qualifier not in state.provisioned_configs:  # written, not back from the watch yet
        now = _last_modified(time.time())
        return web.json_response(lambda_shapes.provisioned_config(value, 0, 0, now), status=202)
    return web.json_response(_config(state, qualifier), status=202)


async def _delete(request: web.Request) -> web.Response:
    refused = await _write(request, 0)
    return refused if refused is not None else web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PROVISIONED, _get)
    app.router.add_put(PROVISIONED, _put)
    app.router.add_delete(PROVISIONED, _delete)
