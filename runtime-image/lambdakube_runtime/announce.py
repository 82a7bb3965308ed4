"""Tell the router that this environment listens (``LAMBDAKUBE_ANNOUNCE_URL``).

Why: a router that creates a pod learns its IP from the pod's status, and the kubelet
writes that only after its next PLEG relist (every second) following the container's
start. Measured on a real node: a fresh pod waited 0-1 s, on average half a second, for
that write, on top of a start of about 0.7 s. The runtime knows its IP at once
(``LAMBDAKUBE_POD_IP``, the downward API's ``status.podIP``), so it says so itself.

The announce is a hint, never trusted on its own: it carries the per-pod token the
router put into this pod's environment, the router accepts it only from a connection
whose peer is the announced IP, and it then asks ``/readyz`` at that address, which must
answer with this environment's id. Without an answer the router simply waits for the
pod's status as before. A few quick attempts, then silence: the environment works
either way.

Stdlib only, no new imports on the cold path beyond what the server already loads.
"""

from __future__ import annotations

import asyncio
import json

#: Attempts and the first pause between them (doubling): about 1.5 s in all.
ATTEMPTS = 5
FIRST_PAUSE = 0.05


def _split(url: str) -> tuple[str, int, str]:
    """``http://host:port/path`` -> (host, port, path); ValueError otherwise."""
    scheme, sep, rest = url.partition("://")
    if scheme != "http" or not sep:
        raise ValueError(f"LAMBDAKUBE_ANNOUNCE_URL must be http://host:port/path, got {url!r}")
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"LAMBDAKUBE_ANNOUNCE_URL needs a host and a port, got {url!r}")
    return host.strip("[]"), int(port), "/" + path if slash else "/"


def request_bytes(url: str, env_id: str, address: str, token: str) -> tuple[str, int, bytes]:
    host, port, path = _split(url)
    body = json.dumps({"envId": env_id, "address": address, "token": token}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return host, port, head.encode() + body


async def announce(
    url: str, env_id: str, address: str, token: str, attempts: int = ATTEMPTS, pause: float = FIRST_PAUSE
) -> int | None:
    """POST the announce; the router's status code, or None if it could not be reached."""
    try:
        host, port, data = request_bytes(url, env_id, address, token)
    except ValueError:
        return None
    for attempt in range(attempts):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            try:
                writer.write(data)
                await writer.drain()
                status_line = await asyncio.wait_for(reader.readline(), 2)
            finally:
                writer.close()
            parts = status_line.split()
            return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        except (OSError, asyncio.TimeoutError):
            if attempt + 1 < attempts:
                await asyncio.sleep(pause * 2**attempt)
    return None
