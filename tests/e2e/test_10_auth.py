"""The installed router checks its callers (the chart's default, --auth tokenreview),
through its real Service: no token is 401; a ServiceAccount of this namespace without a
binding is 403; a RoleBinding to the chart's lambdakube-invoker lets it invoke here and
nowhere else; the probes stay open; and an environment pod carries no ServiceAccount
token a handler could call the router with."""

from __future__ import annotations

import urllib.error
import urllib.request

from lambdakube.resources import env_token, labels
from lambdakube.resources.pods import PORT
from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for


def test_callers_are_authenticated_and_authorized(release: Cluster, ns: str):
    release.apply(function_manifest("guarded", recording_handler()), ns)
    wait_for(lambda: release.router_function("guarded", ns), 60, "the router to see the Function")

    r = release.invoke("guarded", {}, ns, token="")
    assert r.status == 401 and r.header("x-amzn-ErrorType") == "UnrecognizedClientException", r.body
    assert release.request("GET", "/healthz", token="").status == 200

    release.kubectl("create", "serviceaccount", "caller", "-n", ns)
    # a token for the API server is no token for the router (audience lambdakube)
    api_token = release.kubectl("create", "token", "caller", "-n", ns, "--duration=1h").stdout.strip()
    r = release.invoke("guarded", {}, ns, token=api_token)
    assert r.status == 401 and "audience lambdakube" in r.json()["message"], r.body
    token = release.create_token("caller", ns)
    r = release.invoke("guarded", {}, ns, token=token)
    assert r.status == 403 and r.json()["errorType"] == "AccessDeniedException", r.body

    release.kubectl(
        "create", "rolebinding", "caller-invoke", "-n", ns,
        "--clusterrole=lambdakube-invoker", f"--serviceaccount={ns}:caller",
    )  # fmt: skip

    # a denial is remembered for 10 s (and RBAC sees the binding a moment later)
    def allowed():
        r = release.invoke("guarded", {}, ns, token=token)
        return r if r.status == 200 else None

    r = wait_for(allowed, 30, "the RoleBinding to let the caller invoke", interval=1)
    assert r.json()["version"] == "v1"
    other = release.invoke("guarded", {}, "default", token=token)  # another namespace: no binding there
    assert other.status == 403, other.body
    status = release.request("GET", f"/lambdakube/v1/namespaces/{ns}/queues/done/messages", token=token).status
    assert status == 403  # invoking is not reading queues

    (pod,) = release.pods(ns, "guarded")
    assert pod["spec"].get("automountServiceAccountToken") is False
    assert pod["metadata"]["labels"][labels.FUNCTION] == "guarded"


def _post(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_an_environment_pod_takes_requests_only_with_its_own_token(release: Cluster, ns: str):
    """Straight to a pod's runtime over the pod network, past the router: without the
    pod's own X-Env-Token, /invoke and /init are 401 (nothing runs); its probes answer."""
    release.apply(function_manifest("direct", recording_handler()), ns)
    wait_for(lambda: release.router_function("direct", ns), 60, "the router to see the Function")
    assert release.invoke("direct", {}, ns).status == 200
    (pod,) = release.pods(ns, "direct")
    base = f"http://{pod['status']['podIP']}:{PORT}"
    for path in ("/invoke", "/init"):
        assert _post(base + path, {}) == 401, path
        assert _post(base + path, {env_token.HEADER: "guess"}) == 401, path
    with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
        assert r.status == 200
    # the pod's own token (only who may read the pod's spec has it) is what opens it
    assert _post(base + "/invoke", {env_token.HEADER: env_token.token_of(pod)}) == 200
