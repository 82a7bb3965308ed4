"""The kubernetes backend against a real kube-apiserver (tests/cluster/controlplane.py).

There is no kubelet in this control plane: pods are stored and never run. So the test
plays kubelet itself: when an environment pod is created (by the router, by the operator
running in-process, or by the test), the test starts a real ``lambdakube_runtime``
process on 127.0.0.1 configured *from the pod spec* (generic pods: without a function),
then annotates the pod with ``lambdakube.dev/address`` and patches its status to
Running + Ready. The router must then send the invocation to that runtime.
"""

from __future__ import annotations

import asyncio
import uuid
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from lambdakube.models import DEFAULT_RUNTIME_IMAGE, FunctionSpec
from lambdakube.resources import (
    env_token,
    environment_pod,
    generic_pod,
    labels,
    new_env_id,
    pod_address,
    spec_hash,
)
from lambdakube_router import keys
from lambdakube_router.app import init_app
from lambdakube_router.backends.base import Backend, FunctionRef
from lambdakube_router.backends.kubernetes import KubernetesBackend
from lambdakube_operator.initializer import Initializer
from tests.operator.conftest import TEST_CONFIG
from tests.router.conftest import Router, function, kubectl, router_config, snapshot

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]

HELLO = """
import os
count = 0

def handler(event, context):
    global count
    count += 1
    return {"hello": event.get("name"), "count": count, "env": os.environ["LAMBDAKUBE_ENV_ID"]}
"""

BROKEN = """
raise ImportError("no such dependency: left-pad")

def handler(event, context):
    return {}
"""


class FakeKubelet:
    """Plays kubelet for one namespace: runs pods' runtimes as local processes (on
    127.0.0.1, configured from the pod spec: env values and the downward-API env id),
    annotates the pod with ``lambdakube.dev/address``, patches its status Running, and
    then Ready once its readiness probe's path answers 200 (as the kubelet's probe
    would: a pod of an inline-code function turns Ready only after its ``/init``).
    ``auto()`` does that for every new pod of the namespace (generic ones included)."""

    def __init__(self, cp, namespace: str, tmp: Path) -> None:
        from kubernetes import client, config

        self.cp = cp
        self.namespace = namespace
        self.tmp = tmp
        self.api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.procs: dict[str, subprocess.Popen] = {}
        self.probes: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None

    async def core_patch_pod(self, namespace: str, name: str, patch: dict) -> bool:
        await asyncio.to_thread(self.core.patch_namespaced_pod, name, namespace, patch)
        return True

    async def pods(self, selector: str | None = None) -> list[dict]:
        def call():
            resp = self.core.list_namespaced_pod(self.namespace, label_selector=selector or "", _preload_content=False)
            return json.loads(resp.data)["items"]

        items = await asyncio.to_thread(call)
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    async def wait_pod(self, function_name: str, n: int = 1, timeout: float = 30) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            items = await self.pods(f"lambdakube.dev/function={function_name}")
            if len(items) >= n:
                return items
            assert asyncio.get_running_loop().time() < deadline, "no pod was created"
            await asyncio.sleep(0.1)

    async def run(self, pod: dict, report: bool = True) -> int:
        """Run the pod's runtime; ``report=False``: never write its address or status
        (a kubelet whose status write has not come yet: only an announce can tell)."""
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        env = {}
        for e in container["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
                env[e["name"]] = name
            elif e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP":
                env[e["name"]] = "127.0.0.1"  # where this fake kubelet runs pods
        env.update(
            PATH=os.environ.get("PATH", "/usr/bin:/bin"), PYTHONPATH=str(REPO / "runtime-image"), PYTHONUNBUFFERED="1"
        )
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as out:  # a file, not a pipe: a full pipe would block it
            proc = subprocess.Popen(
                [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        while True:
            head = log_path.read_bytes().split(b"\n", 1)
            if len(head) == 2:
                break
            assert proc.poll() is None, log_path.read_text()
            await asyncio.sleep(0.02)
        assert head[0].startswith(b"LAMBDAKUBE_LISTENING port="), head[0]
        port = int(head[0].split(b"=")[1])
        if not report:
            return port
        await asyncio.to_thread(
            self.core.patch_namespaced_pod,
            name,
            self.namespace,
            {"metadata": {"annotations": {"lambdakube.dev/address": f"127.0.0.1:{port}"}}},
        )
        await self._set_status(name, ready=False)
        probe = container["readinessProbe"]["httpGet"]["path"]
        self.probes[name] = asyncio.get_running_loop().create_task(self._probe(name, port, probe))
        return port

    async def _set_status(self, name: str, ready: bool) -> None:
        flag = "True" if ready else "False"
        status = {
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.10",
                "conditions": [{"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag}],
            }
        }
        try:  # once the address is known the router may already have deleted the pod
            await asyncio.to_thread(self.core.patch_namespaced_pod_status, name, self.namespace, status)
        except Exception:  # noqa: BLE001
            pass

    async def _probe(self, name: str, port: int, path: str) -> None:
        async with aiohttp.ClientSession() as http:
            while self.procs.get(name) is not None and self.procs[name].poll() is None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                        if resp.status == 200:
                            await self._set_status(name, ready=True)
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    def auto(self) -> None:
        async def loop():
            while True:
                try:
                    pods = await self.pods()
                except Exception:  # noqa: BLE001 - the namespace may be going away
                    pods = []
                names = {p["metadata"]["name"] for p in pods}
                for pod in pods:
                    if pod["metadata"]["name"] not in self.procs:
                        try:
                            await self.run(pod)
                        except Exception:  # noqa: BLE001 - deleted meanwhile: skip it
                            pass
                for gone in [n for n in self.procs if n not in names]:
                    self.procs.pop(gone).kill()
                await asyncio.sleep(0.1)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        tasks = [t for t in [self._task, *self.probes.values()] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proc in self.procs.values():
            proc.kill()
            proc.wait(timeout=10)
        self.api.close()


@pytest.fixture
async def kubelet(control_plane, namespace, tmp_path):
    k = FakeKubelet(control_plane, namespace, tmp_path / "kubelet")
    k.tmp.mkdir()
    yield k
    await k.close()


async def make_router(aiohttp_client, tmp_path, control_plane, namespace, *docs, **backend_kw) -> Router:
    for doc in docs:
        await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    backend = KubernetesBackend(kubeconfig=str(control_plane.kubeconfig), **backend_kw)
    config = router_config(tmp_path, *docs, backend=backend, namespace=namespace)
    app = await init_app(config)
    return Router(await aiohttp_client(app), app, config)


def contains(actual, expected, path="") -> None:
    """``expected`` is a subset of ``actual`` (the API server adds defaults to a pod)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            contains(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


async def test_cold_start_creates_a_pod_and_reuses_it(
    control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """The on-demand pod is the shared builder's ``environment_pod`` (spec-hash label,
    no code volume, hardened security context), and its runtime got the code from the
    router's ``POST /init`` (no ConfigMap exists, no operator runs here)."""
    doc = function("hello", HELLO, namespace=namespace)
    router = await make_router(aiohttp_client, tmp_path, control_plane, namespace, doc)
    uid = (
        await kubectl(control_plane, "get", "function", "hello", "-n", namespace, "-o", "jsonpath={.metadata.uid}")
    ).stdout
    call = asyncio.ensure_future(router.invoke_json("hello", {"name": "k8s"}))
    [pod] = await kubelet.wait_pod("hello")
    spec = FunctionSpec.model_validate(doc["spec"])
    expected = environment_pod(
        function_name="hello",
        namespace=namespace,
        function_uid=uid,
        spec=spec,
        env_id=pod["metadata"]["name"],
        role=labels.ROLE_ON_DEMAND,
        runtime_image=DEFAULT_RUNTIME_IMAGE,
        managed_by=labels.ROUTER_NAME,
        token=env_token.token_of(pod),  # the pod's own, random
    )
    expected.pop("apiVersion"), expected.pop("kind")  # not in the items of a list
    contains(pod, expected)
    assert pod["metadata"]["labels"][labels.SPEC_HASH] == spec_hash(spec)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert "LAMBDAKUBE_INLINE_CODE" not in env and "LAMBDAKUBE_HANDLER" not in env
    await kubelet.run(pod)

    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 200, body
    assert body["hello"] == "k8s" and body["env"] == pod["metadata"]["name"]
    assert headers["X-Cold-Start"] == "true" and headers["X-Environment-Source"] == "fresh"
    cms = json.loads(
        (await kubectl(control_plane, "get", "configmaps", "-n", namespace, "-o", "json", "-l", labels.FUNCTION)).stdout
    )["items"]
    assert cms == []
    status, headers, body = await router.invoke_json("hello", {"name": "again"})
    assert status == 200 and headers["X-Cold-Start"] == "false" and body["count"] == 2

    await router.client.close()  # router shutdown deletes its pods
    out = await kubectl(control_plane, "get", "pods", "-n", namespace, "-o", "name")
    assert out.stdout.strip() == ""


async def test_a_fresh_pod_announces_itself_before_the_kubelet_reports_it(
    control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """The kubelet writes a new pod's IP only at its next status sync; the runtime
    announces its address (with the pod's token) and the cold start goes on from there.
    Here the pod's status never gets an address: only the announce can tell. A wrong
    token, an unknown pod and an announce from another IP are refused."""
    from lambdakube_router.announce_api import PATH

    router = await make_router(
        aiohttp_client, tmp_path, control_plane, namespace, function("hello", HELLO, namespace=namespace)
    )
    backend = router.app[keys.ENGINE].backend
    backend.announce_url = router.url(PATH)
    call = asyncio.ensure_future(router.invoke_json("hello", {"name": "announced"}))
    [pod] = await kubelet.wait_pod("hello")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LAMBDAKUBE_ANNOUNCE_URL"] == router.url(PATH) and len(env["LAMBDAKUBE_ANNOUNCE_TOKEN"]) >= 32
    name = pod["metadata"]["name"]

    async def announce(body: dict) -> int:
        async with router.client.session.post(router.url(PATH), json=body) as resp:
            return resp.status

    good = {"envId": name, "address": "127.0.0.1:1", "token": env["LAMBDAKUBE_ANNOUNCE_TOKEN"]}
    assert await announce({**good, "token": "x" * 32}) == 403
    assert await announce({**good, "envId": "hello-d00000000"}) == 403
    assert await announce({**good, "address": "10.0.0.9:8080"}) == 403  # not the peer's IP
    assert await announce({"envId": name}) == 400
    assert backend.announces == {"accepted": 0, "refused": 3}

    await kubelet.run(pod, report=False)  # the runtime announces itself, nothing else does
    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 200, body
    assert body["hello"] == "announced" and body["env"] == name
    assert headers["X-Environment-Source"] == "fresh"
    assert backend.announces == {"accepted": 1, "refused": 3}
    assert await announce(good) == 403  # started: no longer pending
    metrics = await (await router.client.get("/metrics")).text()
    assert 'lambdakube_environment_announces_total{result="accepted"} 1.0' in metrics


async def test_init_error_reported_and_pod_deleted(control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path):
    router = await make_router(
        aiohttp_client, tmp_path, control_plane, namespace, function("broken", BROKEN, namespace=namespace)
    )
    call = asyncio.ensure_future(router.invoke_json("broken", {}))
    [pod] = await kubelet.wait_pod("broken")
    await kubelet.run(pod)
    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 502 and headers["x-amzn-ErrorType"] == "InitError"
    assert "left-pad" in body["errorMessage"]
    # the failed environment's pod is deleted
    out = await kubectl(control_plane, "get", "pods", "-n", namespace, "-o", "name")
    assert out.stdout.strip() == ""


async def test_a_fresh_pod_deleted_while_starting_fails_the_start(
    control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """The start follows its pod through the router's pod cache (no watch of its own): a
    pod that disappears after the cache showed it fails the start at once, long before
    the init timeout, and no pod is left behind."""
    router = await make_router(
        aiohttp_client, tmp_path, control_plane, namespace, function("hello", HELLO, namespace=namespace)
    )
    backend = router.app[keys.ENGINE].backend
    call = asyncio.ensure_future(router.invoke_json("hello", {}))
    [pod] = await kubelet.wait_pod("hello")
    name = pod["metadata"]["name"]
    await router.eventually(lambda: backend.cache.get(namespace, name) is not None, timeout=30)
    await asyncio.to_thread(kubelet.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)
    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 502 and "deleted while starting" in body["errorMessage"], body
    assert await kubelet.pods("lambdakube.dev/function=hello") == []


async def test_kubernetes_source_follows_function_objects(control_plane, namespace, crds, aiohttp_client, tmp_path):
    """Functions come from the API server (watch); environments are local processes."""
    from lambdakube_router.sources import KubernetesSource

    await kubectl(
        control_plane,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(function("hello", HELLO, namespace=namespace)),
    )
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=[namespace], watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    router = Router(await aiohttp_client(app), app, config)
    status, _, body = await router.invoke_json("hello", {"name": "from-api"})
    assert status == 200 and body["hello"] == "from-api"
    engine = app[keys.ENGINE]
    assert engine.get(namespace, "hello").ref.uid  # the object's UID, for owner references

    await kubectl(
        control_plane,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(function("second", HELLO, namespace=namespace)),
    )
    await router.eventually(lambda: engine.get(namespace, "second") is not None, timeout=20)
    await kubectl(control_plane, "delete", "function", "hello", "-n", namespace)
    await router.eventually(lambda: engine.get(namespace, "hello") is None, timeout=20)
    status, _, _ = await router.invoke_json("hello", {})
    assert status == 404


async def test_kubernetes_source_watches_each_listed_namespace(control_plane, crds):
    """A namespaced install lists several namespaces (one Role each, no cluster-wide
    read): the source must follow all of them and nothing outside them."""
    from lambdakube_router.sources import KubernetesSource

    watched = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    other = f"w-{uuid.uuid4().hex[:8]}"
    for ns in (*watched, other):
        await kubectl(control_plane, "create", "namespace", ns)
    try:
        for ns in (*watched, other):
            await kubectl(
                control_plane,
                "apply",
                "-n",
                ns,
                "-f",
                "-",
                input=yaml.safe_dump(function("hello", HELLO, namespace=ns)),
            )
        source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespaces=watched, watch_timeout=5)
        snap = await source.initial()
        assert sorted(snap.functions) == sorted((ns, "hello") for ns in watched)

        snapshots = []
        task = asyncio.create_task(source.run(snapshots.append))
        try:
            await kubectl(
                control_plane,
                "apply",
                "-n",
                watched[1],
                "-f",
                "-",
                input=yaml.safe_dump(function("second", HELLO, namespace=watched[1])),
            )
            await kubectl(control_plane, "delete", "function", "hello", "-n", watched[0])
            want = {(watched[1], "hello"), (watched[1], "second")}
            deadline = asyncio.get_running_loop().time() + 20
            while not (snapshots and set(snapshots[-1].functions) == want):
                assert asyncio.get_running_loop().time() < deadline, (
                    f"last snapshot: {snapshots and sorted(snapshots[-1].functions)}"
                )
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
    finally:
        for ns in (*watched, other):
            await kubectl(control_plane, "delete", "namespace", ns, "--wait=false", check=False)


async def test_examples_are_accepted_by_the_crd_schema(control_plane, namespace, crds):
    """examples/*.yaml are valid for both modes: the local registry (see
    test_router_manifests) and the API server's CRD schema + CEL rules."""
    out = await kubectl(
        control_plane, "apply", "-n", namespace, "--dry-run=server", "-f", str(REPO / "examples"), check=False
    )
    assert out.returncode == 0, out.stderr
    for name in ("hello", "provisioned", "reserved", "async-dlq"):
        assert f"function.lambdakube.dev/{name}" in out.stdout
    assert "eventsourcemapping.lambdakube.dev/orders" in out.stdout


# -- claims: provisioned pods (the operator's), generic pods, draining ---------------------


async def fn_uid(cp, namespace: str, name: str) -> str:
    return (await kubectl(cp, "get", "function", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}")).stdout


async def test_cold_start_claims_a_generic_pod(start_operator, namespace, crds, kubelet, aiohttp_client, tmp_path):
    """With the operator (in-process, ``--generic-pool-size 2``) keeping generic pods,
    which the test runs as generic runtimes, a cold start claims one: relabelled for the
    function with an owner reference, specialised by ``POST /init`` (source ``generic``);
    the operator then creates a replacement generic pod, and the claimed pod is never
    handed out as generic again."""
    start_operator(generic_pool_size=2)
    cp = kubelet.cp
    kubelet.auto()
    generic_sel = "lambdakube.dev/role=generic"

    async def ready_generic(n: int):
        pods = await kubelet.pods(generic_sel)
        ready = [
            p
            for p in pods
            if p["metadata"]["name"] in kubelet.procs
            and (p["metadata"].get("annotations") or {}).get("lambdakube.dev/address")
        ]
        return ready if len(pods) == n and len(ready) == n else None

    router = await make_router(
        aiohttp_client,
        tmp_path,
        cp,
        namespace,
        function("hello", HELLO, namespace=namespace),
        image=TEST_CONFIG.runtime_image,
    )
    before = await router.eventually(lambda: ready_generic(2), timeout=30, interval=0.1)
    uid = await fn_uid(cp, namespace, "hello")

    status, headers, body = await router.invoke_json("hello", {"name": "g"})
    assert status == 200, body
    assert headers["X-Cold-Start"] == "true" and headers["X-Environment-Source"] == "generic"
    claimed = body["env"]
    assert claimed in {p["metadata"]["name"] for p in before}
    [pod] = await kubelet.pods(f"lambdakube.dev/environment={claimed}")
    meta = pod["metadata"]
    assert meta["labels"][labels.ROLE] == labels.ROLE_ON_DEMAND
    assert meta["labels"][labels.FUNCTION] == "hello"
    assert meta["labels"][labels.SPEC_HASH] == spec_hash(FunctionSpec.model_validate(function("hello", HELLO)["spec"]))
    assert [(o["kind"], o["name"], o["uid"]) for o in meta["ownerReferences"]] == [("Function", "hello", uid)]
    status, headers, body = await router.invoke_json("hello", {"name": "again"})
    assert (status, headers["X-Cold-Start"], body["env"], body["count"]) == (200, "false", claimed, 2)

    # The operator refills the pool; the claimed pod is not generic any more.
    after = await router.eventually(lambda: ready_generic(2), timeout=30, interval=0.1)
    assert claimed not in {p["metadata"]["name"] for p in after}
    assert {p["metadata"]["name"] for p in after} - {p["metadata"]["name"] for p in before}


async def test_concurrent_claims_of_one_generic_pod(control_plane, namespace, crds, kubelet):
    """Two routers claim the same generic pod (listed at the same resourceVersion) at
    once: the resourceVersion precondition lets exactly one win. A claimed pod is never
    claimed again (it is no longer listed as generic, and its old version is stale)."""
    cp = control_plane
    doc = function("hello", HELLO, namespace=namespace)
    await kubectl(cp, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    uid = await fn_uid(cp, namespace, "hello")
    body = generic_pod(
        namespace=namespace, env_id=new_env_id("lk-generic", labels.ROLE_GENERIC), runtime_image=DEFAULT_RUNTIME_IMAGE
    )
    await asyncio.to_thread(kubelet.core.create_namespaced_pod, namespace, body)
    [listed] = await kubelet.pods("lambdakube.dev/role=generic")
    ref, spec = FunctionRef(namespace, "hello", uid), FunctionSpec.model_validate(doc["spec"])
    a = KubernetesBackend(kubeconfig=str(cp.kubeconfig))
    b = KubernetesBackend(kubeconfig=str(cp.kubeconfig))
    try:
        won = await asyncio.gather(*(r.claim_generic_pod(ref, spec, uid, listed) for r in (a, b)))
        assert sorted(won) == [False, True]
        [now] = await kubelet.pods(f"lambdakube.dev/environment={body['metadata']['name']}")
        assert now["metadata"]["labels"][labels.FUNCTION] == "hello"
        # the loser retries with what it listed: stale; the winner never re-claims its own
        loser, winner = (a, b) if won[1] else (b, a)
        assert not await loser.claim_generic_pod(ref, spec, uid, listed)
        assert not await winner.claim_generic_pod(ref, spec, uid, now)
        assert await loser._start_generic(ref, spec, uid) is None  # nothing generic is left
    finally:
        await a.close()
        await b.close()


async def test_provisioned_pods_are_the_operators_and_the_router_claims_them(
    start_operator, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """provisionedConcurrency 2 with the operator and a router on the kubernetes backend:
    exactly 2 provisioned pods exist (the router creates none), the router's first
    request is warm on one of them, and after a spec change the router leases only
    environments of the new spec hash."""

    start_operator()
    cp = kubelet.cp
    kubelet.auto()
    doc = function("prov", HELLO, namespace=namespace, provisionedConcurrency=2)
    router = await make_router(aiohttp_client, tmp_path, cp, namespace, doc, image=TEST_CONFIG.runtime_image)
    pool = router.pool("prov", namespace)
    await router.eventually(lambda: pool.counts()["idle"] == 2, timeout=30, interval=0.05)
    prov = await kubelet.pods("lambdakube.dev/function=prov")
    assert len(prov) == 2
    assert {p["metadata"]["labels"][labels.ROLE] for p in prov} == {labels.ROLE_PROVISIONED}
    assert {p["metadata"]["labels"][labels.MANAGED_BY] for p in prov} == {labels.OPERATOR_NAME}
    status, headers, body = await router.invoke_json("prov", {"name": "p"})
    assert status == 200, body
    assert (headers["X-Cold-Start"], headers["X-Environment-Source"]) == ("false", "provisioned")
    assert body["env"] in {p["metadata"]["name"] for p in prov}
    assert len(await kubelet.pods("lambdakube.dev/function=prov")) == 2  # still not 4

    # Spec change: the operator rolls the provisioned pods; the router follows.
    changed = function("prov", HELLO, namespace=namespace, provisionedConcurrency=2, env={"V": "2"})
    new_hash = spec_hash(FunctionSpec.model_validate(changed["spec"]))
    await kubectl(cp, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(changed))
    router.app[keys.ENGINE].apply(snapshot(changed))

    async def new_ones():
        pods = await kubelet.pods(f"lambdakube.dev/function=prov,{labels.SPEC_HASH}={new_hash}")
        return {p["metadata"]["name"] for p in pods} if pool.counts()["idle"] == 2 else None

    fresh = await router.eventually(new_ones, timeout=30, interval=0.05)
    assert {e.env_id for e in pool.envs.values()} <= fresh
    for _ in range(3):
        status, headers, body = await router.invoke_json("prov", {"name": "p"})
        assert status == 200 and body["env"] in fresh, body


async def test_draining_environments_are_not_leased_and_stopped(
    control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """An environment whose pod the operator labels ``draining`` (a rollout) is not
    leased any more and is stopped once idle (its provisioned pod deleted); the router
    then claims the next provisioned pod. The operator's pods are built here by hand
    with the shared builder and get their code from the operator's own ``/init``
    driver (no operator runs)."""
    cp = control_plane
    kubelet.auto()
    doc = function("drain", HELLO, namespace=namespace, provisionedConcurrency=1)
    spec = FunctionSpec.model_validate(doc["spec"])
    router = await make_router(aiohttp_client, tmp_path, cp, namespace, doc)
    uid = await fn_uid(cp, namespace, "drain")

    initializer = Initializer(kubelet.core_patch_pod)

    async def provision() -> str:
        name = new_env_id("drain", labels.ROLE_PROVISIONED)
        body = environment_pod(
            function_name="drain",
            namespace=namespace,
            function_uid=uid,
            spec=spec,
            env_id=name,
            role=labels.ROLE_PROVISIONED,
            runtime_image=DEFAULT_RUNTIME_IMAGE,
        )
        await asyncio.to_thread(kubelet.core.create_namespaced_pod, namespace, body)

        async def address():
            pods = await kubelet.pods(f"{labels.ENVIRONMENT}={name}")
            return pods and pod_address(pods[0])

        where = await router.eventually(address, timeout=30)
        initializer.sync(namespace, "drain", spec, [(name, where, env_token.token_of(body))], {name})
        return name

    first = await provision()
    pool = router.pool("drain", namespace)
    await router.eventually(lambda: first in pool.envs and pool.counts()["idle"] == 1, timeout=30)
    status, headers, body = await router.invoke_json("drain", {})
    assert (status, headers["X-Environment-Source"], body["env"]) == (200, "provisioned", first)

    await kubectl(cp, "label", "pod", "-n", namespace, first, "lambdakube.dev/draining=true")
    await router.eventually(lambda: first not in pool.envs, timeout=30)
    await router.eventually(lambda: _gone(kubelet, first), timeout=30)  # the router deleted it
    second = await provision()
    await router.eventually(lambda: second in pool.envs and pool.counts()["idle"] == 1, timeout=30)
    status, headers, body = await router.invoke_json("drain", {})
    assert (status, headers["X-Environment-Source"], body["env"]) == (200, "provisioned", second)
    await initializer.close()


async def _gone(kubelet, name: str) -> bool:
    return not await kubelet.pods(f"lambdakube.dev/environment={name}")


# -- the pool's side of draining and releasing (no cluster: a fake backend) --------------


class FakeBackend(Backend):
    """Starts nothing; reports draining for the env ids in ``draining``."""

    def __init__(self) -> None:
        self.draining: set[str] = set()
        self.stopped: list[str] = []
        self.released: list[str] = []
        self.n = 0
        self._stops = asyncio.Condition()

    async def until_stopped(self, *env_ids: str, timeout: float = 10) -> None:
        """Until every one of ``env_ids`` was stopped (woken by each stop, no sleep)."""
        async with self._stops:
            await asyncio.wait_for(self._stops.wait_for(lambda: set(env_ids) <= set(self.stopped)), timeout)

    async def start(self, fn, spec, env_id, provisioned):
        from lambdakube_router.backends.base import EnvironmentHandle

        self.n += 1
        return EnvironmentHandle(address="127.0.0.1:1", env_id=f"env-{self.n}", init_duration=0)

    def is_draining(self, handle) -> bool:
        return handle.env_id in self.draining

    async def stop(self, handle) -> None:
        self.stopped.append(handle.env_id)
        async with self._stops:
            self._stops.notify_all()

    async def release(self, handle) -> None:
        self.released.append(handle.env_id)

    async def close(self) -> None:
        pass


async def test_pool_skips_draining_environments_and_releases_provisioned_on_close():
    from lambdakube_router.pool import Pool

    backend = FakeBackend()
    spec = FunctionSpec.model_validate({**function("f", HELLO)["spec"], "provisionedConcurrency": 1})
    pool = Pool(FunctionRef("ns", "f"), spec, backend, take_token=lambda now: None)
    pool.ensure_provisioned()
    for _ in range(100):
        if pool.counts()["idle"] == 1:
            break
        await asyncio.sleep(0.01)
    lease = await pool.lease(5)
    on_demand = await pool.lease(5)  # spill-over: a second env
    assert lease.env.provisioned and not on_demand.env.provisioned
    backend.draining.add(on_demand.env.env_id)
    pool.release(on_demand.env)  # released while draining: retired, not idle
    pool.release(lease.env)
    backend.draining.add(lease.env.env_id)  # idle, then drained: never leased again
    again = await pool.lease(5)
    assert again.env.env_id not in backend.draining
    await backend.until_stopped(on_demand.env.env_id, lease.env.env_id)
    pool.release(again.env)
    await pool.close()
    # the provisioned env that replaced the drained one goes back, not stopped
    assert backend.released and not set(backend.released) & set(backend.stopped)


async def test_rollout_is_surge_first_and_old_provisioned_pods_never_serve_new_requests(
    start_operator, namespace, crds, kubelet, aiohttp_client, tmp_path
):
    """A spec change with provisionedConcurrency 2, the operator in-process: the router
    stops leasing the old-hash provisioned environments at once (every request after it
    saw the new spec runs the new code: on-demand until new provisioned pods are claimed)
    but does not delete those pods itself: it gives them back, the operator creates the
    new ones first and labels the old ones draining once the new ones are Ready; only a
    draining pod is ever deleted. The function ends with exactly 2 new-hash provisioned
    pods and no old one."""

    start_operator()
    cp = kubelet.cp
    kubelet.auto()
    doc = function("roll", HELLO, namespace=namespace, provisionedConcurrency=2)
    router = await make_router(aiohttp_client, tmp_path, cp, namespace, doc, image=TEST_CONFIG.runtime_image)
    pool = router.pool("roll", namespace)
    await router.eventually(lambda: pool.counts()["idle"] == 2, timeout=30, interval=0.05)
    old = {p["metadata"]["name"] for p in await kubelet.pods("lambdakube.dev/function=roll")}
    assert len(old) == 2

    # Every pod delete by the router's backend, with the pod's labels at that moment.
    backend = pool.backend
    deletes: list[tuple[str, dict | None]] = []
    real_delete = backend._delete

    async def spy_delete(ns: str, name: str) -> None:
        def read():
            try:
                return kubelet.core.read_namespaced_pod(name, ns).metadata.labels or {}
            except Exception:  # noqa: BLE001 - gone already
                return None

        deletes.append((name, await asyncio.to_thread(read)))
        await real_delete(ns, name)

    backend._delete = spy_delete

    changed = function("roll", HELLO, namespace=namespace, provisionedConcurrency=2, env={"V": "2"})
    new_hash = spec_hash(FunctionSpec.model_validate(changed["spec"]))
    await kubectl(cp, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(changed))
    router.app[keys.ENGINE].apply(snapshot(changed))  # from here on: the new code only

    async def provisioned_by_hash() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for p in await kubelet.pods(f"lambdakube.dev/function=roll,{labels.ROLE}={labels.ROLE_PROVISIONED}"):
            out.setdefault(p["metadata"]["labels"][labels.SPEC_HASH], set()).add(p["metadata"]["name"])
        return out

    served: list[tuple[str, str]] = []
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        results = await asyncio.gather(*(router.invoke_json("roll", {"name": "r"}) for _ in range(2)))
        for status, headers, body in results:
            assert status == 200, body
            assert body["env"] not in old, f"an old-hash environment served after the update: {body}"
            served.append((body["env"], headers["X-Environment-Source"]))
        by_hash = await provisioned_by_hash()
        leftovers = {p["metadata"]["name"] for p in await kubelet.pods("lambdakube.dev/function=roll")} & old
        if set(by_hash) == {new_hash} and len(by_hash[new_hash]) == 2 and not leftovers:
            break
        assert asyncio.get_running_loop().time() < deadline, (by_hash, leftovers)
        await asyncio.sleep(0.1)

    # The router never deleted a serving provisioned pod: old ones only once draining.
    for name, pod_labels in deletes:
        if name in old and pod_labels is not None:
            assert pod_labels.get(labels.DRAINING) == "true", (name, pod_labels)
    # ... and it now serves from the new provisioned pods.
    fresh = (await provisioned_by_hash())[new_hash]
    await router.eventually(
        lambda: {e.env_id for e in pool.envs.values() if e.provisioned} == fresh, timeout=30, interval=0.05
    )
    status, headers, body = await router.invoke_json("roll", {"name": "p"})
    assert status == 200 and body["env"] in fresh and headers["X-Environment-Source"] == "provisioned"
