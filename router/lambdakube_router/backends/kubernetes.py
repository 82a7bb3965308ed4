"""Environments as pods: one pod per environment, created through the Kubernetes API.

Why the synchronous ``kubernetes`` client in a thread: ``kubernetes_asyncio`` is not a
dependency, and a cold start makes a handful of API calls (create, a few reads, one
delete), far from the hot path, so a thread per call costs nothing that matters. Every
call runs in the default executor; nothing blocks the event loop.

A pod is ready for the router when its ``Ready`` condition is true (its readiness probe
is the runtime's ``/readyz``); the router then sends requests to ``status.podIP:8080``, or
to the ``lambdakube.dev/address`` annotation when present (tests without a kubelet run a
real runtime on 127.0.0.1 and point the pod at it). While waiting, the runtime's
``/readyz`` is read directly too, so an Init failure is reported at once, with the
runtime's error, instead of after the init timeout; the error is also written to the pod
as ``lambdakube.dev/init-error`` (and honoured when someone else wrote it).

Labels and the owner reference match what the operator expects (``lambdakube.dev/*``),
so the operator sees router-created on-demand pods and garbage collection removes them
with their Function. Inline code travels in ``LAMBDAKUBE_INLINE_CODE`` so a pod needs no
ConfigMap from anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp

from lambdakube.models import API_VERSION, DEFAULT_RUNTIME_IMAGE, GROUP, VERSION, FunctionSpec
from lambdakube_router.backends.base import EnvironmentHandle, EnvironmentStartError, FunctionRef
from lambdakube_router.backends.local import environment_variables, init_error_message

log = logging.getLogger(__name__)

PREFIX = "lambdakube.dev"
LABEL_FUNCTION = f"{PREFIX}/function"
LABEL_ENVIRONMENT = f"{PREFIX}/environment"
LABEL_ROLE = f"{PREFIX}/role"
ANNOTATION_ADDRESS = f"{PREFIX}/address"
ANNOTATION_INIT_ERROR = f"{PREFIX}/init-error"
MANAGED_BY = "app.kubernetes.io/managed-by"
ROUTER_NAME = "lambdakube-router"
PORT = 8080
CONTAINER = "runtime"


def pod_name(env_id: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", env_id.lower())[:63].strip("-")
    return name or "env"


def build_pod(fn: FunctionRef, spec: FunctionSpec, env_id: str, provisioned: bool,
              image: str, function_uid: str | None) -> dict:
    """The environment's pod (pure): labels, owner reference, runtime configuration."""
    name = pod_name(env_id)
    env = environment_variables(fn, spec, name)
    amounts = {"memory": f"{spec.resources.memory_size}Mi"}
    if spec.resources.cpu:
        amounts["cpu"] = spec.resources.cpu
    meta: dict = {
        "name": name,
        "namespace": fn.namespace,
        "labels": {
            LABEL_FUNCTION: fn.name,
            LABEL_ENVIRONMENT: name,
            LABEL_ROLE: "provisioned" if provisioned else "on-demand",
            MANAGED_BY: ROUTER_NAME,
        },
    }
    if function_uid:
        meta["ownerReferences"] = [{"apiVersion": API_VERSION, "kind": "Function",
                                    "name": fn.name, "uid": function_uid, "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": spec.timeout_seconds + 5,
            "containers": [{
                "name": CONTAINER,
                "image": spec.image or image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-m", "lambdakube_runtime", "--host", "0.0.0.0",
                            "--port", str(PORT)],
                "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                "resources": {"requests": dict(amounts), "limits": dict(amounts)},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                                   "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                    "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def _ready(pod) -> bool:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == "Ready" and cond.status == "True":
            return True
    return False


def _address(pod) -> str | None:
    annotations = pod.metadata.annotations or {}
    if annotations.get(ANNOTATION_ADDRESS):
        return annotations[ANNOTATION_ADDRESS]
    if pod.status and pod.status.pod_ip:
        return f"{pod.status.pod_ip}:{PORT}"
    return None


def _terminated_reason(pod) -> str | None:
    status = pod.status
    if status is None:
        return None
    if status.phase in ("Failed", "Succeeded"):
        return f"pod {pod.metadata.name} is {status.phase}: {status.message or status.reason or ''}".strip()
    for cs in status.container_statuses or []:
        term = cs.state.terminated if cs.state else None
        if term is not None:
            return (f"runtime container exited with code {term.exit_code}"
                    f" ({term.reason}): {term.message or ''}").strip()
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in ("ErrImagePull", "ImagePullBackOff",
                                                      "InvalidImageName", "CreateContainerConfigError"):
            return f"cannot start the runtime container: {waiting.reason}: {waiting.message or ''}"
    return None


class KubernetesBackend:
    def __init__(self, *, kubeconfig: str | None = None, image: str = DEFAULT_RUNTIME_IMAGE,
                 api_client=None, poll_interval: float = 0.05, max_poll_interval: float = 0.5,
                 delete_grace_seconds: int | None = 0) -> None:
        from kubernetes import client, config  # noqa: PLC0415

        if api_client is None:
            if kubeconfig:
                api_client = config.new_client_from_config(config_file=str(kubeconfig))
            else:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    config.load_kube_config()
                api_client = client.ApiClient()
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.image = image
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.delete_grace_seconds = delete_grace_seconds
        self._uids: dict[tuple[str, str], str | None] = {}
        self._pods: dict[str, tuple[str, str]] = {}  # env_id -> (namespace, pod name)
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def _function_uid(self, fn: FunctionRef) -> str | None:
        if fn.uid:
            return fn.uid
        key = (fn.namespace, fn.name)
        if key not in self._uids:
            from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

            try:
                obj = await self._call(self.custom.get_namespaced_custom_object,
                                       GROUP, VERSION, fn.namespace, "functions", fn.name)
                self._uids[key] = obj["metadata"]["uid"]
            except ApiException as exc:
                if exc.status != 404:
                    raise
                log.warning("%s: no Function object: pods get no owner reference", fn)
                self._uids[key] = None
        return self._uids[key]

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self._session

    async def start(self, fn: FunctionRef, spec: FunctionSpec, env_id: str,
                    provisioned: bool) -> EnvironmentHandle:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        try:
            uid = await self._function_uid(fn)
            body = build_pod(fn, spec, env_id, provisioned, self.image, uid)
            name = body["metadata"]["name"]
            await self._call(self.core.create_namespaced_pod, fn.namespace, body)
        except ApiException as exc:
            raise EnvironmentStartError(
                f"{fn}: cannot create the environment pod: {exc.status} {exc.reason}: {exc.body}",
                error_type="PodCreateError") from None
        self._pods[env_id] = (fn.namespace, name)
        try:
            address, init = await self._wait_ready(fn, name)
        except BaseException:
            await self._delete(fn.namespace, name)
            self._pods.pop(env_id, None)
            raise
        return EnvironmentHandle(address=address, env_id=env_id, init_duration=init,
                                 private=(fn.namespace, name))

    async def _wait_ready(self, fn: FunctionRef, name: str) -> tuple[str, float]:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        delay = self.poll_interval
        while True:
            try:
                pod = await self._call(self.core.read_namespaced_pod, name, fn.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    raise EnvironmentStartError(f"{fn}: environment pod {name} was deleted while starting") from None
                raise EnvironmentStartError(f"{fn}: reading pod {name}: {exc.status} {exc.reason}") from None
            annotations = pod.metadata.annotations or {}
            if annotations.get(ANNOTATION_INIT_ERROR):
                raise EnvironmentStartError(f"{fn}: Init failed: {annotations[ANNOTATION_INIT_ERROR]}")
            reason = _terminated_reason(pod)
            if reason:
                raise EnvironmentStartError(f"{fn}: {reason}")
            address = _address(pod)
            if address is not None:
                status, info = await self._readyz(address)
                if info.get("state") == "init_failed":
                    message = init_error_message(fn, info)
                    await self._annotate_init_error(fn.namespace, name, message)
                    raise EnvironmentStartError(message)
                if _ready(pod) and status == 200:
                    return address, float(info.get("initDurationMs") or 0) / 1000
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)

    async def _readyz(self, address: str) -> tuple[int, dict]:
        try:
            async with self._http().get(f"http://{address}/readyz") as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, {}
        try:
            info = json.loads(body)
        except ValueError:
            info = {}
        return status, info if isinstance(info, dict) else {}

    async def _annotate_init_error(self, namespace: str, name: str, message: str) -> None:
        patch = {"metadata": {"annotations": {ANNOTATION_INIT_ERROR: message[:4000]}}}
        try:
            await self._call(self.core.patch_namespaced_pod, name, namespace, patch)
        except Exception as exc:  # best effort: the error is reported to the caller anyway
            log.debug("cannot annotate pod %s/%s: %s", namespace, name, exc)

    async def _delete(self, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        kwargs = {}
        if self.delete_grace_seconds is not None:
            kwargs["grace_period_seconds"] = self.delete_grace_seconds
        try:
            await self._call(self.core.delete_namespaced_pod, name, namespace, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("deleting pod %s/%s failed: %s %s", namespace, name, exc.status, exc.reason)

    async def stop(self, handle: EnvironmentHandle) -> None:
        where = self._pods.pop(handle.env_id, None) or handle.private
        if where:
            await self._delete(*where)

    async def close(self) -> None:
        await asyncio.gather(*(self._delete(ns, name) for ns, name in list(self._pods.values())),
                             return_exceptions=True)
        self._pods.clear()
        if self._session is not None:
            await self._session.close()
        await self._call(self.api.close)
