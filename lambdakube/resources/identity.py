"""A function's own identity: how a handler calls the Invoke API as its ServiceAccount.

The contract, written once (pod builder, router, admission policy's chart value and the
runtime, which is stdlib-only and spells the variable names itself; ``tests/runtime``
checks that they agree):

- A Function with ``spec.serviceAccountName`` runs as that ServiceAccount, still without
  the API server's token (``automountServiceAccountToken: false``). Instead its pods
  get a **projected token for the audience** ``AUDIENCE`` only, at ``TOKEN_PATH``,
  rotated by the kubelet. The API server refuses that token (its audiences are its
  own), the router's TokenReview accepts it: a leaked handler token can invoke what
  the ServiceAccount may invoke, and nothing else.
- Every environment is told where the router is (``AWS_ENDPOINT_URL_LAMBDA``, which the
  AWS SDKs read: boto3 >= 1.28.57, the JS SDK v3, the aws CLI) and a region
  (``AWS_REGION``/``AWS_DEFAULT_REGION``), and that there is no instance metadata
  service (``AWS_EC2_METADATA_DISABLED``), each unless the function sets it: an SDK
  client built with no arguments talks to this cluster's Lambda.
- The runtime serves the token as **container credentials** (the ECS / EKS Pod Identity
  protocol every AWS SDK follows by default): it sets
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` to its own loopback endpoint and
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` to a random secret of that process, and answers
  with the token file's current content as the session ``Token``. The SDK signs with
  SigV4 and sends the token as ``X-Amz-Security-Token``, which the router takes as the
  caller's bearer token. The signature itself is not checked: the key pair is not a
  secret (the token is the credential), as with a bearer token.

Why not plain ``AWS_SESSION_TOKEN``: the token expires (an hour) and the kubelet
rotates the file, while an environment may live longer and its variables are fixed at
start; the credentials endpoint reads the file each time and tells the SDK when it
expires, so the SDK fetches the next one by itself.
"""

from __future__ import annotations

from lambdakube.models import FunctionSpec

#: The audience of function tokens and the router's TokenReview default.
AUDIENCE = "lambdakube"
VOLUME = "lambdakube-identity"
TOKEN_DIR = "/var/run/secrets/lambdakube.dev/serviceaccount"
TOKEN_FILE = "token"
TOKEN_PATH = f"{TOKEN_DIR}/{TOKEN_FILE}"
#: The kubelet renews a projected token at 80% of its lifetime.
TOKEN_EXPIRATION_SECONDS = 3600
#: Tells the runtime to serve container credentials from this file.
TOKEN_FILE_VARIABLE = "LAMBDAKUBE_IDENTITY_TOKEN_FILE"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_LAMBDA"
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
#: Lambda's ARNs carry a region; lambdakube's carry the namespace there
#: (``formats.function_arn``), and the SDKs just need a valid name to sign with.
REGION = "lambdakube"
#: An environment has no instance metadata service to ask: an SDK that found no other
#: credentials must not go looking on the network for one (``169.254.169.254``).
NO_IMDS = ("AWS_EC2_METADATA_DISABLED", "true")
#: The runtime's credentials route (on its own port, answered to loopback only).
CREDENTIALS_PATH = "/lambdakube/credentials"


def endpoint_env(endpoint: str | None, spec: FunctionSpec | None) -> list[dict]:
    """Pod variables that point the SDKs at the router (none without an endpoint); a
    region only where the function does not set its own."""
    if not endpoint:
        return []
    own = set(spec.env) | set(spec.env_value_from) if spec is not None else set()
    wanted = [(ENDPOINT_VARIABLE, endpoint), *((name, REGION) for name in REGION_VARIABLES), NO_IMDS]
    return [{"name": name, "value": value} for name, value in wanted if name not in own]


#: ``lambdakube dev`` has no token issuer: placeholder keys let an SDK sign its calls
#: (a local router with ``--auth none`` does not read signatures; with auth on it
#: refuses them like any other unknown credential).
LOCAL_KEYS = (("AWS_ACCESS_KEY_ID", "lambdakube-local"), ("AWS_SECRET_ACCESS_KEY", "lambdakube-local"))


def local_env(endpoint: str | None, spec: FunctionSpec) -> dict[str, str]:
    """A local process's variables for calling the router with a stock SDK: the
    endpoint's, and the placeholder keys unless the function sets keys of its own."""
    if not endpoint:
        return {}
    out = {var["name"]: var["value"] for var in endpoint_env(endpoint, spec)}
    own = set(spec.env) | set(spec.env_value_from)
    if not own & {name for name, _ in LOCAL_KEYS}:
        out.update(LOCAL_KEYS)
    return out


def token_env(spec: FunctionSpec) -> list[dict]:
    return [{"name": TOKEN_FILE_VARIABLE, "value": TOKEN_PATH}] if spec.service_account_name else []


def token_volume() -> dict:
    """The projected, audience-bound ServiceAccount token (the admission policy admits
    no other token source)."""
    return {
        "name": VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": AUDIENCE,
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                        "path": TOKEN_FILE,
                    }
                }
            ],
        },
    }


def token_mount() -> dict:
    return {"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
