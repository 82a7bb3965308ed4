"""The read API's path and query parameters: each declared once, checked by one function.

Why a table: the server's checks and the OpenAPI document must say the same thing, and a
contract written twice drifts. Each ``Param`` both checks a request (``parse``, pure, no
aiohttp) and renders its OpenAPI parameter object (``Param.openapi``), so
``introspection`` and ``openapi`` read the same declarations.

The rules are strict on purpose. An integer is ASCII digits only and fits SQLite's
signed 64 bits (a larger one was a 500 ``OverflowError`` from the store); a value given
twice is refused, not silently reduced to one of them; a required parameter that is
missing is refused (a ``DELETE`` without ``upTo`` used to delete nothing and answer 200);
an out-of-range ``limit`` is refused rather than clamped, so a caller never gets fewer
rows than it asked for without being told. Names are Kubernetes names (the shape of
every namespace, function and queue the router can have). Parameters the API does not
declare are ignored, as Lambda's API does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from lambdakube.models import NAME_PATTERN

#: SQLite's INTEGER (and the store's ``seq``) is a signed 64-bit integer.
MAX_INT64 = 2**63 - 1
#: A Kubernetes namespace (DNS-1123 label) and a function or queue name (``models``).
NAME_MAX_LENGTH = 63

_NAME = re.compile(NAME_PATTERN)
# At most 19 digits: MAX_INT64 has 19; the range check below does the rest, and int()
# never sees a huge string.
_DIGITS = re.compile(r"[0-9]{1,19}")


class InvalidParameter(ValueError):
    """A request parameter the API refuses (400 InvalidParameterValueException)."""


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["path", "query"]
    kind: Literal["name", "integer"]
    required: bool = False
    default: int | None = None
    minimum: int = 0
    maximum: int = MAX_INT64
    description: str = ""
    #: For the document (a reader's first request, and the cases a schema-driven tester
    #: starts from): the names of the README's examples.
    example: str | None = None

    def openapi(self) -> dict:
        """This parameter's OpenAPI 3.0 object: exactly what ``parse`` accepts."""
        schema: dict
        if self.kind == "name":
            schema = {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH}
        else:
            schema = {"type": "integer", "format": "int64", "minimum": self.minimum, "maximum": self.maximum}
            if self.default is not None:
                schema["default"] = self.default
        obj = {"name": self.name, "in": self.location, "required": self.required, "schema": schema}
        if self.description:
            obj["description"] = self.description
        if self.example is not None:
            obj["example"] = self.example
        return obj

    def check(self, raw: str) -> int | str:
        if self.kind == "name":
            if len(raw) > NAME_MAX_LENGTH or not _NAME.fullmatch(raw):
                raise InvalidParameter(
                    f"{self.name} must be a Kubernetes name (lowercase letters, digits and '-',"
                    f" at most {NAME_MAX_LENGTH} characters), got {_shown(raw)}"
                )
            return raw
        if not _DIGITS.fullmatch(raw) or not self.minimum <= int(raw) <= self.maximum:
            raise InvalidParameter(
                f"{self.name} must be an integer from {self.minimum} to {self.maximum}, got {_shown(raw)}"
            )
        return int(raw)


def parse(
    params: Iterable[Param], path: Mapping[str, str], query: Iterable[tuple[str, str]]
) -> dict[str, int | str | None]:
    """Every declared parameter's value (its default when absent and optional), or
    ``InvalidParameter`` naming the first one that is wrong."""
    given: dict[str, list[str]] = {}
    for key, value in query:
        given.setdefault(key, []).append(value)
    out: dict[str, int | str | None] = {}
    for p in params:
        if p.location == "path":
            values = [path[p.name]] if p.name in path else []
        else:
            values = given.get(p.name, [])
        if not values:
            if p.required:
                raise InvalidParameter(f"{p.name} is required")
            out[p.name] = p.default
        elif len(values) > 1:
            raise InvalidParameter(f"{p.name} must be given once, got {len(values)} values")
        else:
            out[p.name] = p.check(values[0])
    return out


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


# -- the read API's parameters ---------------------------------------------------------

NAMESPACE = Param("namespace", "path", "name", required=True, example="default")
FUNCTION = Param("name", "path", "name", required=True, example="hello")
QUEUE = Param("queue", "path", "name", required=True, example="done")
AFTER = Param("after", "query", "integer", default=0, description="only messages with seq > after")
LIMIT = Param("limit", "query", "integer", default=100, minimum=1, maximum=1000, description="at most this many")
UP_TO = Param("upTo", "query", "integer", required=True, description="delete the messages with seq <= upTo")

LIST_FUNCTIONS = (NAMESPACE,)
GET_FUNCTION = (NAMESPACE, FUNCTION)
LIST_QUEUE_MESSAGES = (NAMESPACE, QUEUE, AFTER, LIMIT)
DELETE_QUEUE_MESSAGES = (NAMESPACE, QUEUE, UP_TO)
LIST_ASYNC_EVENTS = (NAMESPACE,)
SEND_QUEUE_MESSAGES = (NAMESPACE, QUEUE)
LIST_EVENT_SOURCE_MAPPINGS = (NAMESPACE,)
