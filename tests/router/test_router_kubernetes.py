"""The kubernetes backend against a real kube-apiserver (tests/cluster/controlplane.py).

There is no kubelet in this control plane: pods are stored and never run. So the test
plays kubelet itself: when the router creates an environment pod, the test starts a real
``lambdakube_runtime`` process on 127.0.0.1 with the environment variables *from the pod
spec*, then annotates the pod with ``lambdakube.dev/address`` and patches its status to
Running + Ready. The router must then send the invocation to that runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lambdakube_router.app import init_app
from lambdakube_router.backends.kubernetes import KubernetesBackend
from tests.router.conftest import Router, function, router_config

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


async def kubectl(cp, *args, input=None, check=True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


@pytest.fixture
async def crds(control_plane):
    await kubectl(control_plane, "apply", "-f", str(REPO / "crds"))
    await kubectl(control_plane, "wait", "--for=condition=Established", "--timeout=30s",
                  "crd/functions.lambdakube.dev")


class FakeKubelet:
    """Runs pods' runtimes as local processes and reports them Ready."""

    def __init__(self, cp, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace
        self.procs: list[subprocess.Popen] = []

    async def wait_pod(self, function_name: str, n: int = 1, timeout: float = 30) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            out = await kubectl(self.cp, "get", "pods", "-n", self.namespace, "-o", "json",
                                "-l", f"lambdakube.dev/function={function_name}")
            items = json.loads(out.stdout)["items"]
            if len(items) >= n:
                return items
            assert asyncio.get_running_loop().time() < deadline, "router created no pod"
            await asyncio.sleep(0.1)

    async def run(self, pod: dict) -> int:
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"),
                   PYTHONPATH=str(REPO / "runtime-image"), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lambdakube_runtime", "--host", "127.0.0.1", "--port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.startswith(b"LAMBDAKUBE_LISTENING port="), line
        port = int(line.split(b"=")[1])
        name = pod["metadata"]["name"]
        await kubectl(self.cp, "annotate", "pod", "-n", self.namespace, name,
                      f"lambdakube.dev/address=127.0.0.1:{port}")
        status = {"status": {"phase": "Running", "podIP": "10.0.0.10", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}}
        # check=False: once the address is known the router may already have judged the
        # environment (e.g. Init failed) and deleted the pod.
        await kubectl(self.cp, "patch", "pod", "-n", self.namespace, name, "--subresource=status",
                      "--type=merge", "-p", json.dumps(status), check=False)
        return port

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()


@pytest.fixture
async def kubelet(control_plane, namespace):
    k = FakeKubelet(control_plane, namespace)
    yield k
    k.stop()


async def make_router(aiohttp_client, tmp_path, control_plane, namespace, *docs) -> Router:
    for doc in docs:
        await kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    backend = KubernetesBackend(kubeconfig=str(control_plane.kubeconfig))
    config = router_config(tmp_path, *docs, backend=backend, namespace=namespace)
    app = await init_app(config)
    return Router(await aiohttp_client(app), app, config)


async def test_cold_start_creates_a_pod_and_reuses_it(
        control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path):
    router = await make_router(aiohttp_client, tmp_path, control_plane, namespace,
                               function("hello", HELLO, namespace=namespace))
    uid = (await kubectl(control_plane, "get", "function", "hello", "-n", namespace,
                         "-o", "jsonpath={.metadata.uid}")).stdout
    call = asyncio.ensure_future(router.invoke_json("hello", {"name": "k8s"}))
    [pod] = await kubelet.wait_pod("hello")
    labels = pod["metadata"]["labels"]
    assert labels["lambdakube.dev/function"] == "hello"
    assert labels["lambdakube.dev/role"] == "on-demand"
    assert labels["lambdakube.dev/environment"] == pod["metadata"]["name"]
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Function", "hello", uid)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["LAMBDAKUBE_HANDLER"] == "index.handler" and "LAMBDAKUBE_INLINE_CODE" in env
    await kubelet.run(pod)

    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 200, body
    assert body["hello"] == "k8s" and body["env"] == pod["metadata"]["name"]
    assert headers["X-Cold-Start"] == "true"
    status, headers, body = await router.invoke_json("hello", {"name": "again"})
    assert status == 200 and headers["X-Cold-Start"] == "false" and body["count"] == 2

    await router.client.close()  # router shutdown deletes its pods
    out = await kubectl(control_plane, "get", "pods", "-n", namespace, "-o", "name")
    assert out.stdout.strip() == ""


async def test_init_error_reported_and_pod_deleted(
        control_plane, namespace, crds, kubelet, aiohttp_client, tmp_path):
    router = await make_router(aiohttp_client, tmp_path, control_plane, namespace,
                               function("broken", BROKEN, namespace=namespace))
    call = asyncio.ensure_future(router.invoke_json("broken", {}))
    [pod] = await kubelet.wait_pod("broken")
    await kubelet.run(pod)
    status, headers, body = await asyncio.wait_for(call, 30)
    assert status == 502 and headers["x-amzn-ErrorType"] == "InitError"
    assert "left-pad" in body["errorMessage"]
    # the failed environment's pod is deleted
    out = await kubectl(control_plane, "get", "pods", "-n", namespace, "-o", "name")
    assert out.stdout.strip() == ""


async def test_kubernetes_source_follows_function_objects(
        control_plane, namespace, crds, aiohttp_client, tmp_path):
    """Functions come from the API server (watch); environments are local processes."""
    from lambdakube_router import keys
    from lambdakube_router.sources import KubernetesSource

    await kubectl(control_plane, "apply", "-n", namespace, "-f", "-",
                  input=yaml.safe_dump(function("hello", HELLO, namespace=namespace)))
    source = KubernetesSource(kubeconfig=str(control_plane.kubeconfig), namespace=namespace,
                              watch_timeout=5)
    config = router_config(tmp_path, source=source, namespace=namespace)
    config.snapshot = None
    app = await init_app(config)
    router = Router(await aiohttp_client(app), app, config)
    status, _, body = await router.invoke_json("hello", {"name": "from-api"})
    assert status == 200 and body["hello"] == "from-api"
    engine = app[keys.ENGINE]
    assert engine.get(namespace, "hello").ref.uid  # the object's UID, for owner references

    await kubectl(control_plane, "apply", "-n", namespace, "-f", "-",
                  input=yaml.safe_dump(function("second", HELLO, namespace=namespace)))
    await router.eventually(lambda: engine.get(namespace, "second") is not None, timeout=20)
    await kubectl(control_plane, "delete", "function", "hello", "-n", namespace)
    await router.eventually(lambda: engine.get(namespace, "hello") is None, timeout=20)
    status, _, _ = await router.invoke_json("hello", {})
    assert status == 404


async def test_examples_are_accepted_by_the_crd_schema(control_plane, namespace, crds):
    """examples/*.yaml are valid for both modes: the local registry (see
    test_router_manifests) and the API server's CRD schema + CEL rules."""
    out = await kubectl(control_plane, "apply", "-n", namespace, "--dry-run=server",
                        "-f", str(REPO / "examples"), check=False)
    assert out.returncode == 0, out.stderr
    for name in ("hello", "provisioned", "reserved", "async-dlq"):
        assert f"function.lambdakube.dev/{name}" in out.stdout
