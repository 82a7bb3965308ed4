"""Function URLs (``spec.url``), the HTTP half: ``/lambdakube/url/<namespace>/<name>/...``.

Any method; the request becomes Lambda's payload format 2.0 event and the handler's
answer an HTTP response (``url_events`` has the rules). The invocation is the same as a
synchronous Invoke (``Engine.invoke``: limits, pools, metrics), only its answer differs,
as Lambda's function URL answers:

- a function error (``X-Amz-Function-Error``), or a result that is no response: 502
  ``Internal Server Error``;
- a throttle: 429 (the Invoke API's ``TooManyRequestsException`` body, ``Retry-After``);
- no such function, or one without ``spec.url``: 404; a body over 6 MB: 413; the
  router's own failures (an environment lost, a timeout): their Invoke API answers.

Who may call is the gate's (``access.url_requirement``): ``authType NONE`` is public,
``KUBERNETES`` needs ``invoke`` on the function. CORS (``spec.url.cors``): a preflight
is answered here without invoking the function, and the function's answers get the
CORS headers; without ``cors`` an OPTIONS request reaches the function like any other.
"""

from __future__ import annotations

import json
import uuid

from aiohttp import web

from lambdakube_router import access, keys, request_body, url_events
from lambdakube_router.invocations import FUNCTION_ERROR, SUCCESS, error_result, not_found_result
from lambdakube_router.invoke_api import MAX_SYNC_PAYLOAD, result_response

_PREFIX = "/lambdakube/url/"


def _plain(status: int, text: str, request_id: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers={"x-amzn-RequestId": request_id})


def _raw_path(request: web.Request, namespace: str, name: str) -> str:
    """The path below the function's root, as sent (``/`` at the root)."""
    raw = request.rel_url.raw_path
    head = f"{_PREFIX}{namespace}/{name}"
    rest = raw[len(head) :] if raw.startswith(head) else "/" + request.match_info.get("proxy", "")
    return rest if rest.startswith("/") else "/" + rest


def _caller(request: web.Request) -> dict | None:
    user = request.get(keys.CALLER)
    if user is None:
        return None
    return {"username": user.username, "uid": user.uid, "groups": list(user.groups)}


async def handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    engine = app[keys.ENGINE]
    arrival = engine.settings.clock()
    request_id = str(uuid.uuid4())
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    state = engine.get(namespace, name)
    if state is None or state.spec.url is None:
        r = not_found_result(namespace, name)
        r.headers["x-amzn-RequestId"] = request_id
        return result_response(r)
    url = state.spec.url
    lowered = {k.lower(): v for k, v in request.headers.items()}
    if url.cors is not None and url_events.is_preflight(request.method, lowered):
        answer = url_events.preflight(url.cors, lowered)
        return _response(answer, request_id)
    try:
        body = await request_body.read(request, MAX_SYNC_PAYLOAD)
    except request_body.TooLarge:
        return _too_large(request_id)
    peer = request.remote or ""
    event = url_events.request_event(
        url_events.UrlRequest(
            method=request.method,
            raw_path=_raw_path(request, namespace, name),
            raw_query=request.rel_url.raw_query_string,
            headers=tuple(request.headers.items()),
            body=body,
            source_ip=peer,
            protocol=f"HTTP/{request.version.major}.{request.version.minor}",
            request_id=request_id,
            now=app[keys.SETTINGS].wall_clock(),
            namespace=namespace,
            name=name,
            caller=_caller(request) if url.auth_type == "KUBERNETES" else None,
        )
    )
    payload = json.dumps(event, separators=(",", ":")).encode()
    if len(payload) > MAX_SYNC_PAYLOAD:
        return _too_large(request_id)
    result = await engine.invoke(
        namespace,
        name,
        payload,
        arrival=arrival,
        request_id=request_id,
        client_context=None,
        log_tail=False,
    )
    cors = url_events.cors_headers(url.cors, lowered.get("origin")) if url.cors is not None else []
    if result.result == FUNCTION_ERROR or "X-Amz-Function-Error" in result.headers:
        return _plain(502, "Internal Server Error", request_id)
    if result.result != SUCCESS:
        result.headers["x-amzn-RequestId"] = request_id
        response = result_response(result)
        for header, value in cors:
            response.headers.add(header, value)
        return response
    try:
        answer = url_events.response_parts(result.body)
    except url_events.BadResponse:
        return _plain(502, "Internal Server Error", request_id)
    answer.headers.extend(cors)
    return _response(answer, request_id)


def _response(answer: url_events.UrlResponse, request_id: str) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body)
    response.headers.popall("Content-Type", None)
    for header, value in answer.headers:
        response.headers.add(header, value)
    response.headers["x-amzn-RequestId"] = request_id
    return response


def _too_large(request_id: str) -> web.Response:
    r = error_result(
        413, "RequestTooLargeException", f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for a function URL"
    )
    r.headers["x-amzn-RequestId"] = request_id
    return result_response(r)


def add_routes(app: web.Application) -> None:
    for method in access.URL_METHODS:
        for route in (access.URL_ROUTE, access.URL_PROXY_ROUTE.replace("{proxy}", "{proxy:.*}")):
            if method == "GET":
                app.router.add_get(route, handle)  # and HEAD
            else:
                app.router.add_route(method, route, handle)
