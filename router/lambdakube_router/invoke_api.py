"""The Lambda Invoke API: ``POST /2015-03-31/functions/{FunctionName}/invocations``.

Naming scheme (namespaces are lambdakube's "accounts"; ``names`` has the grammar):

- ``FunctionName`` is a plain ``name`` or ``name:qualifier``, Lambda's full ARN
  ``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` or partial ARN
  ``<account>:function:<name>[:<qualifier>]``, or lambdakube's
  ``lambdakube:<namespace>:function:<name>[:<qualifier>]``; anything else is 400
  ``ValidationException``, Lambda's answer;
- with a plain name the namespace comes from the ``X-Lambdakube-Namespace`` header, else
  from the caller when it is a ServiceAccount (its own namespace, as a plain name in
  Lambda is in the caller's account; a handler's own calls find their neighbours), and
  otherwise from the router's ``--namespace`` (default ``default``). An ARN's namespace
  (lambdakube's, or the one its account is mapped to by ``--account-namespace``) wins
  over the header; an account mapped to none is ``ResourceNotFoundException``.
- ``Qualifier`` (query, else the name's suffix): absent or ``$LATEST``, a published
  version's number, or an alias (``qualifiers.resolve``; an alias picks its version per
  invocation); one that names nothing is ``ResourceNotFoundException``. ``Event``
  invocations keep the qualifier with the event; each attempt resolves it anew.

``X-Amz-Invocation-Type``: ``RequestResponse`` (default) runs the function and answers
with its result; ``Event`` stores the event durably and answers 202; ``DryRun`` only
checks that the function exists (204). Content types are accepted leniently, as Lambda
does (``curl -d`` sends ``application/x-www-form-urlencoded``); only ``multipart/*``,
which cannot be a JSON event, is refused with 415.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from lambdakube_router.asyncq.store import RETRY_AFTER_SECONDS as STORE_RETRY_AFTER_SECONDS
from lambdakube_router.asyncq.store import NewEvent, StoreUnavailable
from lambdakube_router.invocations import error_result, not_found_result
from lambdakube_router import keys, request_body
from lambdakube_router.names import LATEST, BadFunctionName, UnknownAccount, invoked_function_arn, parse_function_name
from lambdakube_router.qualifiers import resolve

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024
MAX_CLIENT_CONTEXT = 3583
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


#: (status, headers, body): an answer, for either server to write (aiohttp's routes or
#: the router's front, ``fast_invoke``).
Reply = tuple[int, dict[str, str], bytes]


def reply(result) -> Reply:
    """An ``InvokeResult`` as the answer's status, headers (its Content-Type among them)
    and body."""
    headers = result.headers
    headers["Content-Type"] = result.content_type
    return result.status, headers, result.body


def result_response(result) -> web.Response:
    status, headers, body = reply(result)
    return web.Response(status=status, body=body, headers=headers)


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Lambda's error answer (``invocations.error_result``'s body and type header)."""
    return result_response(error_result(status, error_type, message, headers=headers))


def plain_namespace(request: web.Request) -> str:
    """The namespace of a plain function name (and of the routes that name none): the
    ``X-Lambdakube-Namespace`` header, else a ServiceAccount caller's own, else the
    router's ``--namespace``."""
    return request.headers.get("X-Lambdakube-Namespace") or request.get(
        keys.DEFAULT_NAMESPACE, request.app[keys.CONFIG].namespace
    )


@dataclass(slots=True)
class InvokeRequest:
    """What an Invoke needs of its HTTP request, read by whichever server parsed it:
    aiohttp's route (``invoke``) or the router's own front (``fast_invoke``). Why a
    plain record: the rules below are written once, for both."""

    #: The path's ``{FunctionName}``, percent-decoded.
    function_name: str
    #: The ``Qualifier`` query parameter (None or empty: none).
    qualifier: str | None
    #: A plain name's namespace (``plain_namespace``).
    namespace: str
    invocation_type: str
    #: The body's media type, lower-cased, without parameters.
    content_type: str
    client_context: str | None
    log_type: str | None


def _error_reply(status: int, error_type: str, message: str, request_id: str) -> Reply:
    return reply(error_result(status, error_type, message, headers={"X-Amz-Request-Id": request_id}))


async def invoke(request: web.Request) -> web.Response:
    """The Invoke route on aiohttp (the front hands it what it does not serve itself)."""
    headers = request.headers
    call = InvokeRequest(
        function_name=request.match_info["FunctionName"],
        qualifier=request.query.get("Qualifier"),
        namespace=plain_namespace(request),
        invocation_type=headers.get("X-Amz-Invocation-Type", "RequestResponse"),
        content_type=request.content_type,
        client_context=headers.get("X-Amz-Client-Context"),
        log_type=headers.get("X-Amz-Log-Type"),
    )
    status, reply_headers, body = await answer(request.app, call, lambda limit: request_body.read(request, limit))
    return web.Response(status=status, body=body or None, headers=reply_headers)


async def answer(app: web.Application, call: InvokeRequest, read_body: Callable[[int], Awaitable[bytes]]) -> Reply:
    """Run one Invoke. ``read_body(limit)``: the whole body, or ``request_body.TooLarge``;
    it is called only once the function is known to exist."""
    engine = app[keys.ENGINE]
    arrival = engine.settings.clock()  # the engine's clock: queue waits are measured on it
    config = app[keys.CONFIG]
    request_id = str(uuid.uuid4())
    try:
        namespace, name, arn_qualifier = parse_function_name(call.function_name, None, call.namespace, config.accounts)
    except BadFunctionName as exc:
        return _error_reply(400, exc.error_type, str(exc), request_id)
    except UnknownAccount as exc:
        return _error_reply(404, exc.error_type, str(exc), request_id)
    written = call.qualifier or arn_qualifier or None  # as the caller wrote it: its ARN
    qualifier = None if written == LATEST else written
    itype = call.invocation_type
    if itype not in INVOCATION_TYPES:
        return _error_reply(
            400,
            "InvalidParameterValueException",
            f"X-Amz-Invocation-Type must be one of {', '.join(INVOCATION_TYPES)}, got {itype!r}",
            request_id,
        )
    ctype = call.content_type
    if ctype.startswith("multipart/"):
        return _error_reply(
            415,
            "UnsupportedMediaTypeException",
            f"unsupported content type {ctype!r}: send the JSON event as the request body (application/json)",
            request_id,
        )
    state = engine.get(namespace, name)
    missing = None
    if state is not None and qualifier is not None:
        aliases = {alias: a.spec for alias, a in state.aliases.items()}
        missing = resolve(qualifier, set(state.versions), aliases, 0.0).missing
    if state is None or missing is not None:
        r = not_found_result(namespace, name, missing or qualifier)
        r.headers["X-Amz-Request-Id"] = request_id
        return reply(r)
    if itype == "DryRun":
        return 204, {"X-Amz-Request-Id": request_id}, b""

    limit = MAX_ASYNC_PAYLOAD if itype == "Event" else MAX_SYNC_PAYLOAD
    try:
        payload = await read_body(limit)
    except request_body.TooLarge as exc:
        return _too_large(exc.size, limit, itype, request_id)
    if not payload:
        payload = b"{}"  # Lambda treats an empty payload as {}
    else:
        try:
            json.loads(payload)
        except (ValueError, RecursionError) as exc:
            return _error_reply(
                400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}", request_id
            )

    client_context = call.client_context
    if client_context is not None:
        problem = _check_client_context(client_context)
        if problem:
            return _error_reply(400, "InvalidParameterValueException", problem, request_id)

    if itype == "Event":
        ev = NewEvent(request_id, namespace, name, payload, client_context, app[keys.SETTINGS].wall_clock(), qualifier)
        try:
            await app[keys.DISPATCHER].enqueue(ev)
        except StoreUnavailable as exc:
            # Lambda's answer when it cannot take an event: a retryable service error.
            r = error_result(
                503,
                "ServiceException",
                f"The event could not be stored, retry later: {exc}",
                headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS), "X-Amz-Request-Id": request_id},
            )
            return reply(r)
        return 202, {"X-Amz-Request-Id": request_id}, b""

    result = await engine.invoke(
        namespace,
        name,
        payload,
        arrival=arrival,
        request_id=request_id,
        client_context=client_context,
        log_tail=call.log_type == "Tail",
        invoked_arn=invoked_function_arn(call.function_name, namespace, name, written),
        qualifier=qualifier,
    )
    return reply(result)


def _too_large(size: int | None, limit: int, itype: str, request_id: str) -> Reply:
    kind = "asynchronous" if itype == "Event" else "synchronous"
    got = f"{size} bytes" if size is not None else "the request body"
    return _error_reply(
        413,
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for {kind} invocations; got {got}",
        request_id,
    )


def _check_client_context(value: str) -> str | None:
    if len(value) > MAX_CLIENT_CONTEXT:
        return f"X-Amz-Client-Context must be at most {MAX_CLIENT_CONTEXT} bytes of base64, got {len(value)}"
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return "X-Amz-Client-Context must be base64-encoded JSON"
    if not isinstance(decoded, dict):
        return "X-Amz-Client-Context must be a base64-encoded JSON object"
    return None
