"""What the router does with clients that are slow, gone, or too many.

Why this module: the router's HTTP server faces every caller, and aiohttp has no bound
of its own on a slow body, no connection cap, and logs a client that hangs up
mid-body as an ERROR with a traceback. Each fault here has one defined answer:

- **A body that does not arrive** within ``body_timeout`` seconds of the request's
  head gets 408 ``RequestTimeoutException`` and the connection is closed (the rest of
  the body may still be on its way). The head itself is bounded by the keep-alive
  timeout, which aiohttp arms from the moment a connection is made. The timer is only
  armed when a request's body is not already complete as its handler starts, so the
  usual small invoke costs nothing.
- **A client that hangs up** before its answer is logged at DEBUG and counted by
  ``stage``: ``body`` (while its body was being read) or ``response`` (while its
  request was served; a sync invoke still runs to its end, as in Lambda).
- **A connection over the cap** is answered at once with 503 ``ServiceException``
  and ``Retry-After`` (the SDKs retry it), without reading its request, and closed.
  Its write side is shut first and its input drained for a moment, so the client
  reads the answer instead of a reset. Connections under the cap are untouched.

Each case is counted in ``lambdakube_http_*`` metrics (see ``metrics.Metrics``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from lambdakube_router.invocations import error_body
from lambdakube_router.invoke_api import error_response
from lambdakube_router.metrics import Metrics

if TYPE_CHECKING:
    from lambdakube_router.fast_invoke import Front

log = logging.getLogger(__name__)

BODY_TIMEOUT_SECONDS = 60.0
MAX_CONNECTIONS = 4096
OVER_CAP_RETRY_AFTER_SECONDS = 1
OVER_CAP_DRAIN_SECONDS = 1.0


class BodyTimeout(TimeoutError):
    """Set on a request's body stream when it did not arrive in time. A TimeoutError:
    after the 408, aiohttp's lingering read of the unread body stops quietly on one
    (any other exception there is logged as an ERROR)."""


def body_guard(metrics: Metrics, body_timeout: float) -> Callable:
    """The middleware that bounds body reads and counts clients that hang up."""

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        content = request.content
        timer = None
        if not content.is_eof():
            timer = asyncio.get_running_loop().call_later(body_timeout, _expire, content, body_timeout)
        try:
            response = await handler(request)
        except BodyTimeout:
            metrics.http_closed.labels("body_timeout").inc()
            log.info("closed a connection from %s: its body took over %s s", request.remote, body_timeout)
            response = error_response(
                408, "RequestTimeoutException", f"the request body was not received within {body_timeout:g} s"
            )
            response.force_close()
            return response
        except ConnectionResetError:
            if request.transport is not None and not request.transport.is_closing():
                raise
            metrics.http_aborted.labels("body").inc()
            log.debug("client %s hung up while sending %s %s", request.remote, request.method, request.path)
            return web.Response(status=499)  # nobody reads it: the connection is gone
        finally:
            if timer is not None:
                timer.cancel()
        if request.transport is None or request.transport.is_closing():
            metrics.http_aborted.labels("response").inc()
            log.debug("client %s hung up before its answer to %s %s", request.remote, request.method, request.path)
        return response

    return guard


def _expire(content, seconds: float) -> None:
    if not content.is_eof():
        content.set_exception(BodyTimeout(f"body not received within {seconds} s"))


def _over_cap_answer() -> bytes:
    body = error_body("ServiceException", "The router has too many open connections; retry later or reuse a connection")
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        "x-amzn-ErrorType: ServiceException\r\n"
        f"Retry-After: {OVER_CAP_RETRY_AFTER_SECONDS}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


OVER_CAP_ANSWER = _over_cap_answer()


class _OverCap(asyncio.Protocol):
    """Answers 503 without reading the request; shuts its write side, drains, closes."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(OVER_CAP_ANSWER)
        if transport.can_write_eof():
            transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(OVER_CAP_DRAIN_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: its bytes are drained and dropped

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def connection_lost(self, exc) -> None:
        self.timer.cancel()


class ConnectionCap:
    """The protocol factory given to ``loop.create_server``: the router's front
    (``fast_invoke.Front``, which hands what it does not serve to aiohttp) for a
    connection under ``limit``, and an ``_OverCap`` answer above it.

    Open connections are read from where they are already tracked, aiohttp's server
    (``web.Server.connections``) and the front's own set, so nothing is counted twice."""

    def __init__(self, front: Front, limit: int, metrics: Metrics) -> None:
        self.front = front
        self.limit = limit
        self.metrics = metrics

    def open_connections(self) -> int:
        return len(self.front.server.connections) + len(self.front.connections)

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open_connections() >= self.limit:
            self.metrics.http_closed.labels("connection_cap").inc()
            log.debug("over the cap of %d connections: answered 503", self.limit)
            return _OverCap()
        return self.front()
