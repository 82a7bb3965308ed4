"""A request body read with a limit: the one bounded read of every route that takes one.

Why here: the Invoke API, function URLs and SendMessage each refuse a body over their
own limit with their own error shape, but how a body is found too large is the same
three steps, and a copy that forgets one either reads an oversize body into memory
(no Content-Length check) or lets a chunked one through (no length check after).
"""

from __future__ import annotations

from aiohttp import web


class TooLarge(Exception):
    """The body is over the limit: ``size`` in bytes when known (from Content-Length or
    the read), None when aiohttp stopped reading at its own ``client_max_size``."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


async def read(request: web.Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, else TooLarge: refused by its
    Content-Length before anything is read, or by its length once read (chunked)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(request.content_length)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(None) from None
    if len(body) > limit:
        raise TooLarge(len(body))
    return body
