"""The handler's AWS credentials: its ServiceAccount token, as container credentials.

A Function with ``spec.serviceAccountName`` has a projected token for the router's
audience in its pod, and ``LAMBDAKUBE_IDENTITY_TOKEN_FILE`` naming it (the contract is
``lambdakube.resources.identity``; this package is stdlib-only, so the names are spelled
here again and ``tests/runtime`` checks they agree). Every AWS SDK looks for credentials
in the same order, and one of the default places is the *container credentials*
endpoint (what ECS tasks and EKS Pod Identity use): ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
on a loopback address, asked with ``Authorization: <AWS_CONTAINER_AUTHORIZATION_TOKEN>``.
The runtime serves that endpoint on its own port, so a handler's
``boto3.client("lambda").invoke(...)`` (or the JS SDK's, or the aws CLI's) signs its
request with the token as the session token, and the router authenticates it as the
ServiceAccount.

Why an endpoint and not ``AWS_SESSION_TOKEN``: the kubelet rotates the token file
before the token expires (an hour), and an environment's variables are fixed when it
starts. Each answer here reads the file again and gives the token's own expiry, so the
SDK refreshes in time by itself.

Who may ask: only a client on the loopback (the pod itself) that shows the per-process
secret put into the handler's environment; the runtime's port is reachable from other
pods, and this route must not hand them the function's identity.
"""

from __future__ import annotations

import base64
import json
import os
import time
from _operator import _compare_digest as compare_digest
from collections.abc import MutableMapping

from .http import Request, Response, error_response, json_response

TOKEN_FILE_VARIABLE = "LAMBDAKUBE_IDENTITY_TOKEN_FILE"
PATH = "/lambdakube/credentials"
FULL_URI_VARIABLE = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTHORIZATION_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
#: The SDKs need a key pair to sign with; the router checks the token, not the signature.
ACCESS_KEY_ID = "LAMBDAKUBE"
SECRET_ACCESS_KEY = "lambdakube-token-is-the-credential"
#: Expiry claimed for a token whose own cannot be read: the SDK asks again soon.
FALLBACK_LIFETIME_SECONDS = 300


class Credentials:
    def __init__(self, token_file: str, secret: str) -> None:
        self.token_file = token_file
        self.secret = secret.encode()

    @classmethod
    def install(cls, environ: MutableMapping[str, str], port: int) -> Credentials | None:
        """With a token file configured: point the SDKs (through ``environ``, the
        handler's environment) at this runtime's endpoint. None without one."""
        token_file = environ.get(TOKEN_FILE_VARIABLE)
        if not token_file:
            return None
        secret = os.urandom(24).hex()
        environ[FULL_URI_VARIABLE] = f"http://127.0.0.1:{port}{PATH}"
        environ[AUTHORIZATION_VARIABLE] = secret
        return cls(token_file, secret)

    def answer(self, request: Request) -> Response:
        if not request.loopback:
            return error_response(403, "Forbidden", f"{PATH} answers this environment's own processes only")
        shown = (request.header("authorization") or "").encode()
        if not compare_digest(shown, self.secret):
            return error_response(401, "Unauthorized", f"{PATH} needs Authorization: ${AUTHORIZATION_VARIABLE}")
        try:
            with open(self.token_file, encoding="ascii") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            return error_response(500, "TokenUnavailable", f"cannot read {self.token_file}: {exc}")
        if not token:
            return error_response(500, "TokenUnavailable", f"{self.token_file} is empty")
        return json_response(
            200,
            {
                "AccessKeyId": ACCESS_KEY_ID,
                "SecretAccessKey": SECRET_ACCESS_KEY,
                "Token": token,
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry(token))),
            },
        )


def expiry(token: str, now: float | None = None) -> float:
    """The ``exp`` claim of a JWT (unverified: the router's TokenReview verifies), or a
    short lifetime from ``now`` when the token has none."""
    now = time.time() if now is None else now
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims["exp"]
    except (IndexError, ValueError, KeyError, TypeError):
        return now + FALLBACK_LIFETIME_SECONDS
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return now + FALLBACK_LIFETIME_SECONDS
    return float(exp)
