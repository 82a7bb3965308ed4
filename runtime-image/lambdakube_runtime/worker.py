"""The single dedicated thread that runs Init and every invocation.

Why one thread, and why not the event loop: handlers are ordinary blocking Python, so
running them on the server's loop would stall ``/healthz`` and the "busy" answer to a
second request; and running Init and invocations on the *same* thread means thread-local
state created at import time (and the thread's own event loop for ``async def``
handlers) is still there when the handler runs.

Why not ``ThreadPoolExecutor(max_workers=1)``: its threads are joined at interpreter
exit, so a handler stuck in an infinite loop (the timeout case) would keep the process
alive forever. This thread is a daemon; after a timeout the server reports it and exits
the process, the only way to stop a Python thread.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class Worker:
    def __init__(self, name: str = "lambdakube-worker"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., Any], args: tuple, on_done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``fn(*args)`` on the worker thread, then ``on_done(result, exc)`` on the
        calling event loop.

        This is the invoke hot path, so it crosses threads exactly twice: one
        ``SimpleQueue.put`` to wake the worker and one ``call_soon_threadsafe`` to wake
        the loop, with no ``concurrent.futures`` or future chaining in between.
        """
        self._jobs.put((asyncio.get_running_loop(), fn, args, on_done))

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` on the worker thread; the returned future resolves on the
        calling event loop."""
        future = asyncio.get_running_loop().create_future()
        self.call(fn, args, lambda result, exc: _settle(future, result, exc))
        return future

    def _run(self) -> None:
        while True:
            loop, fn, args, on_done = self._jobs.get()
            try:
                result, exc = fn(*args), None
            except BaseException as error:  # fn should not raise; never let the thread die
                result, exc = None, error
            try:
                loop.call_soon_threadsafe(on_done, result, exc)
            except RuntimeError:  # loop closed: the process is shutting down
                pass
            del loop, fn, args, on_done, result, exc  # don't keep the last job alive while idle


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
