"""The router's writes to the API server (and its few reads outside the caches), on aiohttp.

Why not the official synchronous client: every call of it had to run in a thread, and
the default executor has ``cores + 4`` of them, so a burst of cold starts queued its pod
creates behind each other and behind every other blocking call of the process. These
requests run on the router's event loop like the informers' watches, with the same
credentials and TLS (``informer.ApiSession``), and a cancelled start cancels its request.

What is written once here: the resource paths, the content type of each kind of patch,
the per-request timeout, and ``ApiError`` (the status and reason a caller branches on,
as the synchronous client's ``ApiException`` carried them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from lambdakube.formats import rfc3339
from lambdakube.kubeclient import authorization
from lambdakube.models import GROUP, VERSION

log = logging.getLogger(__name__)

#: ``source.component`` and ``reportingComponent`` of every Event the router posts.
EVENT_COMPONENT = "lambdakube-router"
#: The API server rejects longer Event messages.
MAX_EVENT_MESSAGE = 1024


def event_body(
    involved: Mapping[str, str], type_: str, reason: str, message: str, instance: str, wall_now: float
) -> dict:
    """A core/v1 Event about ``involved`` (its object reference), written once for every
    Event of the router: Functions' ColdStart/Throttled, the async store's quarantine."""
    if len(message) > MAX_EVENT_MESSAGE:
        message = message[: MAX_EVENT_MESSAGE - 3] + "..."
    ts = rfc3339(wall_now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": dict(involved),
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }


#: Seconds one request may take, connection included (a write is small; a stalled
#: apiserver must not hold a cold start past the pool's own deadline).
REQUEST_TIMEOUT = 10.0

#: JSON merge patch (RFC 7386): what custom resources and status writes take.
MERGE = "application/merge-patch+json"
#: Strategic merge patch: core objects (pods), lists such as ownerReferences merged by key.
STRATEGIC = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """The API server answered ``status`` (404 gone, 409 conflict, ...)."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"{status} {reason}: {body[:300]}")
        self.status = status
        self.reason = reason
        self.body = body


def pods(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/pods"
    return f"{base}/{quote(name)}" if name else base


def functions(namespace: str, name: str, subresource: str | None = None) -> str:
    path = lambdakube_object("Function", namespace, name)
    return f"{path}/{subresource}" if subresource else path


#: The plural of each lambdakube kind the router writes.
PLURALS = {
    "Function": "functions",
    "FunctionVersion": "functionversions",
    "FunctionAlias": "functionaliases",
    "EventSourceMapping": "eventsourcemappings",
}


def lambdakube_object(kind: str, namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURALS[kind]}/{quote(name)}"


def events(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/events"


class KubeApi:
    """JSON requests to the API server of ``configuration`` over ``http``'s session
    (an ``ApiSession``: its owner closes it)."""

    def __init__(
        self,
        http: Callable[[], aiohttp.ClientSession],
        configuration,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._http = http
        self.cfg = configuration
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, Any] | None = None,
    ) -> dict:
        """The answer's JSON object; ``ApiError`` for any status but 2xx. Network errors
        and the timeout raise as aiohttp does (``aiohttp.ClientError``, ``TimeoutError``)."""
        url = f"{self.cfg.host}{path}"
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": "application/json"}
        auth = authorization(self.cfg)
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._http().request(method, url, data=data, headers=headers, timeout=self.timeout) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise ApiError(resp.status, resp.reason or "", text)
        return json.loads(text) if text else {}

    async def get(self, path: str) -> dict:
        return await self.request("GET", path)

    async def create(self, path: str, body: Mapping) -> dict:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Mapping, *, content_type: str = MERGE) -> dict:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, *, grace_period_seconds: int | None = None) -> dict:
        params = {} if grace_period_seconds is None else {"gracePeriodSeconds": grace_period_seconds}
        return await self.request("DELETE", path, params=params)
