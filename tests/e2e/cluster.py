"""What the e2e scenarios need from a cluster, whichever it is: kubectl and helm through
one KUBECONFIG, the chart's release, invocations through the router's Service, and
waiting on what the real pods do.

The cluster is this machine's real node (tests/e2e/node.py) by default, or any cluster
named by ``LAMBDAKUBE_E2E_KUBECONFIG`` (kind in ``make e2e``) whose node already has the
images. The router is reached on its ClusterIP where this host routes to it (the real
node), else through ``kubectl port-forward`` (kind).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lambdakube.resources import identity, labels
from tests.cluster.controlplane import ToolMissing, free_port, locate, locate_controlplane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lambdakube"
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"
RELEASE = "lk"
RELEASE_NS = "lambdakube-system"
ROUTER_SVC = f"{RELEASE}-lambdakube-router"
#: The suite's caller of the router (``Cluster.client_token``).
CLIENT_SA = "e2e-client"
INVOKE = "/2015-03-31/functions/{name}/invocations"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: Path
    helm_bin: Path
    storage_class: str
    router_url: str = ""
    #: The bearer token every request to the router carries (``install_release``: a
    #: ServiceAccount bound to lambdakube-admin, from the TokenRequest API).
    token: str = ""
    #: The RealNode when the suite brought up this machine's node (None for kind).
    node: object = None
    _port_forward: subprocess.Popen | None = field(default=None, repr=False)

    # -- CLIs ------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and out.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [str(self.helm_bin), "--kubeconfig", str(self.kubeconfig), *args],
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and out.returncode:
            raise AssertionError(f"helm {' '.join(args)} failed: {out.stderr}\n{out.stdout}")
        return out

    def get(
        self, kind: str, name: str | None = None, namespace: str | None = None, selector: str | None = None
    ) -> dict:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        args += ["-n", namespace] if namespace else ["-A"] if name is None else []
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args).stdout)

    def apply(self, docs: list[dict] | dict, namespace: str) -> None:
        docs = docs if isinstance(docs, list) else [docs]
        self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))

    def pods(
        self, namespace: str, function: str | None = None, role: str | None = None, live_only: bool = True
    ) -> list[dict]:
        sel = [f"{labels.FUNCTION}={function}"] if function else [labels.FUNCTION]
        if role:
            sel.append(f"{labels.ROLE}={role}")
        items = self.get("pods", namespace=namespace, selector=",".join(sel))["items"]
        if live_only:
            items = [
                p
                for p in items
                if not p["metadata"].get("deletionTimestamp")
                and p["status"].get("phase") not in ("Succeeded", "Failed")
            ]
        return items

    def logs(self, target: str, namespace: str = RELEASE_NS, tail: int = 200) -> str:
        return self.kubectl("logs", "-n", namespace, target, f"--tail={tail}", check=False).stdout

    # -- the router ------------------------------------------------------------------

    def connect_router(self) -> None:
        """The router's Service address: its ClusterIP when routable from here."""
        ip = self.kubectl("get", "svc", ROUTER_SVC, "-n", RELEASE_NS, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        with contextlib.suppress(OSError), socket.create_connection((ip, 9000), timeout=2):
            self.router_url = f"http://{ip}:9000"
            return
        port = free_port()
        self._port_forward = subprocess.Popen(
            [
                str(self.kubectl_bin),
                "--kubeconfig",
                str(self.kubeconfig),
                "port-forward",
                "-n",
                RELEASE_NS,
                f"svc/{ROUTER_SVC}",
                f"{port}:9000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.router_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self.request("GET", "/healthz").status == 200, 30, "port-forward")

    def client_token(self) -> str:
        """The suite's caller: a ServiceAccount allowed everything the router offers in
        every namespace (a ClusterRoleBinding to the chart's lambdakube-admin), and a
        token of it from the TokenRequest API (``kubectl create token``) for the router's
        audience."""
        self.kubectl("create", "serviceaccount", CLIENT_SA, "-n", RELEASE_NS)
        self.kubectl(
            "create", "clusterrolebinding", CLIENT_SA,
            "--clusterrole=lambdakube-admin", f"--serviceaccount={RELEASE_NS}:{CLIENT_SA}",
        )  # fmt: skip
        return self.create_token(CLIENT_SA, RELEASE_NS, "3h")

    def create_token(self, account: str, namespace: str, duration: str = "1h") -> str:
        """A TokenRequest token of ``account`` for the router's audience (the chart's
        ``router.auth.audiences``), as ``kubectl create token --audience``."""
        return self.kubectl(
            "create", "token", account, "-n", namespace, f"--duration={duration}", f"--audience={identity.AUDIENCE}"
        ).stdout.strip()

    def close(self) -> None:
        self.kubectl("delete", "clusterrolebinding", CLIENT_SA, "--ignore-not-found", check=False)
        if self._port_forward is not None:
            self._port_forward.terminate()
            self._port_forward.wait(timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 120,
        token: str | None = None,
    ) -> Reply:
        """``token``: the bearer token to send (default: the suite's, ``""``: none)."""
        token = self.token if token is None else token
        h = {"Authorization": f"Bearer {token}"} if token else {}
        h.update(headers or {})
        req = urllib.request.Request(self.router_url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
        except (ConnectionError, urllib.error.URLError) as e:
            return Reply(0, {}, str(e).encode())

    def invoke(
        self,
        function: str,
        payload=None,
        namespace: str = "default",
        headers: dict[str, str] | None = None,
        timeout: float = 120,
        token: str | None = None,
    ) -> Reply:
        h = {"X-Lambdakube-Namespace": namespace, "Content-Type": "application/json"}
        h.update(headers or {})
        return self.request(
            "POST",
            INVOKE.format(name=function),
            json.dumps(payload if payload is not None else {}).encode(),
            h,
            timeout,
            token,
        )

    def router_function(self, function: str, namespace: str) -> dict | None:
        r = self.request("GET", f"/lambdakube/v1/namespaces/{namespace}/functions/{function}")
        return r.json() if r.status == 200 else None


def phase(name: str, start: float) -> None:
    print(f"\n[e2e] {name}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_cluster():
    """The cluster of ``LAMBDAKUBE_E2E_KUBECONFIG``, else this machine's real node (up
    for the duration of the block)."""

    start = time.monotonic()
    # Only located, never built: `make test` and `make test-e2e` build them first (`make
    # node`). A missing one fails the session naming its make target; the real node's
    # CoreDNS is checked here too, as its own lookup would only say "exit status 1".
    external = os.environ.get("LAMBDAKUBE_E2E_KUBECONFIG")
    missing = None
    try:
        helm = locate(BUILD_TOOLS, "helm") / "helm"
        kubectl = locate_controlplane() / "kubectl"
        if not external:
            locate(BUILD_TOOLS, "coredns")
    except ToolMissing as exc:
        missing = str(exc)
    if missing:
        import pytest  # noqa: PLC0415 - bench/real_node.py uses this module outside pytest

        pytest.fail(missing, pytrace=False)
    if external:
        yield Cluster(
            kubeconfig=Path(external),
            kubectl_bin=kubectl,
            helm_bin=helm,
            storage_class=os.environ.get("LAMBDAKUBE_E2E_STORAGE_CLASS", "standard"),
        )
        return
    from tests.e2e.node import STORAGE_CLASS, running  # noqa: PLC0415

    with running() as node:
        phase("cluster up", start)
        yield Cluster(
            kubeconfig=node.kubeconfig, kubectl_bin=kubectl, helm_bin=helm, storage_class=STORAGE_CLASS, node=node
        )


def install_release(c: Cluster) -> None:
    """The chart with its defaults (the router checks its callers with TokenReview and
    SubjectAccessReview), except the router's state on a PersistentVolumeClaim (so queued
    events survive a router pod's deletion) and DEBUG logs; then the router is connected
    and the suite's caller gets its token."""
    start = time.monotonic()
    c.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "router.persistence.enabled=true",
        "--set",
        f"router.persistence.storageClass={c.storage_class}",
        "--set",
        "router.logLevel=DEBUG",
        "--wait",
        "--timeout",
        "5m",
    )
    phase("helm install --wait", start)
    c.connect_router()
    c.token = c.client_token()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``.

    The scenarios wait on a real cluster's pods and controllers, whose timing is theirs:
    each wait has a deadline and says what it waited for. Nothing here proves that a
    thing did *not* happen by waiting."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def function_manifest(name: str, source: str, **spec) -> dict:
    """A Function with inline code in ``index.py`` (handler ``index.handler``)."""
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"handler": "index.handler", "code": {"inline": {"source": source}}, **spec},
    }


def recording_handler(version: str = "v1") -> str:
    """A handler for the scenarios: it reports its pod, a module-level counter (Init runs
    once per environment), its code version, when it started and ended (wall clock), and
    sleeps on demand."""
    return RECORDING_HANDLER.replace("@VERSION@", version)


RECORDING_HANDLER = """\
import os, time
COUNT = 0
VERSION = "@VERSION@"

def handler(event, context):
    global COUNT
    COUNT += 1
    start = time.time()
    time.sleep(float((event or {}).get("sleep", 0)))
    return {"pod": os.environ["LAMBDAKUBE_ENV_ID"], "count": COUNT, "version": VERSION,
            "start": start, "end": time.time()}
"""
