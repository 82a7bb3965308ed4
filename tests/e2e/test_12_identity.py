"""Function-to-function calls with the function's own identity, on real pods: a Function
with ``spec.serviceAccountName`` gets a projected token for the router's audience, the
runtime serves it as AWS container credentials, and the handler's call through the
router's Service (``AWS_ENDPOINT_URL_LAMBDA``) is authenticated by TokenReview and
authorized by RBAC as that ServiceAccount. Without a RoleBinding the call is 403,
without a ServiceAccount the handler has no token (401), and the function's token is
refused by the API server.

The handler speaks the protocol an AWS SDK follows with its default settings (container
credentials, then the session token on the request) with urllib: the runtime image has
no boto3. Real boto3 against the same runtime route and router is
tests/router/test_function_identity.py."""

from __future__ import annotations

import json

from lambdakube.resources import identity
from tests.e2e.cluster import Cluster, function_manifest, wait_for

CALLER = """\
import json, os, urllib.error, urllib.request

def handler(event, context):
    env = os.environ
    headers = {"Content-Type": "application/json"}
    uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if uri:  # what every AWS SDK does first with its default settings
        ask = urllib.request.Request(uri, headers={"Authorization": env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
        with urllib.request.urlopen(ask, timeout=5) as r:
            creds = json.load(r)
        if event.get("reveal"):
            return {"token": creds["Token"], "expiration": creds["Expiration"]}
        headers["X-Amz-Security-Token"] = creds["Token"]
    url = env["AWS_ENDPOINT_URL_LAMBDA"] + "/2015-03-31/functions/" + event["target"] + "/invocations"
    call = urllib.request.Request(url, data=json.dumps({"n": 21}).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=60) as r:
            return {"status": r.status, "body": json.load(r)}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": e.headers.get("x-amzn-ErrorType")}
"""

WORKER = """\
def handler(event, context):
    return {"doubled": event["n"] * 2}
"""


def invoke_ok(release: Cluster, fn: str, event: dict, ns: str) -> dict:
    r = release.invoke(fn, event, ns, timeout=120)
    assert r.status == 200 and r.header("x-amz-function-error") is None, r.body
    return r.json()


def test_a_function_calls_another_as_its_own_service_account(release: Cluster, ns: str):
    release.kubectl("create", "serviceaccount", "orchestrator", "-n", ns)
    release.kubectl("create", "serviceaccount", "stranger", "-n", ns)
    release.kubectl(
        "create", "rolebinding", "orchestrator-invoke", "-n", ns,
        "--clusterrole=lambdakube-invoker", f"--serviceaccount={ns}:orchestrator",
    )  # fmt: skip
    release.apply(
        [
            function_manifest("worker", WORKER),
            function_manifest("orchestrator", CALLER, serviceAccountName="orchestrator"),
            function_manifest("stranger", CALLER, serviceAccountName="stranger"),
            function_manifest("anonymous", CALLER),
        ],
        ns,
    )
    for fn in ("worker", "orchestrator", "stranger", "anonymous"):
        wait_for(lambda fn=fn: release.router_function(fn, ns), 60, f"the router to see {fn}")

    # a plain name is the worker next to the caller (its ServiceAccount's namespace)
    def called():
        got = invoke_ok(release, "orchestrator", {"target": "worker"}, ns)
        return got if got.get("status") == 200 else None

    got = wait_for(called, 60, "the RoleBinding to let the orchestrator invoke", interval=1)
    assert got == {"status": 200, "body": {"doubled": 42}}

    assert invoke_ok(release, "stranger", {"target": "worker"}, ns) == {
        "status": 403,
        "error": "AccessDeniedException",
    }
    assert invoke_ok(release, "anonymous", {"target": "worker"}, ns) == {
        "status": 401,
        "error": "UnrecognizedClientException",
    }

    (pod,) = release.pods(ns, "orchestrator")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "orchestrator" and spec["automountServiceAccountToken"] is False
    projected = [v["projected"] for v in spec["volumes"] if "projected" in v]
    assert projected == [
        {
            "sources": [
                {"serviceAccountToken": {"audience": "lambdakube", "expirationSeconds": 3600, "path": "token"}}
            ],
            "defaultMode": 420,
        }
    ]
    (anonymous_pod,) = release.pods(ns, "anonymous")
    assert "projected" not in json.dumps(anonymous_pod["spec"]["volumes"])

    # the function's token is the router's alone: the API server refuses it
    revealed = invoke_ok(release, "orchestrator", {"reveal": True}, ns)
    claims = _claims(revealed["token"])
    assert claims["aud"] == [identity.AUDIENCE]
    assert claims["sub"] == f"system:serviceaccount:{ns}:orchestrator"
    assert _review(release, revealed["token"], None) == {"authenticated": False}
    assert _review(release, revealed["token"], [identity.AUDIENCE])["authenticated"] is True


def _review(release: Cluster, token: str, audiences: list[str] | None) -> dict:
    """The API server's judgement of ``token``: for its own audiences (None), as any
    request to it, or for ``audiences``, as the router asks."""
    spec: dict = {"token": token}
    if audiences:
        spec["audiences"] = audiences
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    out = release.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    status = json.loads(out.stdout)["status"]
    return (
        {k: v for k, v in status.items() if k in ("authenticated", "user")}
        if status.get("authenticated")
        else {"authenticated": bool(status.get("authenticated"))}
    )


def _claims(token: str) -> dict:
    import base64

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_missing_service_account_is_a_clear_error(release: Cluster, ns: str):
    """The API server refuses a pod of a ServiceAccount that does not exist: the invoke
    says so, and nothing waits for a pod that will never come."""
    release.apply(function_manifest("ghost", CALLER, serviceAccountName="no-such-account"), ns)
    wait_for(lambda: release.router_function("ghost", ns), 60, "the router to see ghost")
    r = release.invoke("ghost", {"target": "worker"}, ns, timeout=120)
    assert r.status >= 400, r.body
    assert "no-such-account" in r.body.decode(), r.body
