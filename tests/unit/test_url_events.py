"""Function URLs' rules (``url_events``, ``access.url_requirement``): tables, no HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from lambdakube.models import UrlCors
from lambdakube_router.access import (
    URL_PROXY_ROUTE,
    URL_PUBLIC,
    Attributes,
    FunctionUrl,
    Need,
    Public,
    requirement,
    url_requirement,
)
from lambdakube_router.url_events import (
    BadResponse,
    UrlRequest,
    UrlResponse,
    cors_headers,
    is_text,
    preflight,
    request_event,
    response_parts,
)


def request(**kw) -> UrlRequest:
    base = dict(method="GET", raw_path="/", raw_query="", headers=(("Host", "lk.example:9000"),), body=b"",
                source_ip="10.0.0.7", protocol="HTTP/1.1", request_id="rid", now=1796385900.25,
                namespace="team-a", name="web")  # fmt: skip
    base.update(kw)
    return UrlRequest(**base)  # type: ignore[arg-type]


def test_the_event_of_a_bare_get():
    assert request_event(request()) == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"host": "lk.example:9000"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "web.team-a",
            "domainName": "lk.example",
            "domainPrefix": "lk",
            "http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.7", "userAgent": ""},
            "requestId": "rid",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Dec/2026:12:05:00 +0000",
            "timeEpoch": 1796385900250,
        },
        "isBase64Encoded": False,
    }


# (case, content type, body, event body, base64)
BODIES = [
    ("json is text", "application/json", b'{"a":1}', '{"a":1}', False),
    ("text/* is text", "text/csv; charset=utf-8", b"a,b", "a,b", False),
    ("a form is text", "application/x-www-form-urlencoded", b"a=1", "a=1", False),
    ("+json is text", "application/vnd.api+json", b"{}", "{}", False),
    ("octet-stream is base64", "application/octet-stream", b"\x00\x01", "AAE=", True),
    ("an image is base64", "image/png", b"\x89PNG", base64.b64encode(b"\x89PNG").decode(), True),
    ("no content type: base64", None, b"x", "eA==", True),
    ("declared text but not UTF-8: base64", "text/plain", b"\xff", "/w==", True),
]  # fmt: skip


@pytest.mark.parametrize("ctype,body,want,b64", [c[1:] for c in BODIES], ids=[c[0] for c in BODIES])
def test_bodies(ctype, body, want, b64):
    headers = (("Content-Type", ctype),) if ctype else ()
    event = request_event(request(headers=headers, body=body))
    assert event["body"] == want and event["isBase64Encoded"] is b64
    assert is_text(ctype) is (not b64 or ctype == "text/plain")


def test_headers_cookies_and_query():
    event = request_event(
        request(
            raw_query="a=1&a=2&b=%2F",
            headers=(("X-A", "1"), ("x-a", "2"), ("Cookie", "s=1; t=2"), ("Cookie", "u=3")),
        )
    )
    assert event["headers"] == {"x-a": "1,2"}
    assert event["cookies"] == ["s=1", "t=2", "u=3"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": "/"}


# (case, the handler's result, status, headers, body)
RESPONSES = [
    ("an object without statusCode: JSON 200", {"a": 1}, 200, [("Content-Type", "application/json")], b'{"a":1}'),
    ("a string: itself, 200", "hi", 200, [("Content-Type", "application/json")], b"hi"),
    ("a number", 3, 200, [("Content-Type", "application/json")], b"3"),
    ("null", None, 200, [("Content-Type", "application/json")], b"null"),
    ("the response format", {"statusCode": 204}, 204, [], b""),
    ("headers, cookies and a body", {"statusCode": 302, "headers": {"Location": "/x"}, "cookies": ["a=1"],
     "body": "moved"}, 302, [("Location", "/x"), ("Set-Cookie", "a=1"), ("Content-Type", "application/json")],
     b"moved"),
    ("a base64 body", {"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "AAE=",
     "isBase64Encoded": True}, 200, [("content-type", "image/png")], b"\x00\x01"),
]  # fmt: skip


@pytest.mark.parametrize("result,status,headers,body", [c[1:] for c in RESPONSES], ids=[c[0] for c in RESPONSES])
def test_responses(result, status, headers, body):
    assert response_parts(json.dumps(result).encode()) == UrlResponse(status, headers, body)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200"},
        {"statusCode": 42},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
    ],
)
def test_responses_lambda_answers_502(result):
    with pytest.raises(BadResponse):
        response_parts(json.dumps(result).encode())


CORS = UrlCors(allow_origins=["https://a.example"], allow_methods=["GET"], max_age=60, allow_credentials=True)
STAR = UrlCors(allow_origins=["*"], allow_methods=["*"])


def test_cors():
    assert cors_headers(CORS, "https://a.example") == [
        ("Access-Control-Allow-Origin", "https://a.example"),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Credentials", "true"),
    ]
    assert cors_headers(CORS, "https://b.example") == [] and cors_headers(CORS, None) == []
    assert cors_headers(STAR, "https://b.example") == [("Access-Control-Allow-Origin", "*")]
    asked = {"origin": "https://x.example", "access-control-request-method": "DELETE"}
    assert preflight(STAR, asked).headers == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "*"),
    ]
    assert preflight(CORS, asked).headers == []


def test_who_may_call_a_url():
    url = FunctionUrl("team-a", "web")
    got = requirement(
        "POST", URL_PROXY_ROUTE, {"namespace": "team-a", "name": "web", "proxy": "x"}, {},
        header_namespace="other", default_namespace="home",
    )  # fmt: skip
    assert got == url  # the path's namespace, whatever the header says
    assert url_requirement("NONE", url) == Public(URL_PUBLIC)
    invoke = Need((Attributes("invoke", "functions", "team-a", "web"),))
    assert url_requirement("KUBERNETES", url) == invoke
    assert url_requirement(None, url) == invoke  # no such function: nothing learnt without the right
