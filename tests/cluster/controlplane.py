"""A real Kubernetes control plane on loopback, for tests: etcd, kube-apiserver and
kube-controller-manager built from the Go module proxy by hack/build-controlplane.sh
(``make controlplane``; the tests only locate them, see ``locate``).

Why the controller-manager too: without it there is no garbage collection (owner
references would never delete a Function's pods), no namespace deletion and no default
ServiceAccount, so pods could not even be created under the ServiceAccount admission.

There is no kubelet here: pods are stored and scheduled nowhere, so tests that need a
"ready" pod patch its status themselves and say so. tests/e2e/node.py adds a scheduler,
a kubelet, kube-proxy and CoreDNS to the same control plane for real pods; it binds the
apiserver to its node bridge (``address``) so that pods reach it through the
``kubernetes`` Service.

Run it by hand for debugging:  python -m tests.cluster.controlplane
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-controlplane.sh"
ADMIN_TOKEN = "lambdakube-admin-token"


def node_token(node: str) -> str:
    return f"lambdakube-node-{node}-token"


class ToolMissing(RuntimeError):
    """A tool the tests use is not built; the message names the make target that builds it."""


def locate(script: Path, *args: str) -> Path:
    """The directory a ``hack/build-*.sh`` script prints for its cached build, asked with
    ``--check``: nothing is ever built from here. Building belongs to the make targets,
    before pytest starts; a build inside a test would run into its timeout on a fresh
    machine. The script stays the one place that knows the cache's layout, and its own
    message (which names the make target) is what ``ToolMissing`` says."""
    out = subprocess.run(
        ["bash", str(script), "--check", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60
    )
    if out.returncode != 0:
        raise ToolMissing(out.stderr.strip() or f"{script.name} --check exited {out.returncode}")
    return Path(out.stdout.strip().splitlines()[-1])


def locate_controlplane() -> Path:
    """The bin directory of etcd and the Kubernetes binaries (``make controlplane``)."""
    return locate(BUILD_SCRIPT)


build = locate_controlplane  # the former name, which tests/e2e/node.py still imports


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ControlPlane:
    bin_dir: Path
    workdir: Path
    with_controller_manager: bool = True
    api_port: int = 0
    #: Where the apiserver listens and what it advertises (the ``kubernetes`` Service's
    #: endpoint): loopback for apiserver-only tests, the node's bridge IP for real pods.
    address: str = "127.0.0.1"
    service_cidr: str = "10.0.0.0/24"
    #: More kube-apiserver flags (the real node adds its kubelet address type).
    apiserver_args: list[str] = field(default_factory=list)
    #: kube-controller-manager's controllers. Without nodes the node controllers have
    #: nothing to do; a real node needs nodelifecycle, which lifts the kubelet's
    #: ``node.kubernetes.io/not-ready`` taint once the node is Ready.
    controllers: str = "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route"
    #: Write an audit log (metadata level, JSON lines) to ``audit_log``: the RBAC the
    #: chart grants is checked against what the components' ServiceAccounts really ask.
    audit: bool = False
    #: Nodes that will register, each with its own ``system:node:<name>`` identity and
    #: the apiserver's Node authorizer + NodeRestriction, as on any real cluster: a
    #: kubelet may then read only the ConfigMaps and Secrets of pods bound to it, and
    #: the race between its reads and the authorizer's graph is part of what is tested.
    nodes: tuple[str, ...] = ()
    kubeconfig: Path = field(init=False)
    _procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list, init=False)
    _crds_installed: bool = field(default=False, init=False)

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, token: str | None = None
    ) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        if token:
            cmd += ["--token", token]
        return subprocess.run(cmd + list(args), input=input, text=True, capture_output=True, check=check, timeout=60)

    def install_crds(self) -> None:
        """Our CRDs (crds/), installed once per control plane and Established.

        Server-side apply with forced conflicts, so it is the same operation whichever
        test module asks first; the session-scoped control plane keeps them after that.
        """
        if self._crds_installed:
            return
        from lambdakube import crdgen  # noqa: PLC0415 - keeps `python -m` of this file light

        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crdgen.CRD_DIR))
        names = [f"crd/{build()['metadata']['name']}" for build in crdgen.ALL.values()]
        self.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)
        self._crds_installed = True

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key = pki / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(
            f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n'
            + "".join(f'{node_token(n)},system:node:{n},node-{n},"system:nodes"\n' for n in self.nodes)
        )
        authz = (
            ["--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction"]
            if self.nodes
            else ["--authorization-mode=RBAC"]
        )

        audit_args = []
        if self.audit:
            policy = self.workdir / "audit-policy.yaml"
            # Metadata (who, verb, resource, namespace, response code) of every request,
            # once, when the response is complete.
            policy.write_text(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
                "omitStages: [RequestReceived, ResponseStarted]\n"
                "rules:\n- level: Metadata\n"
            )
            audit_args = [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--audit-log-maxsize=0",
            ]
        etcd_port, etcd_peer = free_port(), free_port()
        self.api_port = self.api_port or free_port(self.address)
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={pki}",
                *authz,
                f"--service-cluster-ip-range={self.service_cidr}",
                f"--service-account-issuer=https://{self.address}:{self.api_port}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--token-auth-file={tokens}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--v=0",
                *audit_args,
                *self.apiserver_args,
            ],
        )
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig_text())
        self._wait_ready()
        if self.with_controller_manager:
            self._spawn(
                "kube-controller-manager",
                [
                    str(self.bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={self._ca_file()}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    f"--controllers={self.controllers}",
                    "--use-service-account-credentials=false",
                    "--concurrent-gc-syncs=5",
                ],
            )
            self._wait_for_default_serviceaccount()
        return self

    def stop_component(self, name: str) -> None:
        """Stop one component early (the node stops the controller-manager before it
        deletes every pod, so that no ReplicaSet puts them back)."""
        for proc_name, proc in self._procs:
            if proc_name == name:
                stop_process(proc)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Start a process that belongs to this cluster: its log is ``<workdir>/<name>.log``,
        it is stopped with the rest, and a dead one fails ``check_alive``."""
        self._spawn(name, argv)
        return self._procs[-1][1]

    def stop(self) -> None:
        # The data is thrown away, so a graceful apiserver drain (~10 s) buys nothing.
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self._procs):
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs.clear()

    # -- details -----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append((name, proc))

    def _ca_file(self) -> Path:
        # kube-apiserver writes a self-signed serving cert whose file also carries its CA.
        return self.workdir / "pki" / "apiserver.crt"

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        as_user: str | None = None,
        content_type: str = "application/strategic-merge-patch+json",
    ) -> tuple:
        """One API request as the admin, or impersonating ``as_user``: (status, JSON body).
        For what kubectl cannot do with the rights alone (its patch reads the object
        first). Custom resources take ``application/merge-patch+json`` patches."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": content_type}
        if as_user:
            headers["Impersonate-User"] = as_user
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method, headers=headers)
        ctx = ssl.create_default_context(cafile=str(self._ca_file()))
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def node_kubeconfig(self, node: str) -> Path:
        """A kubeconfig with ``node``'s own identity (for its kubelet)."""
        path = self.workdir / f"kubeconfig-{node}"
        path.write_text(self._kubeconfig_text(node_token(node)))
        return path

    def _kubeconfig_text(self, token: str = ADMIN_TOKEN) -> str:
        return f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {self.server}
    certificate-authority: {self._ca_file()}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: test
  context: {{cluster: test, user: admin, namespace: default}}
current-context: test
"""

    def check_alive(self) -> None:
        for name, proc in self._procs:
            if proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_ready(self, timeout: float = 90) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            req = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}")

    def _wait_for_default_serviceaccount(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise TimeoutError("kube-controller-manager did not create the default ServiceAccount")


@contextlib.contextmanager
def running(workdir: Path | None = None, **kwargs):
    bin_dir = locate_controlplane()
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="lambdakube-cp-")
        workdir = Path(tmp)
    cp = ControlPlane(bin_dir=bin_dir, workdir=workdir, **kwargs)
    try:
        yield cp.start()
    finally:
        cp.stop()
        if tmp and not os.environ.get("LAMBDAKUBE_KEEP_CLUSTER_DIR"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with running() as cp:
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        print("control plane up; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
