"""Function URLs, the pure half: an HTTP request as Lambda's payload format 2.0 event, and
a handler's answer back as an HTTP response, by Lambda's documented rules.

Plain data in, plain data out (no aiohttp): ``url_api`` reads the request and writes the
response, and the tests check every rule here as tables.

The event (``request_event``): ``version "2.0"``, ``routeKey "$default"``, ``rawPath``
(the path below ``/lambdakube/url/<namespace>/<name>``, ``/`` at the root),
``rawQueryString`` as sent, ``cookies`` (the ``Cookie`` header split on ``;``, and no
``cookie`` in ``headers``), ``headers`` with lowercased names and repeated headers
comma-joined, ``queryStringParameters`` (repeated keys comma-joined; absent without a
query), ``requestContext`` and, when there is one, ``body``: text as is, anything else
base64 with ``isBase64Encoded: true``.

The answer (``response_parts``): an object with ``statusCode`` is Lambda's response
format (``headers``, ``body``, ``isBase64Encoded``, ``cookies`` as ``Set-Cookie``);
anything else is *inferred* as Lambda infers it: status 200, ``content-type:
application/json``, and as the body a returned string itself, any other value its JSON.
A response that cannot be read that way is Lambda's 502.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from lambdakube.models import UrlCors

ROUTE_KEY = "$default"
#: Content types whose bodies reach the handler as text (others: base64).
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/yaml",
    "application/graphql",
)


@dataclass(frozen=True)
class UrlRequest:
    """What the event is built from, as the HTTP server saw it."""

    method: str
    raw_path: str
    raw_query: str
    #: Header (name, value) pairs in their order, repeats kept.
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    protocol: str
    request_id: str
    #: Unix seconds.
    now: float
    namespace: str
    name: str
    #: The caller, when the URL needs one (authType KUBERNETES): the ``authorizer``.
    caller: dict | None = None


@dataclass
class UrlResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def request_event(req: UrlRequest) -> dict:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in req.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    host = headers.get("host", "")
    domain = host.rsplit(":", 1)[0] if host and not host.endswith("]") else host
    now = datetime.fromtimestamp(req.now, UTC)
    event: dict = {
        "version": "2.0",
        "routeKey": ROUTE_KEY,
        "rawPath": req.raw_path or "/",
        "rawQueryString": req.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if req.raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(req.raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    context: dict = {
        "accountId": "anonymous" if req.caller is None else req.namespace,
        "apiId": f"{req.name}.{req.namespace}",
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": req.method,
            "path": req.raw_path or "/",
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": req.request_id,
        "routeKey": ROUTE_KEY,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(req.now * 1000),
    }
    if req.caller is not None:
        context["authorizer"] = {"kubernetes": req.caller}
    event["requestContext"] = context
    if req.body:
        if is_text(headers.get("content-type")):
            try:
                event["body"] = req.body.decode()
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:  # declared text, is not: as Lambda, base64
                event["body"] = base64.b64encode(req.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(req.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


class BadResponse(ValueError):
    """The handler's answer is not a response Lambda could send: 502."""


def _inferred(value: object) -> UrlResponse:
    body = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return UrlResponse(200, [("Content-Type", "application/json")], body.encode())


def response_parts(result: bytes) -> UrlResponse:
    """The HTTP response of a handler's (successful) result, the JSON it returned."""
    try:
        value = json.loads(result) if result else None
    except ValueError:
        raise BadResponse("the function's result is not JSON") from None
    if not isinstance(value, dict) or "statusCode" not in value:
        return _inferred(value)
    status = value["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadResponse(f"statusCode must be an HTTP status (100-599), got {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = value.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadResponse("headers must be an object of strings")
    for name, header in raw_headers.items():
        if isinstance(header, (dict, list)) or header is None:
            raise BadResponse(f"header {name!r} must be a string")
        headers.append((str(name), header if isinstance(header, str) else json.dumps(header)))
    cookies = value.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise BadResponse("cookies must be a list of strings")
    headers.extend(("Set-Cookie", c) for c in cookies)
    body = value.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise BadResponse("body must be a string")
    elif value.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadResponse("isBase64Encoded is true but body is not base64") from None
    else:
        data = body.encode()
    if not any(n.lower() == "content-type" for n, _ in headers) and data:
        headers.append(("Content-Type", "application/json"))
    return UrlResponse(status, headers, data)


# -- CORS (the router answers preflights; Lambda's function URL Cors) -----------------------


def origin_allowed(cors: UrlCors, origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` to send (None: none)."""
    if not origin:
        return None
    if origin in cors.allow_origins:
        return origin
    if "*" in cors.allow_origins:
        return origin if cors.allow_credentials else "*"
    return None


def cors_headers(cors: UrlCors, origin: str | None) -> list[tuple[str, str]]:
    """Added to the function's answers."""
    allowed = origin_allowed(cors, origin)
    if allowed is None:
        return []
    out = [("Access-Control-Allow-Origin", allowed)]
    if allowed != "*":
        out.append(("Vary", "Origin"))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return out


def is_preflight(method: str, headers: dict[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def preflight(cors: UrlCors, headers: dict[str, str]) -> UrlResponse:
    """An OPTIONS preflight, answered without invoking the function. ``headers``:
    lowercased names."""
    allowed = origin_allowed(cors, headers.get("origin"))
    if allowed is None:
        return UrlResponse(200)  # no CORS headers: the browser refuses the call
    out = [("Access-Control-Allow-Origin", allowed)]
    if allowed != "*":
        out.append(("Vary", "Origin"))
    wanted = headers.get("access-control-request-method", "").upper()
    methods = [m.upper() for m in cors.allow_methods]
    if "*" in methods or wanted in methods:
        out.append(("Access-Control-Allow-Methods", "*" if "*" in methods else ",".join(methods)))
    if cors.allow_headers:
        out.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.max_age is not None:
        out.append(("Access-Control-Max-Age", str(cors.max_age)))
    return UrlResponse(200, out)
