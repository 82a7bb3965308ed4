"""The web view (``GET /lambdakube/ui``) and the two read-only routes it and the CLI use.

Why the page itself is public and its data is not: the page is one static file (plain
HTML and JS, no build step, shipped as package data) with nothing in it but code; every
number it shows comes from ``GET .../namespaces/{ns}/overview``, which needs ``inspect``
on functions exactly as the pool API does (``access``). With ``--auth none`` the page
just works; otherwise the token is typed into the page, kept in the tab's
``sessionStorage`` (gone with the tab, never in a cookie, so no other site can make the
browser send it) and sent as ``Authorization: Bearer``. The page polls once a second:
EventSource cannot send that header, and a poll of one small JSON document costs less
than keeping a stream per open tab.

``GET .../functions/{name}/logs`` returns the end of each live environment's output
(START/END/REPORT and what the handler printed) where the backend keeps it: the local
backend's log files (``LocalProcess.tail``). Pods' logs stay with the kubelet
(``kubectl logs``): the router has no right to read them, so on Kubernetes the answer
says so instead. It needs ``inspect`` too: a handler's output is the function owner's.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from aiohttp import web

from lambdakube_router import keys, overview, params

PAGE = "/lambdakube/ui"
OVERVIEW = "/lambdakube/v1/namespaces/{namespace}/overview"
LOGS = "/lambdakube/v1/namespaces/{namespace}/functions/{name}/logs"

LOG_BYTES = params.Param(
    "limit",
    "query",
    "integer",
    default=16384,
    minimum=1,
    maximum=1 << 20,
    description="at most this many bytes of each environment's output (its end)",
)
GET_OVERVIEW = (params.NAMESPACE,)
GET_LOGS = (params.NAMESPACE, params.FUNCTION, LOG_BYTES)

#: Where the kubernetes backend's environment output is (the answer's ``hint``).
KUBECTL_HINT = "kubectl logs -n {namespace} -l lambdakube.dev/function={name} --prefix --tail=100"


def _json(obj, status: int = 200, error_type: str | None = None) -> web.Response:
    headers = {"x-amzn-ErrorType": error_type} if error_type else None
    text = json.dumps(obj, separators=(",", ":"), default=str)
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)


def _error(status: int, error_type: str, message: str) -> web.Response:
    """Lambda's error shape, as ``introspection`` answers (which imports the document
    this module is part of, hence not imported here)."""
    return _json({"errorType": error_type, "errorMessage": message, "message": message}, status, error_type)


def _params(request: web.Request, declared: tuple[params.Param, ...]) -> dict | web.Response:
    try:
        return params.parse(declared, request.match_info, request.query.items())
    except params.InvalidParameter as exc:
        return _error(400, "InvalidParameterValueException", str(exc))


def _page_html() -> str:
    return resources.files("lambdakube_router").joinpath("static/ui.html").read_text(encoding="utf-8")


async def page(request: web.Request) -> web.Response:
    return web.Response(
        text=_page_html(),
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            # The page talks to its own origin only, and nothing may frame it.
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' 'self';"
            " style-src 'unsafe-inline' 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def get_overview(request: web.Request) -> web.Response:
    p = _params(request, GET_OVERVIEW)
    if isinstance(p, web.Response):
        return p
    ns = p["namespace"]
    view = overview.namespace_overview(request.app[keys.ENGINE], str(ns))
    if view is None:
        view = {"namespace": ns, "quota": None, "functions": []}
    return _json(view)


async def get_logs(request: web.Request) -> web.Response:
    p = _params(request, GET_LOGS)
    if isinstance(p, web.Response):
        return p
    ns, name, limit = str(p["namespace"]), str(p["name"]), int(p["limit"] or 0)
    state = request.app[keys.ENGINE].get(ns, name)
    if state is None:
        return _error(404, "ResourceNotFoundException", f"Function not found: {ns}/{name}")
    found = []
    for version, pool in [("$LATEST", state.pool), *((str(n), p) for n, p in sorted(state.version_pools.items()))]:
        for env in list(pool.envs.values()):
            private = env.handle.private if env.handle is not None else None
            found.append((env.env_id, env.state.value, version, getattr(private, "tail", None)))
    tails = await asyncio.to_thread(lambda: [tail(limit) if tail is not None else None for *_, tail in found])
    environments = [
        {"id": env_id, "state": st, "version": version, "log": text}
        for (env_id, st, version, _), text in zip(found, tails, strict=True)
    ]
    supported = all(e["log"] is not None for e in environments) if environments else _keeps_logs(request)
    body: dict = {"namespace": ns, "name": name, "environments": environments, "supported": supported}
    if not supported:
        body["hint"] = KUBECTL_HINT.format(namespace=ns, name=name)
    return _json(body)


def _keeps_logs(request: web.Request) -> bool:
    backend = request.app[keys.CONFIG].backend
    return backend == "local" or type(backend).__name__ == "LocalBackend"


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, page)
    app.router.add_get(OVERVIEW, get_overview)
    app.router.add_get(LOGS, get_logs)


def _object(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "required": required, "properties": properties}


_NULLABLE_STR = {"type": "string", "nullable": True}


def _documented_error(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/Error"}
    return {
        "description": description,
        "headers": {"x-amzn-ErrorType": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": schema}},
    }


#: This module's part of the OpenAPI document (``openapi`` merges it).
OPENAPI_PATHS: dict = {
    PAGE: {
        "get": {
            "operationId": "WebView",
            "summary": "The live web view of pools and limits (static HTML; its data needs a token)",
            "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
    OVERVIEW: {
        "get": {
            "operationId": "NamespaceOverview",
            "summary": "Quota, and per function: environments by state with ages, throttles per Reason,"
            " cold starts, p50/p99 of the last minutes",
            "parameters": [p.openapi() for p in GET_OVERVIEW],
            "responses": {
                "200": {
                    "description": "the namespace's overview (quota null: no function there)",
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {
                                    "namespace": {"type": "string"},
                                    "quota": {"type": "object", "nullable": True},
                                    "functions": {
                                        "type": "array",
                                        "items": _object(
                                            {
                                                "name": {"type": "string"},
                                                "counts": {"type": "object"},
                                                "environments": {"type": "array", "items": {"type": "object"}},
                                                "throttles": {"type": "object"},
                                                "recent": {"type": "object"},
                                            },
                                            ["name", "counts", "environments", "throttles", "recent"],
                                        ),
                                    },
                                },
                                ["namespace", "quota", "functions"],
                            )
                        }
                    },
                },
                "400": _documented_error("InvalidParameterValueException: not a namespace name"),
            },
        }
    },
    LOGS: {
        "get": {
            "operationId": "FunctionLogs",
            "summary": "The end of each live environment's output (local backend; on Kubernetes: a kubectl hint)",
            "parameters": [p.openapi() for p in GET_LOGS],
            "responses": {
                "200": {
                    "description": "per environment: id, state, version and its log (null where not kept)",
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {
                                    "namespace": {"type": "string"},
                                    "name": {"type": "string"},
                                    "supported": {"type": "boolean"},
                                    "hint": {"type": "string"},
                                    "environments": {
                                        "type": "array",
                                        "items": _object(
                                            {
                                                "id": {"type": "string"},
                                                "state": {"type": "string"},
                                                "version": {"type": "string"},
                                                "log": _NULLABLE_STR,
                                            },
                                            ["id", "state", "version", "log"],
                                        ),
                                    },
                                },
                                ["namespace", "name", "environments", "supported"],
                            )
                        }
                    },
                },
                "400": _documented_error(
                    "InvalidParameterValueException: a parameter is missing, repeated or out of range"
                ),
                "404": _documented_error("ResourceNotFoundException"),
            },
        }
    },
}
