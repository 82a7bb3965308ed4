"""The execution-environment pod, built from a Function's spec (pure; no API calls).

One builder for both creators of environment pods: the operator (provisioned pods) and
the router (on-demand pods for cold starts), so both agree on labels, hash, security
context and the runtime's configuration. ``generic_pod`` builds the operator's
pre-warmed *generic* pods (a runtime without a function, specialised by a router
cold start through ``POST /init``) from the same skeleton. The result is a plain
JSON-ready dict, which the kubernetes client accepts as a body and tests compare directly.

A pod of an inline-code function starts its runtime *without* the function, like a
generic pod, and gets the code through ``POST /init`` (see ``code.py`` for why there is
no code volume). It differs from a generic pod in its labels, owner, resources and the
function's own variables (present from the interpreter's start), and in its readiness
probe, ``/readyz``: such a pod turns Ready only once Init has succeeded.

Lambda semantics shape a few choices:
- ``restartPolicy: Never``: an environment that dies is replaced, not restarted (a
  restarted process would look warm but have lost its Init state).
- memory is both request and limit (Lambda's MemorySize is a hard cap).
- ``/tmp`` is a 512 MiB emptyDir (Lambda's default ephemeral storage); the root
  filesystem is read-only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from lambdakube.models import (
    DEFAULT_NODEJS_RUNTIME_IMAGE,
    DEFAULT_RUNTIME_IMAGE,
    LATEST,
    EnvVarSource,
    FunctionSpec,
)

from . import env_token, identity, labels, runtime_env
from .code import needs_init, own_variables
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
#: Generic pods are sized for Lambda's default memory (request = limit); only functions
#: of exactly that size (and no CPU setting) are placed on one (``fits_generic``).
GENERIC_MEMORY_MB = 128
#: Generic pods may end up running any function: grace for the longest timeout (900 s).
GENERIC_TIMEOUT_SECONDS = 900
GENERIC_NAME_PREFIX = "lk-generic"


def new_env_id(function_name: str, role: str) -> str:
    """A fresh environment id (also the pod name): ``<fn[:40]>-<p|d|g><8 hex>``, label-safe."""
    marker = {labels.ROLE_PROVISIONED: "p", labels.ROLE_GENERIC: "g"}.get(role, "d")
    return f"{function_name[:NAME_PREFIX_LENGTH].rstrip('-')}-{marker}{os.urandom(4).hex()}"


def runtime_image_hash(image: str) -> str:
    """Short label-safe hash of a runtime image reference (generic pods are labelled with it)."""
    return hashlib.sha256(image.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class RuntimeImages:
    """The runtime images of an installation: the one runtime image (Python) and the one
    with node for ``nodejs<N>.x`` functions (chart ``runtime.images``)."""

    python: str = DEFAULT_RUNTIME_IMAGE
    nodejs: str = DEFAULT_NODEJS_RUNTIME_IMAGE


def is_nodejs(spec: FunctionSpec) -> bool:
    return bool(spec.runtime and spec.runtime.startswith("nodejs"))


def image_for(spec: FunctionSpec, images: RuntimeImages) -> str:
    """The image an environment of ``spec`` runs: its own ``spec.image``, else the Node.js
    runtime image for ``nodejs<N>.x``, else the runtime image (python3.x, provided*: an
    inline ``provided`` bootstrap is a script for the image's shell)."""
    if spec.image:
        return spec.image
    return images.nodejs if is_nodejs(spec) else images.python


def fits_generic(spec: FunctionSpec) -> bool:
    """Can a generic pod (default runtime image, ``GENERIC_MEMORY_MB``, no CPU setting,
    code sent by ``POST /init``) run this function exactly as its own pod would?

    Never with Secret or ConfigMap references: a generic pod would get those variables
    only in ``POST /init``, whose body must not carry their values (the kubelet resolves
    them into the function's own pods, and neither router nor operator reads them).
    Never ``nodejs<N>.x``: generic pods run the runtime image, which has no ``node``
    (``image_for``: such a function's own pods run the Node.js runtime image)."""
    return (
        not spec.has_env_refs
        and not is_nodejs(spec)
        and spec.image is None
        and spec.code is not None
        and spec.resources.cpu is None
        and spec.resources.memory_size == GENERIC_MEMORY_MB
        and spec.service_account_name is None  # a generic pod has no identity to give
    )


def pod_address(pod: dict) -> str | None:
    """``host:port`` of the pod's runtime: the ``lambdakube.dev/address`` annotation when
    present, else ``status.podIP``; None while the pod has no IP."""
    meta = pod.get("metadata") or {}
    annotated = (meta.get("annotations") or {}).get(labels.ADDRESS)
    if annotated:
        return annotated
    ip = (pod.get("status") or {}).get("podIP")
    return f"{ip}:{PORT}" if ip else None


def _env(function_name: str, namespace: str, spec: FunctionSpec, version: str = LATEST) -> list[dict]:
    ours: list[dict] = [{"name": "LAMBDAKUBE_NAMESPACE", "value": namespace}, _ENV_ID]
    if not needs_init(spec):  # code in the image: the runtime initialises at start
        # (inline code gets its version in ``POST /init``, where that runtime reads it)
        ours[:0] = [
            {"name": "LAMBDAKUBE_HANDLER", "value": spec.handler},
            {"name": "LAMBDAKUBE_FUNCTION_NAME", "value": function_name},
            *([{"name": "LAMBDAKUBE_FUNCTION_VERSION", "value": version}] if version != LATEST else []),
            {"name": "LAMBDAKUBE_MEMORY_MB", "value": str(spec.resources.memory_size)},
            {"name": "LAMBDAKUBE_TIMEOUT_SECONDS", "value": str(spec.timeout_seconds)},
        ]
        if spec.runtime:  # a Runtime API runtime (the image holds its bootstrap or node)
            ours.insert(0, {"name": "LAMBDAKUBE_RUNTIME", "value": spec.runtime})
        if spec.per_environment_concurrency > 1:
            ours.insert(0, {"name": "LAMBDAKUBE_MAX_CONCURRENCY", "value": str(spec.per_environment_concurrency)})
    # The function's own variables first (sorted: stable pod specs), literal and
    # referenced together; then the runtime's, which win over any of ``envFrom``.
    user: list[dict] = [{"name": k, "value": v} for k, v in own_variables(spec).items()]
    user += [{"name": k, "valueFrom": _value_from(src)} for k, src in sorted(spec.env_value_from.items())]
    user.sort(key=lambda var: var["name"])
    return user + ours


def _value_from(src: EnvVarSource) -> dict:
    """A Pod's ``valueFrom`` (camelCase, as the Pod API): the kubelet resolves it."""
    return src.model_dump(mode="json", by_alias=True, exclude_none=True)


def _env_from(spec: FunctionSpec) -> list[dict]:
    """The container's ``envFrom``, as the Function has it (the Pod API's shape)."""
    return [src.model_dump(mode="json", by_alias=True, exclude_none=True) for src in spec.env_from]


def _token_var(token: str | None) -> dict:
    """The pod's own ``env_token`` (a new one unless given): only its creators send it."""
    return {"name": env_token.VARIABLE, "value": token if token is not None else env_token.new_token()}


_ENV_ID = {"name": "LAMBDAKUBE_ENV_ID", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}


def _resources(memory_mb: int, cpu: str | None) -> dict:
    amounts = {"memory": f"{memory_mb}Mi"}
    if cpu:
        amounts["cpu"] = cpu
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod(
    *,
    name: str,
    namespace: str,
    pod_labels: dict,
    annotations: dict,
    owner_references: list[dict] | None,
    image: str,
    env: list[dict],
    resources: dict,
    readiness_path: str,
    timeout_seconds: int,
    service_account: str | None = None,
) -> dict:
    """The skeleton every environment pod shares (security context, probes, volumes).

    ``service_account``: the pod runs as it, with only its audience-bound token
    (``identity``); without it, as the namespace's default, with no token at all."""
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}]
    mounts: list[dict] = [{"name": "tmp", "mountPath": "/tmp"}]
    if service_account:
        volumes.append(identity.token_volume())
        mounts.append(identity.token_mount())

    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(COMMAND),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"path": readiness_path, "port": "http"},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
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
    metadata: dict = {
        "name": name,
        "namespace": namespace,
        "labels": pod_labels,
        "annotations": annotations,
    }
    if owner_references:
        metadata["ownerReferences"] = owner_references
    account = {"serviceAccountName": service_account} if service_account else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": "Never",
            **account,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": timeout_seconds + TERMINATION_GRACE_EXTRA,
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


def version_labels(version: str) -> dict[str, str]:
    """The version label of a pod running ``version`` (none for ``$LATEST``: pods from
    before versions existed are ``$LATEST``'s and stay so)."""
    return {} if version == LATEST else {labels.VERSION: version}


def announce_env(url: str, token: str) -> list[dict]:
    """Variables that make the runtime announce itself to the router waiting for it
    (``lambdakube_runtime.announce``): where, with which per-pod token, and its own IP."""
    return [
        {"name": "LAMBDAKUBE_ANNOUNCE_URL", "value": url},
        {"name": "LAMBDAKUBE_ANNOUNCE_TOKEN", "value": token},
        {"name": "LAMBDAKUBE_POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
    ]


def environment_pod(
    *,
    function_name: str,
    namespace: str,
    function_uid: str,
    spec: FunctionSpec,
    env_id: str,
    role: str,
    runtime_image: str,
    nodejs_runtime_image: str = DEFAULT_NODEJS_RUNTIME_IMAGE,
    managed_by: str = labels.OPERATOR_NAME,
    announce: tuple[str, str] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    version: str = LATEST,
) -> dict:
    """The pod for environment ``env_id`` of a function (``role``: provisioned/on-demand).

    ``version``: ``$LATEST`` or a published version's number, with ``spec`` what that
    version runs (``FunctionSpec.at_version``). A version's pod is labelled with its
    number (``version_labels``) and hashed from its own config, so neither the
    operator's ``$LATEST`` rollout nor a ``$LATEST`` pool ever takes it for one of theirs.

    ``announce`` (url, token): a router waits for this pod; its runtime tells it when it
    listens (``announce_env``). Not part of the spec hash: it is about who waits, not
    about what runs. ``endpoint``: the router's URL for the handler's SDK (``identity``),
    the same for every pod of an installation."""
    if role not in (labels.ROLE_PROVISIONED, labels.ROLE_ON_DEMAND):
        raise ValueError(f"unknown environment role {role!r}")
    env = (
        _env(function_name, namespace, spec, version)
        + identity.endpoint_env(endpoint, spec)
        + identity.token_env(spec)
        + [_token_var(token)]
    )
    if announce is not None:
        env += announce_env(*announce)
    if spec.env_from:  # a referenced object's keys are not validated: ours cannot come from them
        env += runtime_env.blanks(env)
    pod = _pod(
        name=env_id,
        namespace=namespace,
        pod_labels={
            labels.FUNCTION: function_name,
            labels.ENVIRONMENT: env_id,
            labels.ROLE: role,
            labels.SPEC_HASH: spec_hash(spec),
            labels.MANAGED_BY: managed_by,
            **version_labels(version),
        },
        annotations={labels.TIMEOUT_SECONDS: str(spec.timeout_seconds)},
        owner_references=[owner_reference(function_name, function_uid)],
        image=image_for(spec, RuntimeImages(runtime_image, nodejs_runtime_image)),
        env=env,
        resources=_resources(spec.resources.memory_size, spec.resources.cpu),
        readiness_path="/readyz",
        timeout_seconds=spec.timeout_seconds,
        service_account=spec.service_account_name,
    )
    if spec.env_from:  # only this function's pods: a generic pod never has references
        pod["spec"]["containers"][0]["envFrom"] = _env_from(spec)
    return pod


def generic_pod(
    *,
    namespace: str,
    env_id: str,
    runtime_image: str,
    managed_by: str = labels.OPERATOR_NAME,
    token: str | None = None,
    endpoint: str | None = None,
) -> dict:
    """A generic environment: the runtime started without a function (no handler, no
    function label, no owner), waiting for a router to claim it and ``POST /init``.

    Its readiness probe is ``/healthz``: a generic runtime answers ``/readyz`` with 503
    until it is specialised, and "Ready" here means "listening, claimable". After a
    claim the router learns the outcome of Init from ``/init``'s own answer.
    """
    return _pod(
        name=env_id,
        namespace=namespace,
        pod_labels={
            labels.ENVIRONMENT: env_id,
            labels.ROLE: labels.ROLE_GENERIC,
            labels.RUNTIME_IMAGE_HASH: runtime_image_hash(runtime_image),
            labels.MANAGED_BY: managed_by,
        },
        annotations={},
        owner_references=None,
        image=runtime_image,
        env=[
            {"name": "LAMBDAKUBE_NAMESPACE", "value": namespace},
            _ENV_ID,
            *identity.endpoint_env(endpoint, None),
            _token_var(token),
        ],
        resources=_resources(GENERIC_MEMORY_MB, None),
        readiness_path="/healthz",
        timeout_seconds=GENERIC_TIMEOUT_SECONDS,
    )
