"""Lambda's reserved-concurrency writes: PutFunctionConcurrency and
DeleteFunctionConcurrency (``aws lambda put-function-concurrency``, boto3's
``put_function_concurrency``).

A write patches the Function (``spec.reservedConcurrency``) where it lives: on a
cluster a merge patch through the API server, which the chart's admission policy lets
the router's ServiceAccount make to that one field only; a manifest directory is the
user's files, so the local router refuses with a clear message naming them. The caller
needs the custom verb ``configure-concurrency`` on the function (a SubjectAccessReview,
``access.NEEDS``; the chart's lambdakube-admin has it), Lambda's
``lambda:PutFunctionConcurrency``: ``patch`` would be the right to change the code too.

As Lambda, a reservation that does not fit is refused *at the call*
(``lambda_shapes.reservation_problem``: 400 InvalidParameterValueException), and the
answer comes once the router's own view (the watch) has the new value, so a
GetFunctionConcurrency right after reads it back.

Provisioned concurrency writes are ``lambda_provisioned_api``'s: on a version or an
alias (Lambda never puts it on ``$LATEST``).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from lambdakube import provisioning

from lambdakube_router import keys, lambda_shapes
from lambdakube_router.invoke_api import error_response
from lambdakube_router.kube_api import ApiError
from lambdakube_router.lambda_read_api import Refused, function_at_latest
from lambdakube_router.snapshot import FUNCTION_KIND
from lambdakube_router.sources import ReadOnly

log = logging.getLogger(__name__)

CONCURRENCY = "/2017-10-31/functions/{FunctionName}/concurrency"
#: How long a write waits for the watch to bring its change back.
READ_BACK_SECONDS = 10.0


def api_refusal(exc: ApiError, what: str) -> web.Response:
    try:
        message = json.loads(exc.body).get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    if exc.status == 404:
        return error_response(404, "ResourceNotFoundException", f"Function not found: {what}")
    if exc.status in (400, 422):
        return error_response(400, "InvalidParameterValueException", message)
    log.warning("patching %s failed: %s %s", what, exc.status, message)
    return error_response(503, "ServiceException", f"the router could not change {what}: {exc.status} {message}")


async def _write(request: web.Request, reserved: int | None) -> web.Response | None:
    """Patch the Function and wait for the router's view; None when done."""
    try:
        namespace, name, spec = function_at_latest(request)
    except Refused as refused:
        return refused.response
    engine = request.app[keys.ENGINE]
    if reserved is not None:
        limits = engine.namespaces[namespace]
        others = sum(
            fl.spec.reserved_concurrency or 0
            for fn, fl in limits.functions.items()
            if fn != name and fn not in limits.plan.rejected
        )
        state = engine.get(namespace, name)
        provisioned = provisioning.total(state.provisioned()) if state is not None else spec.provisioned_concurrency
        problem = lambda_shapes.reservation_problem(limits.quota, others, reserved, provisioned)
        if problem:
            return error_response(400, "InvalidParameterValueException", problem)
    what = f"{namespace}/{name}"
    try:
        await request.app[keys.SOURCE].patch(
            FUNCTION_KIND, namespace, name, {"spec": {"reservedConcurrency": reserved}}
        )
    except ReadOnly as exc:
        return error_response(400, "InvalidParameterValueException", str(exc))
    except ApiError as exc:
        return api_refusal(exc, what)

    def applied() -> bool:
        state = engine.get(namespace, name)
        return state is None or state.spec.reserved_concurrency == reserved

    if not await engine.wait_applied(applied, READ_BACK_SECONDS):
        log.warning("%s: reservedConcurrency=%s written, not seen by the watch yet", what, reserved)
    return None


async def read_count(request: web.Request, member: str, minimum: int) -> int | web.Response:
    """The body's integer ``member`` of a concurrency write, else Lambda's 400."""
    try:
        return lambda_shapes.count_value(json.loads(await request.read() or b"null"), member, minimum)
    except (ValueError, lambda_shapes.InvalidParameter) as exc:
        detail = str(exc) if isinstance(exc, lambda_shapes.InvalidParameter) else f"the body is not JSON: {exc}"
        return error_response(400, "InvalidParameterValueException", detail)


async def put_concurrency(request: web.Request) -> web.Response:
    reserved = await read_count(request, "ReservedConcurrentExecutions", 0)
    if isinstance(reserved, web.Response):
        return reserved
    refused = await _write(request, reserved)
    if refused is not None:
        return refused
    return web.json_response({"ReservedConcurrentExecutions": reserved})


async def delete_concurrency(request: web.Request) -> web.Response:
    refused = await _write(request, None)
    return refused if refused is not None else web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_put(CONCURRENCY, put_concurrency)
    app.router.add_delete(CONCURRENCY, delete_concurrency)
