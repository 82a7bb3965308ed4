"""A minimal HTTP/1.1 client for the benchmarks: one keep-alive connection that POSTs
and reads a Content-Length answer.

Why not aiohttp's client: on a small machine the load generator shares the cores with
the router and the runtimes, and this costs a fraction of the CPU per request. It also
records when the first byte of each answer came (how long a request sat unread).
"""

from __future__ import annotations

import asyncio
import time


class Answer:
    __slots__ = ("status", "sent", "first_byte", "done", "body")

    def __init__(self, status: int, sent: float, first_byte: float, done: float, body: bytes) -> None:
        self.status, self.sent, self.first_byte, self.done, self.body = status, sent, first_byte, done, body


class RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: POST, read a Content-Length answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.first_byte = 0.0
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        if not self.buf:
            self.first_byte = time.monotonic()
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        if len(self.buf) >= end + 4 + length and self.waiter is not None:
            status = int(head.split(" ", 2)[1])
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = b""
            self.waiter.set_result((status, body))

    async def post(self, request: bytes) -> Answer:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.buf = b""
        sent = time.monotonic()
        self.transport.write(request)
        status, body = await self.waiter
        return Answer(status, sent, self.first_byte, time.monotonic(), body)
