"""Lambda's read API over the router's Functions: what ``aws lambda list-functions``,
``get-function``, ``get-function-configuration``, ``get-function-concurrency``,
``list-versions-by-function``, ``list-aliases``, ``get-alias`` and
``get-account-settings`` ask.

The answers come from the same snapshot the router serves invokes from (on a cluster:
the watched CRDs), in Lambda's shapes (``lambda_shapes``). Names resolve as the Invoke
API resolves them (``names.parse_function_name``, ``invoke_api.plain_namespace``), and
each route needs its RBAC right (``access.NEEDS``: ``get``/``list`` on ``functions``,
``get`` on ``concurrencyquotas`` for the account settings), like any Kubernetes read.

Versions and aliases: a function lists ``$LATEST`` and its published versions
(``FunctionVersion`` objects) and its aliases (``FunctionAlias``); a ``Qualifier`` of
GetFunction(Configuration) is ``$LATEST``, a version's number or an alias (the
configuration of the alias's ``functionVersion``); one that names nothing is
``ResourceNotFoundException``.
"""

from __future__ import annotations

import json

from aiohttp import web

from lambdakube.models import ConcurrencyQuotaSpec
from lambdakube.resources.code import LATEST
from lambdakube_router import keys, lambda_shapes
from lambdakube_router.invoke_api import error_response, plain_namespace
from lambdakube_router.names import BadFunctionName, UnknownAccount, parse_function_name

#: Without the trailing slash (botocore today) and with it (Lambda's documented URI,
#: older SDKs): both are served.
FUNCTIONS = "/2015-03-31/functions"
FUNCTION = "/2015-03-31/functions/{FunctionName}"
CONFIGURATION = FUNCTION + "/configuration"
VERSIONS = FUNCTION + "/versions"
ALIASES = FUNCTION + "/aliases"
ALIAS = ALIASES + "/{Name}"
CONCURRENCY = "/2019-09-30/functions/{FunctionName}/concurrency"
ACCOUNT_SETTINGS = "/2016-08-19/account-settings"


def _json(obj: dict) -> web.Response:
    return web.Response(text=json.dumps(obj, separators=(",", ":")), content_type="application/json")


class Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def function_at_latest(request: web.Request):
    """(namespace, name, spec) of the route's FunctionName at $LATEST, else Refused."""
    try:
        namespace, name, arn_qualifier = parse_function_name(
            request.match_info["FunctionName"], None, plain_namespace(request), request.app[keys.CONFIG].accounts
        )
    except BadFunctionName as exc:
        raise Refused(error_response(400, exc.error_type, str(exc))) from None
    except UnknownAccount as exc:
        raise Refused(error_response(404, exc.error_type, str(exc))) from None
    qualifier = request.query.get("Qualifier") or arn_qualifier
    state = request.app[keys.ENGINE].get(namespace, name)
    if state is None or qualifier not in (None, "", LATEST):
        shown = f"{namespace}/{name}" + (f":{qualifier}" if qualifier not in (None, "", LATEST) else "")
        raise Refused(error_response(404, "ResourceNotFoundException", f"Function not found: {shown}"))
    return namespace, name, state.spec


def _function_name(request: web.Request):
    try:
        return parse_function_name(
            request.match_info["FunctionName"], None, plain_namespace(request), request.app[keys.CONFIG].accounts
        )
    except BadFunctionName as exc:
        raise Refused(error_response(400, exc.error_type, str(exc))) from None
    except UnknownAccount as exc:
        raise Refused(error_response(404, exc.error_type, str(exc))) from None


def function_state(request: web.Request):
    """(state, the ARN's qualifier) of the route's FunctionName, else Refused."""
    namespace, name, arn_qualifier = _function_name(request)
    state = request.app[keys.ENGINE].get(namespace, name)
    if state is None:
        raise Refused(error_response(404, "ResourceNotFoundException", f"Function not found: {namespace}/{name}"))
    return state, arn_qualifier


def _function(request: web.Request):
    """(namespace, name, state) of the route's FunctionName (any qualifier), else Refused."""
    state, _ = function_state(request)
    return state.ref.namespace, state.ref.name, state


def function_at_qualifier(request: web.Request) -> tuple[tuple, dict]:
    """(namespace, name, spec) and ``function_configuration``'s keywords of the route's
    FunctionName at its Qualifier: ``$LATEST``, a version, or an alias's
    ``functionVersion`` (Lambda's GetFunction of an alias); else Refused."""
    namespace, name, arn_qualifier = _function_name(request)
    qualifier = request.query.get("Qualifier") or arn_qualifier or None
    state = request.app[keys.ENGINE].get(namespace, name)
    if state is not None and qualifier in (None, LATEST):
        return (namespace, name, state.spec), {}
    version = None
    if state is not None and qualifier is not None:
        alias = state.aliases.get(qualifier)
        version = alias.spec.function_version if alias is not None else qualifier
        if version == LATEST:
            return (namespace, name, state.spec), {"qualifier": qualifier}
    if state is None or version is None or not version.isdigit() or int(version) not in state.versions:
        shown = f"{namespace}/{name}" + (f":{qualifier}" if qualifier else "")
        raise Refused(error_response(404, "ResourceNotFoundException", f"Function not found: {shown}"))
    published = state.versions[int(version)].spec
    keywords = {"version": version, "qualifier": qualifier, "description": published.description or ""}
    return (namespace, name, state.version_spec(int(version))), keywords


def _answer(build):
    async def handler(request: web.Request) -> web.Response:
        try:
            return _json(build(request))
        except Refused as refused:
            return refused.response
        except lambda_shapes.InvalidParameter as exc:
            return error_response(400, "InvalidParameterValueException", str(exc))

    return handler


def _get_function(request: web.Request) -> dict:
    args, keywords = function_at_qualifier(request)
    return lambda_shapes.get_function(*args, **keywords)


def _get_configuration(request: web.Request) -> dict:
    args, keywords = function_at_qualifier(request)
    return lambda_shapes.function_configuration(*args, **keywords)


def _get_concurrency(request: web.Request) -> dict:
    return lambda_shapes.concurrency(function_at_latest(request)[2])


def _list_versions(request: web.Request) -> dict:
    """$LATEST, then the published versions by number (Lambda's order)."""
    namespace, name, state = _function(request)
    versions = [lambda_shapes.function_configuration(namespace, name, state.spec)]
    for number, entry in sorted(state.versions.items()):
        versions.append(
            lambda_shapes.function_configuration(
                namespace,
                name,
                state.version_spec(number),
                version=str(number),
                qualifier=str(number),
                description=entry.spec.description or "",
            )
        )
    return {"Versions": versions}


def _list_aliases(request: web.Request) -> dict:
    namespace, name, state = _function(request)
    wanted = request.query.get("FunctionVersion")
    return {
        "Aliases": [
            lambda_shapes.alias_configuration(namespace, name, alias, entry.spec, entry.revision_id)
            for alias, entry in sorted(state.aliases.items())
            if wanted in (None, "", entry.spec.function_version)
        ]
    }


def _get_alias(request: web.Request) -> dict:
    namespace, name, state = _function(request)
    alias = request.match_info["Name"]
    entry = state.aliases.get(alias)
    if entry is None:
        raise Refused(error_response(404, "ResourceNotFoundException", f"Alias not found: {namespace}/{name}:{alias}"))
    return lambda_shapes.alias_configuration(namespace, name, alias, entry.spec, entry.revision_id)


def _list_functions(request: web.Request) -> dict:
    namespace = plain_namespace(request)
    limit = lambda_shapes.max_items(request.query.get("MaxItems"))
    engine = request.app[keys.ENGINE]
    names = [name for (ns, name) in engine.functions if ns == namespace]
    chunk, marker = lambda_shapes.page(names, request.query.get("Marker"), limit)
    out: dict = {
        "Functions": [
            lambda_shapes.function_configuration(namespace, n, engine.functions[(namespace, n)].spec) for n in chunk
        ]
    }
    if marker:
        out["NextMarker"] = marker
    return out


def _account_settings(request: web.Request) -> dict:
    namespace = plain_namespace(request)
    engine = request.app[keys.ENGINE]
    limits = engine.namespaces.get(namespace)
    quota = limits.quota if limits is not None else ConcurrencyQuotaSpec()
    unreserved = limits.plan.unreserved if limits is not None else quota.concurrent_executions
    specs = [st.spec for (ns, _), st in engine.functions.items() if ns == namespace]
    return lambda_shapes.account_settings(quota, unreserved, specs)


ROUTES = (
    (FUNCTIONS, _list_functions),
    (FUNCTION, _get_function),
    (CONFIGURATION, _get_configuration),
    (VERSIONS, _list_versions),
    (ALIASES, _list_aliases),
    (ALIAS, _get_alias),
    (CONCURRENCY, _get_concurrency),
    (ACCOUNT_SETTINGS, _account_settings),
)


def add_routes(app: web.Application) -> None:
    for path, build in ROUTES:
        app.router.add_get(path, _answer(build))
        if path in (FUNCTIONS, ACCOUNT_SETTINGS):
            app.router.add_get(path + "/", _answer(build))
