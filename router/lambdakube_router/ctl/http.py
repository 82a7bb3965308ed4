"""The one place the CLI talks HTTP (stdlib ``http.client``: no aiohttp to import).

A ``Connection`` keeps one keep-alive connection (``bench`` gives each worker its own)
and reconnects once when the router closed an idle one. Failures to connect come back
as ``Answer(status=None)``, so callers map them to an exit code like any answer.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from lambdakube_router.ctl.config import Target

NAMESPACE_HEADER = "X-Lambdakube-Namespace"


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # no answer: why

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error_text(self) -> str:
        if self.status is None:
            return f"cannot reach the router: {self.error}"
        try:
            obj = self.json()
            if isinstance(obj, dict) and (obj.get("errorType") or obj.get("message")):
                return f"{self.status} {obj.get('errorType', '')}: {obj.get('errorMessage') or obj.get('message')}"
        except ValueError:
            pass
        return f"{self.status}: {self.body[:300].decode(errors='replace')}"


class Connection:
    def __init__(self, target: Target, timeout: float = 960.0) -> None:
        self.target = target
        self.timeout = timeout
        url = urllib.parse.urlsplit(target.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"router URL must be http(s)://host[:port], got {target.url!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        #: The connection has answered before: if it is found closed, the router closed
        #: it while idle and nothing of this request reached it, so it is sent again.
        self._reused = False

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
            self._reused = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        h = {"Accept": "application/json", NAMESPACE_HEADER: self.target.namespace, **(headers or {})}
        if self.target.token:
            h["Authorization"] = f"Bearer {self.target.token}"
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        target = self._base + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        for attempt in (1, 2):
            conn = self._connect()
            try:
                conn.request(method, target, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                self._reused = True
                return Answer(resp.status, dict(resp.getheaders()), data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                reused = self._reused
                self.close()
                if attempt == 2 or not reused:
                    return Answer(None, error=str(exc) or type(exc).__name__)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return Answer(None, error=str(exc) or type(exc).__name__)
        raise AssertionError("unreachable")


def quoted(segment: str) -> str:
    return urllib.parse.quote(segment, safe=":$")
