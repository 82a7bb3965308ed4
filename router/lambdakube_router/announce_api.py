"""``POST /internal/v1/environments/listening``: a fresh pod's runtime says it listens.

The body is ``{"envId", "address", "token"}`` (``lambdakube_runtime.announce``). The
backend decides (``KubernetesBackend.announced``: a pod it is starting, that pod's
token, a connection from the announced IP); this handler only parses and answers:
204 accepted, 403 refused (the same answer whatever the reason, so it tells a prober
nothing), 400 for a body that is not the announce, 404 on a backend without announces.
The endpoint is on the router's only port; the token, not the network, is what
authenticates it (see issue 14 for the router's authentication in general).
"""

from __future__ import annotations

import json

from aiohttp import web

from lambdakube_router import keys

PATH = "/internal/v1/environments/listening"
#: An announce is three short strings.
MAX_BODY = 4096


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


async def listening(request: web.Request) -> web.Response:
    backend = request.app[keys.ENGINE].backend
    if backend.announces is None:
        return _error(404, "ResourceNotFoundException", "this router's backend takes no announces")
    if (request.content_length or 0) > MAX_BODY:
        return _error(413, "RequestTooLargeException", "an announce is at most 4 KiB")
    try:
        body = json.loads(await request.content.read(MAX_BODY + 1))
    except ValueError:
        body = None
    fields = ("envId", "address", "token")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k] for k in fields):
        return _error(
            400,
            "InvalidRequestContentException",
            "the body must be a JSON object with string fields envId, address and token",
        )
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if backend.announced(body["envId"], body["address"], body["token"], peer[0] if peer else None):
        return web.Response(status=204)
    return _error(403, "AccessDeniedException", "announce refused")


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, listening)
