"""The router's front (``fast_invoke``): which heads it serves itself, what it reads of
them, and every case it hands to aiohttp. A table of named cases over the pure parser;
what the front does on a connection is tested on a real router in
``tests/router/test_fast_invoke_router.py``."""

from __future__ import annotations

import pytest

from lambdakube_router.fast_invoke import parse_head, serialize

LINE = b"POST /2015-03-31/functions/f/invocations HTTP/1.1"


def head(*lines: bytes, line: bytes = LINE) -> bytes:
    return b"\r\n".join((line, *lines))


def post(rest: bytes, method: bytes = b"POST ", version: bytes = b" HTTP/1.1") -> bytes:
    """A request line whose target is ``/2015-03-31/functions/`` + ``rest``."""
    return method + b"/2015-03-31/functions/" + rest + version


SERVED = [
    ("plain name, length", head(b"Host: x", b"Content-Length: 2"), ("f", None, 2)),
    ("zero length", head(b"Content-Length: 0"), ("f", None, 0)),
    (
        "boto3's escaped ARN",
        head(
            b"Content-Length: 2",
            line=post(b"arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"),
        ),
        ("arn:aws:lambda:us-east-1:000000000000:function:f", None, 2),
    ),
    (
        "a qualifier, $LATEST escaped",
        head(b"Content-Length: 2", line=post(b"f/invocations?Qualifier=%24LATEST")),
        ("f", "$LATEST", 2),
    ),
    (
        "an empty qualifier",
        head(b"Content-Length: 2", line=post(b"f/invocations?Qualifier=")),
        ("f", "", 2),
    ),
    ("keep-alive said", head(b"Connection: Keep-Alive", b"Content-Length: 2"), ("f", None, 2)),
    ("header names in any case, values trimmed", head(b"content-LENGTH:   7 \t"), ("f", None, 7)),
    ("a header without a space", head(b"Content-Length:2", b"X-Amz-Log-Type:Tail"), ("f", None, 2)),
]


@pytest.mark.parametrize(("raw", "expected"), [pytest.param(r, e, id=i) for i, r, e in SERVED])
def test_the_front_serves(raw, expected):
    parsed = parse_head(raw)
    assert parsed is not None
    assert (parsed.function_name, parsed.qualifier, parsed.length) == expected


def test_headers_are_read_lower_cased_once_each():
    parsed = parse_head(head(b"X-Amz-Log-Type: Tail", b"Content-Length: 2", b"X-Lambdakube-Namespace: team-a"))
    assert parsed is not None
    assert parsed.headers == {"x-amz-log-type": "Tail", "content-length": "2", "x-lambdakube-namespace": "team-a"}


HANDED_OVER = [
    ("another method", head(b"Content-Length: 2", line=post(b"f/invocations", method=b"PUT "))),
    ("another route", head(b"Content-Length: 2", line=post(b"f/configuration"))),
    ("HTTP/1.0", head(b"Content-Length: 2", line=post(b"f/invocations", version=b" HTTP/1.0"))),
    ("no Content-Length", head(b"Host: x")),
    ("chunked", head(b"Transfer-Encoding: chunked")),
    ("chunked and a length", head(b"Content-Length: 2", b"Transfer-Encoding: chunked")),
    ("a repeated length", head(b"Content-Length: 2", b"Content-Length: 2")),
    ("a repeated other header", head(b"Content-Length: 2", b"X-Amz-Log-Type: Tail", b"x-amz-log-type: None")),
    ("a length that is not digits", head(b"Content-Length: +2")),
    ("a listed length", head(b"Content-Length: 2, 2")),
    ("a body over the synchronous limit", head(b"Content-Length: 6291457")),
    ("Expect: 100-continue", head(b"Content-Length: 2", b"Expect: 100-continue")),
    ("Connection: close", head(b"Content-Length: 2", b"Connection: close")),
    ("an upgrade", head(b"Content-Length: 2", b"Upgrade: h2c", b"Connection: Upgrade")),
    ("an obs-fold line", head(b"Content-Length: 2", b"X-A: one", b" two")),
    ("a space before the colon", head(b"Content-Length : 2")),
    ("a bare LF in the head", head(b"Content-Length: 2\nX-Smuggled: 1")),
    ("a control character in a value", head(b"Content-Length: 2", b"X-A: a\x01b")),
    ("a non-ASCII value", head(b"Content-Length: 2", b"X-A: caf\xc3\xa9")),
    ("another escape in the name", head(b"Content-Length: 2", line=post(b"f%2Fg/invocations"))),
    ("a broken escape", head(b"Content-Length: 2", line=post(b"f%3/invocations"))),
    ("another query", head(b"Content-Length: 2", line=post(b"f/invocations?x=1"))),
    (
        "two queries",
        head(b"Content-Length: 2", line=post(b"f/invocations?Qualifier=1&Qualifier=2")),
    ),
    (
        "an absolute target",
        head(b"Content-Length: 2", line=b"POST http://x/2015-03-31/functions/f/invocations HTTP/1.1"),
    ),
    ("a fragment", head(b"Content-Length: 2", line=post(b"f/invocations#x"))),
    (
        "two spaces in the request line",
        head(b"Content-Length: 2", line=b"POST  /2015-03-31/functions/f/invocations HTTP/1.1"),
    ),
]


@pytest.mark.parametrize("raw", [pytest.param(r, id=i) for i, r in HANDED_OVER])
def test_the_front_hands_over(raw):
    assert parse_head(raw) is None


def test_an_answer_is_one_frame_with_its_length_and_no_length_for_204():
    out = serialize(200, {"Content-Type": "application/json", "X-Amz-Request-Id": "r"}, b'{"a":1}')
    head_, _, body = out.partition(b"\r\n\r\n")
    assert head_.startswith(b"HTTP/1.1 200 OK\r\nDate: ")
    assert b"\r\nContent-Length: 7" in head_ and b"\r\nX-Amz-Request-Id: r" in head_
    assert body == b'{"a":1}'
    assert b"Content-Length" not in serialize(204, {"X-Amz-Request-Id": "r"}, b"")
    assert serialize(200, {}, b"", close=True).endswith(b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
def test_a_header_value_that_would_split_the_answer_is_refused(value):
    with pytest.raises(ValueError):
        serialize(200, {"X-Amz-Log-Result": value}, b"")
