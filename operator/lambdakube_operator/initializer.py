"""Sends provisioned pods their code: one ``POST /init`` per pod (the driver of
``Plan.initialize``).

Why the operator and not the router: a provisioned environment is initialised before any
request arrives (Lambda's provisioned concurrency), whether or not a router runs, and
the pod turns Ready (its probe is ``/readyz``) only once Init has succeeded, which is
what the Function's Ready condition counts. An Init error is written to the pod as
``lambdakube.dev/init-error``; the next pass reports it as InitFailed.

A pass may list a pod again while its Init runs (the kubelet's probe has not flipped
yet): each pod gets one task, and a pod that answered stays done until it disappears.
The runtime is listening soon after its container starts, but not at the instant the
kubelet reports Running: refused connections are retried for a while (``patience``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from lambdakube.backoff import Backoff
from lambdakube.models import LATEST, FunctionSpec
from lambdakube.resources import env_token, init_body, labels
from lambdakube.resources.code import init_error_message, runtime_answer

log = logging.getLogger(__name__)

#: Init itself is bounded by the runtime (the function's Init runs on its worker); this
#: only bounds connecting.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=2)

Annotate = Callable[[str, str, Mapping], Awaitable[bool]]


class Initializer:
    def __init__(
        self, annotate: Annotate, *, patience: float = 30.0, retry_delay: float = 0.05, max_retry_delay: float = 0.5
    ) -> None:
        #: ``kube_api.Cruds.patch_pod``: where an Init error is written.
        self.annotate = annotate
        self.patience = patience
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        #: Pods that answered their ``/init`` (any answer), per (namespace, function).
        self._done: dict[tuple[str, str], set[str]] = {}
        self._session: aiohttp.ClientSession | None = None

    def sync(
        self,
        namespace: str,
        function: str,
        spec: FunctionSpec,
        pods: list[tuple[str, str, str]],
        present: set[str],
        version: str = LATEST,
    ) -> None:
        """Start ``/init`` for each of ``pods`` (name, address, env token) not sent yet;
        forget the pods of this function that are no longer ``present``. ``spec`` is
        what ``version`` runs (the runtime's ``context.function_version``)."""
        done = self._done.setdefault((namespace, function), set())
        done &= present
        for name, address, token in pods:
            key = (namespace, name)
            if name in done or (key in self._tasks and not self._tasks[key].done()):
                continue
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._init(namespace, function, spec, version, name, address, token, done),
                name=f"init-{namespace}-{name}",
            )

    async def _init(
        self,
        namespace: str,
        function: str,
        spec: FunctionSpec,
        version: str,
        name: str,
        address: str,
        token: str,
        done: set[str],
    ) -> None:
        who = f"{namespace}/{function}" + ("" if version == LATEST else f":{version}")
        body = init_body(function, namespace, spec, version)
        deadline = time.monotonic() + self.patience
        backoff = Backoff(self.retry_delay, self.max_retry_delay)
        delay = backoff.next(0)
        try:
            while True:
                try:
                    async with self._http().post(
                        f"http://{address}/init", json=body, headers={env_token.HEADER: token}, timeout=_TIMEOUT
                    ) as resp:
                        status, raw = resp.status, await resp.read()
                    break
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                    if time.monotonic() + delay > deadline:
                        log.warning("%s: pod %s did not take its code within %.0f s: %s", who, name, self.patience, exc)
                        return  # not done: a later pass tries again
                    await asyncio.sleep(delay)
                    delay = backoff.next(delay)
            done.add(name)
            answer = runtime_answer(raw)
            if status == 200:
                log.info("%s: pod %s initialised in %s ms", who, name, answer.get("initDurationMs"))
            elif status == 409:
                log.debug("%s: pod %s was already initialised", who, name)
            elif status == 500 and "error" in answer:
                message = init_error_message(who, answer)
                log.warning("%s: pod %s: %s", who, name, message.splitlines()[0])
                await self.annotate(namespace, name, {"metadata": {"annotations": {labels.INIT_ERROR: message[:4000]}}})
            else:  # 400: the /init contract is broken between builder and runtime
                log.error("%s: pod %s refused /init with %d: %s", who, name, status, raw[:500].decode(errors="replace"))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a later pass tries again
            log.exception("%s: sending pod %s its code failed", who, name)
        finally:
            self._tasks.pop((namespace, name), None)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
