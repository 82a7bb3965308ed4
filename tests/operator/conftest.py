"""Cluster fixtures for the operator: the CRDs, an in-process operator scoped to the
test's namespace, and a small client for polling what it did.

The operator runs in a background thread (its own event loop) via the same
``runner.run`` that ``lambdakube-operator`` uses, against the test API server's
kubeconfig, with short timers. Tests poll for the end state with ``eventually`` and never
assert on how long something took.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import replace

import pytest
import yaml

from lambdakube_operator.planning import Timing
from lambdakube.resources import labels
from lambdakube_operator.settings import OperatorConfig

GROUP, VERSION = "lambdakube.dev", "v1alpha1"


def eventually(check, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Call ``check`` until it returns a truthy value (returned) or stops raising
    AssertionError; fail with the last error after ``timeout`` (a safety net, not a
    timing assertion)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = None
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"{what} not reached within {timeout}s")


class OperatorThread:
    """The operator in a background thread; ``stop()``/``start()`` simulate a restart."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> OperatorThread:
        self.stop_flag, ready = threading.Event(), threading.Event()

        def main() -> None:
            from lambdakube_operator.runner import run

            async def operator() -> None:
                self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
                await run(self.config, stop_flag=self.stop_flag, ready_flag=ready)

            try:
                asyncio.run(operator())
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # surfaced by start()/stop()
                self.error = exc
                ready.set()

        self.thread = threading.Thread(target=main, name="lambdakube-operator", daemon=True)
        self.thread.start()
        assert ready.wait(30), "operator did not become ready"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self.thread is None:
            return
        self.stop_flag.set()
        self.thread.join(1)
        if self.thread.is_alive():
            # kopf waits 5 s for tasks spawned late in its shutdown (a timer restarted by
            # an event that arrived while stopping); cancelling stops them at once.
            self.loop.call_soon_threadsafe(self.task.cancel)
            self.thread.join(30)
        assert not self.thread.is_alive(), "operator did not stop"
        self.thread = None
        if self.error:
            raise self.error


class Kube:
    """Direct API reads/writes for assertions (faster than kubectl in polling loops)."""

    def __init__(self, control_plane, namespace: str) -> None:
        from kubernetes.client import CoreV1Api, CustomObjectsApi

        from lambdakube.kubeclient import api_client

        self.cp = control_plane
        self.ns = namespace
        self.client = api_client(str(control_plane.kubeconfig))
        self.core = CoreV1Api(self.client)
        self.custom = CustomObjectsApi(self.client)

    def close(self) -> None:
        self.client.close()

    # -- writes (through kubectl, as a user would) -------------------------------------

    def apply(self, obj: dict, check: bool = True):
        return self.cp.kubectl("apply", "-n", self.ns, "-f", "-", input=yaml.safe_dump(obj), check=check)

    def patch_fn(self, name: str, spec: dict) -> None:
        self.cp.kubectl("patch", "fn", name, "-n", self.ns, "--type=merge", "-p", json.dumps({"spec": spec}))

    def set_pod_ready(self, name: str, ready: bool = True) -> None:
        """No kubelet in the test control plane: mark a pod Running/Ready by hand."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = "True" if ready else "False"
        body = {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
                ],
            }
        }
        self.cp.kubectl(
            "patch", "pod", name, "-n", self.ns, "--subresource=status", "--type=merge", "-p", json.dumps(body)
        )

    # -- reads ---------------------------------------------------------------------------

    def fn(self, name: str) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return json.loads(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.ns, "functions", name, _preload_content=False
                ).data
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def quota(self) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return json.loads(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.ns, "concurrencyquotas", "default", _preload_content=False
                ).data
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, function: str, *, role: str | None = None, include_terminating: bool = False) -> list[dict]:
        selector = f"{labels.FUNCTION}={function}"
        if role:
            selector += f",{labels.ROLE}={role}"
        items = json.loads(
            self.core.list_namespaced_pod(self.ns, label_selector=selector, _preload_content=False).data
        )["items"]
        if not include_terminating:
            items = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return sorted(items, key=lambda p: p["metadata"]["name"])

    def provisioned(self, function: str) -> list[dict]:
        return [
            p
            for p in self.pods(function, role=labels.ROLE_PROVISIONED)
            if p["metadata"]["labels"].get(labels.DRAINING) != "true"
        ]

    def events(self, name: str) -> list[dict]:
        items = json.loads(
            self.core.list_namespaced_event(
                self.ns, field_selector=f"involvedObject.name={name}", _preload_content=False
            ).data
        )["items"]
        return items

    def event_reasons(self, name: str) -> set[str]:
        return {e["reason"] for e in self.events(name)}

    def condition(self, name: str, type_: str) -> dict | None:
        fn = self.fn(name) or {}
        for c in (fn.get("status") or {}).get("conditions") or ():
            if c["type"] == type_:
                return c
        return None


def function(name: str = "hello", **spec) -> dict:
    body = {
        "handler": "index.handler",
        "code": {"inline": {"source": "def handler(event, context):\n    return event\n"}},
        **spec,
    }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Function", "metadata": {"name": name}, "spec": body}


@pytest.fixture(scope="session")
def operator_crds(control_plane):
    control_plane.install_crds()
    return control_plane


@pytest.fixture
def kube(operator_crds, namespace):
    k = Kube(operator_crds, namespace)
    yield k
    k.close()


TEST_CONFIG = OperatorConfig(
    resync_interval=1.0,
    pod_event_delay=0.05,
    timing=Timing(start_deadline=120.0, drain_grace=0.0),
    metrics_port=None,
    liveness_port=None,
    watch_server_timeout=20,
    watch_client_timeout=25,
    runtime_image="lambdakube/runtime-python:test",
)


@pytest.fixture
def start_operator(operator_crds, namespace):
    """Factory: ``start_operator(**config overrides)`` → a running OperatorThread."""
    started: list[OperatorThread] = []

    def start(**overrides) -> OperatorThread:
        config = replace(TEST_CONFIG, namespaces=(namespace,), kubeconfig=str(operator_crds.kubeconfig), **overrides)
        op = OperatorThread(config).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    # The operator is gone: drop our finalizer so the namespace can be deleted.
    names = operator_crds.kubectl("get", "functions", "-n", namespace, "-o", "name", check=False).stdout.split()
    for obj in names:
        operator_crds.kubectl(
            "patch", obj, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )


@pytest.fixture
def operator(start_operator):
    return start_operator()
