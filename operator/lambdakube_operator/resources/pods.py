"""The execution-environment pod, built from a Function's spec (pure; no API calls).

One builder for both creators of environment pods: the operator (provisioned pods) and
the router (on-demand pods for cold starts), so both agree on labels, hash, security
context and the runtime's configuration. The result is a plain JSON-ready dict, which the
kubernetes client accepts as a body and tests compare directly.

Lambda semantics shape a few choices:
- ``restartPolicy: Never``: an environment that dies is replaced, not restarted (a
  restarted process would look warm but have lost its Init state).
- memory is both request and limit (Lambda's MemorySize is a hard cap).
- ``/tmp`` is a 512 MiB emptyDir (Lambda's default ephemeral storage); the root
  filesystem is read-only.
"""

from __future__ import annotations

import os

from lambdakube.models import FunctionSpec

from . import labels
from .code import CODE_DIR, code_configmap_name
from .owner import owner_reference
from .spec_hash import spec_hash

CONTAINER_NAME = "runtime"
PORT = 8080
RUNTIME_UID = 10001
TMP_SIZE_LIMIT = "512Mi"
#: Extra seconds a deleted pod gets beyond the function timeout to finish a request.
TERMINATION_GRACE_EXTRA = 5
COMMAND = ["python", "-m", "lambdakube_runtime", "--host", "0.0.0.0", "--port", str(PORT)]
#: Longest prefix of the function name used in pod names (pod name = env id = a label).
NAME_PREFIX_LENGTH = 40


def new_env_id(function_name: str, role: str) -> str:
    """A fresh environment id (also the pod name): ``<fn[:40]>-<p|d><8 hex>``, label-safe."""
    marker = "p" if role == labels.ROLE_PROVISIONED else "d"
    return f"{function_name[:NAME_PREFIX_LENGTH].rstrip('-')}-{marker}{os.urandom(4).hex()}"


def _env(function_name: str, namespace: str, spec: FunctionSpec) -> list[dict]:
    ours: list[dict] = [
        {"name": "LAMBDAKUBE_HANDLER", "value": spec.handler},
        {"name": "LAMBDAKUBE_FUNCTION_NAME", "value": function_name},
        {"name": "LAMBDAKUBE_NAMESPACE", "value": namespace},
        {"name": "LAMBDAKUBE_MEMORY_MB", "value": str(spec.resources.memory_size)},
        {"name": "LAMBDAKUBE_TIMEOUT_SECONDS", "value": str(spec.timeout_seconds)},
        {"name": "LAMBDAKUBE_ENV_ID",
         "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
    ]
    if spec.code is not None:
        ours.append({"name": "LAMBDAKUBE_CODE_DIR", "value": CODE_DIR})
        ours.append({"name": "LAMBDAKUBE_INLINE_MODULE", "value": spec.code.inline.module})
    reserved = {e["name"] for e in ours}
    # The function's own variables first (sorted: stable pod specs); they cannot
    # override the runtime's configuration, which would break the environment.
    user = [{"name": k, "value": v} for k, v in sorted(spec.env.items()) if k not in reserved]
    return user + ours


def _resources(spec: FunctionSpec) -> dict:
    amounts = {"memory": f"{spec.resources.memory_size}Mi"}
    if spec.resources.cpu:
        amounts["cpu"] = spec.resources.cpu
    return {"requests": dict(amounts), "limits": dict(amounts)}


def environment_pod(
    *,
    function_name: str,
    namespace: str,
    function_uid: str,
    spec: FunctionSpec,
    env_id: str,
    role: str,
    runtime_image: str,
    managed_by: str = labels.OPERATOR_NAME,
) -> dict:
    """The pod for environment ``env_id`` of a function (``role``: provisioned/on-demand)."""
    if role not in (labels.ROLE_PROVISIONED, labels.ROLE_ON_DEMAND):
        raise ValueError(f"unknown environment role {role!r}")
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}]
    mounts: list[dict] = [{"name": "tmp", "mountPath": "/tmp"}]
    code_cm = code_configmap_name(function_name, spec)
    if code_cm is not None:
        volumes.append({"name": "code", "configMap": {"name": code_cm}})
        mounts.append({"name": "code", "mountPath": CODE_DIR, "readOnly": True})

    container = {
        "name": CONTAINER_NAME,
        "image": spec.image or runtime_image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(COMMAND),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(function_name, namespace, spec),
        "resources": _resources(spec),
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": env_id,
            "namespace": namespace,
            "labels": {
                labels.FUNCTION: function_name,
                labels.ENVIRONMENT: env_id,
                labels.ROLE: role,
                labels.SPEC_HASH: spec_hash(spec),
                labels.MANAGED_BY: managed_by,
            },
            "annotations": {labels.TIMEOUT_SECONDS: str(spec.timeout_seconds)},
            "ownerReferences": [owner_reference(function_name, function_uid)],
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": spec.timeout_seconds + TERMINATION_GRACE_EXTRA,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNTIME_UID,
                "runAsGroup": RUNTIME_UID,
                "fsGroup": RUNTIME_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }
