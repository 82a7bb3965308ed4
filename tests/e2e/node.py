"""A real single-node Kubernetes cluster on this machine, for the e2e suite.

The control plane of tests/cluster/controlplane.py (etcd, kube-apiserver,
kube-controller-manager), plus kube-scheduler, kubelet and kube-proxy built by
hack/build-controlplane.sh, CoreDNS built by hack/build-tools.sh, and containerd, runc
and the CNI plugins from Debian (hack/install-node-deps.sh). Images come from
hack/build-node-images.sh and are imported into containerd: nothing is pulled.

Why each piece is here, and not faked:
- a real kubelet + containerd run the real images, probes, volumes and signals;
- kube-proxy makes ClusterIPs work, so the router is invoked through its Service;
- CoreDNS, because a real cluster has it and kopf's in-cluster defaults assumed it.

The node owns its network: a bridge (``lkbr0``, the node IP, the CNI gateway and the
apiserver's address), the pod CIDR on it, the service CIDR routed to it, and a FORWARD
drop to the machine's uplink, so nothing a pod sends can leave the machine. Teardown
leaves the host as it found it: pods deleted through the API while the kubelet runs (so
CNI DEL runs), every process stopped by its own PID, leftover containers and shims of
our own containerd socket removed, mounts under the work dir and our network namespaces
unmounted, the kubelet's cgroups removed, the firewall ruleset and the sysctls restored,
and the bridge deleted.

By hand:  python -m tests.e2e.node      (prints KUBECONFIG; Ctrl-C tears it down)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.controlplane import REPO, ControlPlane, build, free_port
from tests.procs import stop_process

NODE_NAME = "lk-node"
BRIDGE = "lkbr0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
#: A StorageClass with a statically provisioned hostPath volume, for the router's state
#: (``router.persistence``): the node has no dynamic provisioner.
STORAGE_CLASS = "lk-local"
PAUSE_IMAGE = "lambdakube.dev/pause:3.10"
CNI_BIN = Path("/usr/lib/cni")

BUILD_TOOLS = REPO / "hack" / "build-tools.sh"
BUILD_IMAGES = REPO / "hack" / "build-node-images.sh"
MAKE_HINT = "run `make node` (hack/install-node-deps.sh, the node binaries and the images)"

#: Sysctls that the kubelet, kube-proxy or the CNI bridge plugin may change.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)

#: Directories the kubelet creates whatever its --root-dir (the device-plugin socket and
#: the container-log links); removed at teardown when they did not exist before.
HARDCODED_DIRS = ("/var/lib/kubelet", "/var/log/containers")


class NodeError(RuntimeError):
    """The node could not be brought up; the message names the component and its log."""


def run(*argv: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, **kw)


def uplinks() -> list[str]:
    """The interfaces of the machine's default routes: where a FORWARD drop goes."""
    devs = []
    for family in ("-4", "-6"):
        out = run("ip", family, "-j", "route", "show", "default", check=False).stdout or "[]"
        devs += [r["dev"] for r in json.loads(out) if r.get("dev")]
    return sorted(set(devs))


@dataclass
class HostSnapshot:
    """What the node changes on the host, recorded before, so teardown can put it back."""

    sysctls: dict[str, str]
    ruleset: str | None
    netns: set[str]
    cgroups: dict[str, set[str]]
    absent_dirs: list[str]

    @classmethod
    def take(cls) -> HostSnapshot:
        sysctls = {}
        for key in SYSCTLS:
            path = Path("/proc/sys") / key
            if path.exists():
                sysctls[key] = path.read_text().strip()
        ruleset = run("nft", "list", "ruleset").stdout if shutil.which("nft") else None
        return cls(
            sysctls=sysctls,
            ruleset=ruleset,
            netns=_netns(),
            cgroups=_cgroups(),
            absent_dirs=[d for d in HARDCODED_DIRS if not os.path.lexists(d)],
        )

    def restore(self) -> list[str]:
        """Put the host back; returns what could not be restored (for the log)."""
        problems = []
        for cg_dir, before in self.cgroups.items():
            for entry in sorted(_cgroup_dirs(cg_dir) - before, key=len, reverse=True):
                _rmdir_tree(Path(entry), problems)
        if self.ruleset is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
                f.write("flush ruleset\n" + self.ruleset)
            out = run("nft", "-f", f.name, check=False)
            os.unlink(f.name)
            if out.returncode:
                problems.append(f"nft restore: {out.stderr.strip()}")
        for d in self.absent_dirs:
            shutil.rmtree(d, ignore_errors=True)
        for key, value in self.sysctls.items():
            path = Path("/proc/sys") / key
            try:
                if path.exists() and path.read_text().strip() != value:
                    path.write_text(value)
            except OSError as exc:
                problems.append(f"sysctl {key}: {exc}")
        return problems


def _netns() -> set[str]:
    d = Path("/run/netns")
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def _cgroups() -> dict[str, set[str]]:
    """Top-level cgroup dirs of each v1 hierarchy (the kubelet adds ``kubepods``)."""
    root = Path("/sys/fs/cgroup")
    out = {}
    if root.is_dir():
        for ctrl in root.iterdir():
            if ctrl.is_dir() and not ctrl.is_symlink():
                out[str(ctrl)] = _cgroup_dirs(str(ctrl))
    return out


def _cgroup_dirs(ctrl: str) -> set[str]:
    try:
        return {str(p) for p in Path(ctrl).iterdir() if p.is_dir()}
    except OSError:
        return set()


def _rmdir_tree(top: Path, problems: list[str]) -> None:
    """cgroup dirs are removed with rmdir, children first (they hold no files)."""
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError as exc:
            problems.append(f"cgroup {dirpath}: {exc}")


def _mounts_under(prefixes: list[str]) -> list[str]:
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


@dataclass
class RealNode:
    """One node: control plane + containerd + kubelet + kube-proxy + scheduler + CoreDNS."""

    workdir: Path
    images: list[tuple[str, Path]] = field(default_factory=list)
    cp: ControlPlane | None = None
    _snapshot: HostSnapshot | None = None
    _bridge_created: bool = False
    _containerd: subprocess.Popen | None = None

    # -- paths -----------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        assert self.cp is not None
        return self.cp.kubeconfig

    @property
    def containerd_sock(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        assert self.cp is not None
        return self.cp.kubectl(*args, **kw)

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return run(
            "ctr", "--address", str(self.containerd_sock), "--namespace", "k8s.io", *args, check=check, timeout=timeout
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> RealNode:
        self._preflight()
        self._snapshot = HostSnapshot.take()
        with self._phase("network"):
            self._network()
        with self._phase("containerd + image import"):
            self._start_containerd()
            self._import_images()
        with self._phase("control plane"):
            self.cp = ControlPlane(
                bin_dir=self._bin_dir,
                workdir=self.workdir / "cp",
                address=NODE_IP,
                service_cidr=SERVICE_CIDR,
                apiserver_args=["--kubelet-preferred-address-types=InternalIP"],
                controllers="*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                audit=True,
                nodes=(NODE_NAME,),
            ).start()
        with self._phase("coredns + scheduler + kubelet + kube-proxy"):
            self._start_coredns()
            self._start_scheduler()
            self._start_kubelet()
            self._start_kube_proxy()
            self._wait_node_ready()
            self._storage()
            self._wait_service_routing()
        return self

    def stop(self) -> list[str]:
        """Tear everything down; returns what could not be cleaned (also logged)."""
        problems: list[str] = []
        with self._phase("teardown"):
            if self.cp is not None:
                with contextlib.suppress(Exception):
                    self._delete_all_pods(problems)
                self.cp.stop_component("kube-proxy")
                if (self._bin_dir / "kube-proxy").exists():
                    run(str(self._bin_dir / "kube-proxy"), "--cleanup", check=False)
                self.cp.stop()
            self._remove_containers(problems)
            self._stop_containerd(problems)
            for point in _mounts_under(
                [str(self.workdir)]
                + [f"/run/netns/{n}" for n in _netns() - (self._snapshot.netns if self._snapshot else set())]
            ):
                if run("umount", point, check=False).returncode:
                    run("umount", "-l", point, check=False)
            if self._snapshot:
                for name in _netns() - self._snapshot.netns:
                    with contextlib.suppress(OSError):
                        os.unlink(f"/run/netns/{name}")
            if self._bridge_created:
                run("ip", "link", "delete", BRIDGE, check=False)
            if self._snapshot:
                problems += self._snapshot.restore()
        for p in problems:
            print(f"[node] teardown: {p}", file=sys.stderr)
        return problems

    # -- phases ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _phase(self, name: str):
        start = time.monotonic()
        try:
            yield
        finally:
            print(f"[node] {name}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("a real node needs root (containerd, kubelet, a bridge)")
        missing = [
            t
            for t in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "nft", "ip")
            if shutil.which(t) is None
        ]
        missing += [str(CNI_BIN / p) for p in ("bridge", "host-local", "loopback") if not (CNI_BIN / p).exists()]
        if missing:
            raise NodeError(f"missing {', '.join(missing)}: {MAKE_HINT}")
        self._bin_dir = build()
        for b in ("kube-scheduler", "kubelet", "kube-proxy"):
            if not (self._bin_dir / b).exists():
                raise NodeError(f"{b} missing in {self._bin_dir}: run `make controlplane`")
        out = run("bash", str(BUILD_TOOLS), "coredns", timeout=1800)
        self._coredns = Path(out.stdout.strip().splitlines()[-1]) / "coredns"
        if not self.images:
            out = run("bash", str(BUILD_IMAGES), check=False, timeout=1800)
            if out.returncode:
                raise NodeError(f"image build failed ({MAKE_HINT}):\n{out.stderr[-3000:]}")
            self.images = [
                (ref, Path(path)) for ref, path in (line.split() for line in out.stdout.splitlines() if line.strip())
            ]
        for net in (POD_CIDR, SERVICE_CIDR):
            clash = run("ip", "-4", "route", "show", "match", net.split("/")[0]).stdout
            if any(not r.startswith("default") for r in clash.splitlines()):
                raise NodeError(f"{net} is already routed on this machine: {clash.strip()}")
        if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            raise NodeError(f"{BRIDGE} exists already: another node is running (or a teardown was skipped)")

    def _network(self) -> None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        self._bridge_created = True
        run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)
        for dev in uplinks():
            run("iptables", "-I", "FORWARD", "-o", dev, "-j", "DROP")
            run("ip6tables", "-I", "FORWARD", "-o", dev, "-j", "DROP", check=False)
        # Pod -> ClusterIP -> pod on the same bridge: replies must pass conntrack to be
        # un-DNATed, so bridged frames go through iptables.
        for key in ("net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"):
            path = Path("/proc/sys") / key
            if path.exists():
                path.write_text("1")
        cni = self.workdir / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-lambdakube.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "lambdakube",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "dataDir": str(self.workdir / "cni-ipam"),
                                "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP, "rangeStart": "10.244.0.10"}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        }
                    ],
                },
                indent=1,
            )
        )
        (self.workdir / "resolv.conf").write_text("# no upstream: cluster names only\n")

    def _start_containerd(self) -> None:
        d = self.workdir / "containerd"
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{self.containerd_sock}"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj is denied, and every
  # sandbox would die with runc's "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{self.workdir / "cni"}"
""")
        log = open(self.workdir / "containerd.log", "wb")
        self._containerd = subprocess.Popen(
            ["containerd", "--config", str(d / "config.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.workdir / "containerd.pid").write_text(str(self._containerd.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._containerd.poll() is not None:
                raise NodeError(f"containerd exited:\n{self.tail('containerd')}")
            if self.containerd_sock.exists() and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise NodeError(f"containerd not ready in 30 s:\n{self.tail('containerd')}")

    def _import_images(self) -> None:
        for ref, archive in self.images:
            out = self.ctr("images", "import", "--no-unpack", str(archive), check=False)
            if out.returncode:
                raise NodeError(f"importing {ref} from {archive}: {out.stderr}")
        have = self.ctr("images", "ls", "-q").stdout.split()
        for ref, _ in self.images:
            full = ref if "." in ref.split("/")[0] else f"docker.io/{ref}"
            if full not in have:
                raise NodeError(f"{full} not in containerd after import (have {have})")

    def _start_coredns(self) -> None:
        ready_port, health_port = free_port(), free_port()
        corefile = self.workdir / "Corefile"
        # No `forward`: a name outside the cluster gets no answer at all.
        corefile.write_text(f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig} test
        pods insecure
    }}
    cache 5
}}
""")
        self.cp.spawn("coredns", [str(self._coredns), "-conf", str(corefile)])
        self._wait_http(f"http://127.0.0.1:{ready_port}/ready", "coredns")

    def _start_scheduler(self) -> None:
        kc = str(self.kubeconfig)
        self.cp.spawn(
            "kube-scheduler",
            [
                str(self._bin_dir / "kube-scheduler"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )

    def _start_kubelet(self) -> None:
        root = self.workdir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kubelet-config.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": NODE_IP,
                    "port": free_port(NODE_IP),
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": free_port(),
                    "cgroupDriver": "cgroupfs",
                    "failCgroupV1": False,
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
                    "clusterDNS": [NODE_IP],
                    "clusterDomain": CLUSTER_DOMAIN,
                    "resolvConf": str(self.workdir / "resolv.conf"),
                    "podLogsDir": str(self.workdir / "pod-logs"),
                    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                    "authorization": {"mode": "AlwaysAllow"},
                    # Imported images must never be garbage-collected: nothing can pull them back.
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    "oomScoreAdj": 0,  # see kube-proxy's --oom-score-adj
                    "maxPods": 250,
                    "serializeImagePulls": False,
                    "podCIDR": POD_CIDR,
                    "registerNode": True,
                    "localStorageCapacityIsolation": True,
                    "syncFrequency": "10s",
                    "fileCheckFrequency": "5s",
                }
            )
        )
        self.cp.spawn(
            "kubelet",
            [
                str(self._bin_dir / "kubelet"),
                f"--kubeconfig={self.cp.node_kubeconfig(NODE_NAME)}",
                f"--config={config}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        self.cp.spawn(
            "kube-proxy",
            [
                str(self._bin_dir / "kube-proxy"),
                f"--kubeconfig={self.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_CIDR}",
                f"--nodeport-addresses={NODE_IP}/32",
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--healthz-bind-address=127.0.0.1:{free_port()}",
                # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj is denied.
                "--oom-score-adj=0",
                "--v=1",
            ],
        )

    def _wait_node_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cp.check_alive()
            out = self.kubectl(
                "get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
            )
            if out.stdout.strip() == "True":
                return
            time.sleep(0.3)
        raise NodeError(f"node not Ready in {timeout} s:\n{self.tail('cp/kubelet')}")

    def _wait_service_routing(self, timeout: float = 60) -> None:
        """The ``kubernetes`` Service answers on its ClusterIP: kube-proxy's rules are in."""
        ip = self.kubectl(
            "get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
        ).stdout.strip()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cp.check_alive()
            with contextlib.suppress(OSError), socket.create_connection((ip, 443), timeout=1):
                return
            time.sleep(0.3)
        raise NodeError(f"ClusterIP {ip}:443 unreachable after {timeout} s:\n{self.tail('cp/kube-proxy')}")

    def _storage(self) -> None:
        """A StorageClass and a hostPath volume for the router's state PVC."""
        path = self.workdir / "volumes" / "router-state"
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 10001, 10001)
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "storage.k8s.io/v1",
                            "kind": "StorageClass",
                            "metadata": {"name": STORAGE_CLASS},
                            "provisioner": "kubernetes.io/no-provisioner",
                            "volumeBindingMode": "Immediate",
                            "reclaimPolicy": "Retain",
                        },
                        {
                            "apiVersion": "v1",
                            "kind": "PersistentVolume",
                            "metadata": {"name": "lk-router-state"},
                            "spec": {
                                "capacity": {"storage": "1Gi"},
                                "accessModes": ["ReadWriteOnce"],
                                "storageClassName": STORAGE_CLASS,
                                "persistentVolumeReclaimPolicy": "Retain",
                                "hostPath": {"path": str(path), "type": "Directory"},
                            },
                        },
                    ],
                }
            ),
        )

    # -- teardown details ------------------------------------------------------------

    def _delete_all_pods(self, problems: list[str], timeout: float = 60) -> None:
        """Delete every pod through the API while the kubelet runs, so that CNI DEL and
        volume teardown happen; the controller-manager goes first so nothing returns."""
        self.cp.stop_component("kube-controller-manager")
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.kubectl("get", "pods", "-A", "-o", "name", check=False).stdout.split()
            if not left:
                return
            time.sleep(0.5)
        problems.append(f"pods still present after {timeout} s: {left[:5]}")

    def _remove_containers(self, problems: list[str]) -> None:
        if self._containerd is None or self._containerd.poll() is not None:
            return
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            self.ctr("tasks", "rm", "-f", task, check=False)
        for c in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            if self.ctr("containers", "rm", c, check=False).returncode:
                problems.append(f"container {c} not removed")

    def _stop_containerd(self, problems: list[str]) -> None:
        if self._containerd is not None:
            stop_process(self._containerd, timeout=10)
        # Shims outlive containerd by design; only those serving our socket are ours.
        needle = str(self.containerd_sock).encode()
        for pid_dir in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                cmdline = (pid_dir / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline and needle in cmdline:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                    problems.append(f"killed leftover shim {pid_dir.name}")

    # -- helpers ---------------------------------------------------------------------

    def tail(self, name: str, n: int = 3000) -> str:
        """The last ``n`` characters of a component's log (``cp/kubelet``, ``containerd``)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else f"(no {path})"

    def _wait_http(self, url: str, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cp.check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise NodeError(f"{name} not ready at {url}:\n{self.tail('cp/' + name)}")


@contextlib.contextmanager
def running(keep_dir: bool = False):
    """A node for the duration of the block; torn down also when start-up fails."""
    workdir = Path(tempfile.mkdtemp(prefix="lk-node-", dir="/tmp"))
    node = RealNode(workdir=workdir)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        if not (keep_dir or os.environ.get("LAMBDAKUBE_KEEP_CLUSTER_DIR")):
            shutil.rmtree(workdir, ignore_errors=True)


def _main() -> None:
    # Started in the background by a non-interactive shell, SIGINT is ignored: restore it,
    # and treat SIGTERM the same, so either tears the node down.
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with running() as n:
        print(f"export KUBECONFIG={n.kubeconfig}", flush=True)
        print("node up; Ctrl-C (or SIGTERM) tears it down", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    _main()
