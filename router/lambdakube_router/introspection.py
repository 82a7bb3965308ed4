"""Health, metrics, the OpenAPI document, and a small read-only API over the router's state.

``GET /lambdakube/v1/namespaces/{ns}/functions/{name}`` shows a function's pool (every
environment and its state, cold starts, spill-over) and its concurrency accounting;
``.../queues/{queue}/messages`` reads a durable destination queue (async onSuccess /
onFailure / deadLetter records). These are what a human, a test or the operator's status
writer needs, without reaching into the router's memory.
"""

from __future__ import annotations

import json

from aiohttp import web

from lambdakube_router import keys, params
from lambdakube_router.asyncq.store import RETRY_AFTER_SECONDS as STORE_RETRY_AFTER_SECONDS
from lambdakube_router.asyncq.store import StoreUnavailable
from lambdakube_router.openapi import OPENAPI


def _json(obj, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(obj, separators=(",", ":"), default=str), content_type="application/json"
    )


def _body(error_type: str, message: str) -> str:
    """Lambda's error shape (the type is in ``x-amzn-ErrorType`` too)."""
    return json.dumps({"errorType": error_type, "errorMessage": message, "message": message})


def _not_found(message: str) -> web.Response:
    return web.Response(
        status=404,
        text=_body("ResourceNotFoundException", message),
        content_type="application/json",
        headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
    )


def _params(request: web.Request, declared: tuple[params.Param, ...]) -> dict:
    """The route's declared parameters, checked (``params.parse``); a refusal is a 400."""
    try:
        return params.parse(declared, request.match_info, request.query.items())
    except params.InvalidParameter as exc:
        raise web.HTTPBadRequest(
            text=_body("InvalidParameterValueException", str(exc)),
            content_type="application/json",
            headers={"x-amzn-ErrorType": "InvalidParameterValueException"},
        ) from None


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves. Always 200, the async store's state included as
    information only: a restart mends neither a full disk nor a corrupt file, and sync
    invokes keep working through both."""
    engine = request.app[keys.ENGINE]
    store = request.app[keys.STORE].health
    return _json({"status": "ok", "functions": len(engine.functions), "asyncStore": store.as_json()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 while the async store cannot take events (unavailable, or its last
    write failed), 200 again once a write succeeds."""
    store = request.app[keys.STORE].health
    ready = store.ready
    return _json({"status": "ok" if ready else "unavailable", "asyncStore": store.as_json()}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return _json(OPENAPI)


async def list_functions(request: web.Request) -> web.Response:
    ns = _params(request, params.LIST_FUNCTIONS)["namespace"]
    engine = request.app[keys.ENGINE]
    items = [engine.describe(n, name) for (n, name) in sorted(engine.functions) if n == ns]
    return _json({"namespace": ns, "functions": items})


async def get_function(request: web.Request) -> web.Response:
    p = _params(request, params.GET_FUNCTION)
    ns, name = p["namespace"], p["name"]
    info = request.app[keys.ENGINE].describe(ns, name)
    if info is None:
        return _not_found(f"Function not found: {ns}/{name}")
    return _json(info)


def _store_unavailable(handler):
    """The store's routes answer 503 ServiceException (with Retry-After) while it is
    unavailable, as an async invoke does, instead of a 500."""

    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except StoreUnavailable as exc:
            message = f"the async store is unavailable, retry later: {exc}"
            return web.Response(
                status=503,
                text=json.dumps({"errorType": "ServiceException", "errorMessage": message, "message": message}),
                content_type="application/json",
                headers={"x-amzn-ErrorType": "ServiceException", "Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
            )

    return guarded


@_store_unavailable
async def queue_messages(request: web.Request) -> web.Response:
    p = _params(request, params.LIST_QUEUE_MESSAGES)
    ns, queue = p["namespace"], p["queue"]
    rows = await request.app[keys.STORE].messages(ns, queue, after=p["after"], limit=p["limit"])
    messages = []
    for row in rows:
        raw = row.pop("body")
        try:
            row["body"] = json.loads(raw)
        except ValueError:
            row["body"] = raw.decode(errors="replace")
        messages.append(row)
    return _json({"namespace": ns, "queue": queue, "messages": messages})


@_store_unavailable
async def delete_queue_messages(request: web.Request) -> web.Response:
    p = _params(request, params.DELETE_QUEUE_MESSAGES)
    n = await request.app[keys.STORE].delete_messages(p["namespace"], p["queue"], p["upTo"])
    return _json({"deleted": n})


@_store_unavailable
async def async_events(request: web.Request) -> web.Response:
    ns = _params(request, params.LIST_ASYNC_EVENTS)["namespace"]
    return _json({"namespace": ns, "events": await request.app[keys.STORE].pending(ns)})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    base = "/lambdakube/v1/namespaces/{namespace}"
    r.add_get(base + "/functions", list_functions)
    r.add_get(base + "/functions/{name}", get_function)
    r.add_get(base + "/queues/{queue}/messages", queue_messages)
    r.add_delete(base + "/queues/{queue}/messages", delete_queue_messages)
    r.add_get(base + "/async-events", async_events)
