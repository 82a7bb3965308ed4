"""What the router and the operator read from an environment pod, in one place: is it
Ready, where does its runtime listen, did its Init fail, did it end.

Pure (a pod as the API returns it, a dict); the operator's planning takes ``PodView``s,
the router's pod backend asks ``is_ready``/``init_error_of``/``terminated_reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lambdakube.formats import parse_rfc3339
from lambdakube.models import LATEST

from . import labels
from .env_token import token_of
from .pods import pod_address


def _condition(conditions, type_: str) -> dict | None:
    for cond in conditions or ():
        if cond.get("type") == type_:
            return cond
    return None


def is_ready(pod: Mapping) -> bool:
    """The pod's Ready condition is True."""
    cond = _condition((pod.get("status") or {}).get("conditions"), "Ready")
    return cond is not None and cond.get("status") == "True"


def is_draining(pod: Mapping | None) -> bool:
    """The operator labelled the pod draining (an older spec: never leased again)."""
    return pod is not None and ((pod.get("metadata") or {}).get("labels") or {}).get(labels.DRAINING) == "true"


def is_terminating(pod: Mapping) -> bool:
    """The pod is being deleted (it has a ``deletionTimestamp``)."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def version_of(pod: Mapping) -> str:
    """The version the pod runs: its ``lambdakube.dev/version`` label, ``$LATEST`` without one."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get(labels.VERSION) or LATEST


def annotated_init_error(pod: Mapping) -> str | None:
    """The ``lambdakube.dev/init-error`` annotation: an Init error someone read from the
    pod's runtime and wrote down (see ``init_error_of`` for every channel)."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(labels.INIT_ERROR) or None


@dataclass(frozen=True)
class PodView:
    """What planning needs to know about one environment pod."""

    name: str
    created: datetime
    role: str | None = labels.ROLE_PROVISIONED
    spec_hash: str | None = None
    ready: bool = False
    #: When the pod last turned not-ready (its creation when it never was Ready).
    unready_since: datetime | None = None
    phase: str = "Pending"
    draining: bool = False
    draining_since: datetime | None = None
    terminating: bool = False
    owner_uid: str | None = None
    init_error: str | None = None
    timeout_seconds: int | None = None
    #: ``host:port`` of its runtime once it has one (``lambdakube.resources.pod_address``).
    address: str | None = None
    #: Generic pods: hash of the runtime image they run (``lambdakube.dev/runtime-image-hash``).
    image_hash: str | None = None
    #: Its runtime's ``env_token`` ("" for a pod without one).
    token: str = field(default="", repr=False)
    #: Why its runtime container cannot start (``start_error``): a missing Secret, an image.
    start_error: str | None = None
    #: The version it runs (``lambdakube.dev/version``; ``$LATEST`` without the label).
    version: str = LATEST

    @classmethod
    def from_pod(cls, pod: Mapping) -> PodView:
        meta = pod.get("metadata") or {}
        pod_labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        status = pod.get("status") or {}
        # Every pod the API returns has one; a test's bare dict counts as created at 0.
        created = parse_rfc3339(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, timezone.utc)
        ready_cond = _condition(status.get("conditions"), "Ready")
        ready = is_ready(pod)
        unready_since = created
        if ready_cond is not None and not ready:
            unready_since = parse_rfc3339(ready_cond.get("lastTransitionTime")) or created
        owner_uid = None
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") == "Function" and ref.get("apiVersion", "").startswith(labels.PREFIX + "/"):
                owner_uid = ref.get("uid")
        timeout = annotations.get(labels.TIMEOUT_SECONDS)
        return cls(
            name=meta.get("name", ""),
            created=created,
            role=pod_labels.get(labels.ROLE),
            spec_hash=pod_labels.get(labels.SPEC_HASH),
            ready=ready,
            unready_since=unready_since,
            phase=status.get("phase") or "Pending",
            draining=is_draining(pod),
            draining_since=parse_rfc3339(annotations.get(labels.DRAINING_SINCE)),
            terminating=is_terminating(pod),
            owner_uid=owner_uid,
            init_error=init_error_of(pod),
            timeout_seconds=int(timeout) if timeout and timeout.isdigit() else None,
            address=pod_address(dict(pod)),
            image_hash=pod_labels.get(labels.RUNTIME_IMAGE_HASH),
            token=token_of(pod),
            start_error=start_error(pod),
            version=version_of(pod),
        )


def init_error_of(pod: Mapping) -> str | None:
    """The runtime's Init error as the pod reports it, if any.

    Two channels, first wins: the ``lambdakube.dev/init-error`` annotation (written by
    whoever sent the pod its ``/init`` or read its ``/readyz``: the router's pod backend,
    the operator's initializer, or, without a kubelet, a test), and a container that
    terminated with a non-zero exit code and a message (the termination message:
    ``terminationMessagePolicy: FallbackToLogsOnError``).
    """
    text = annotated_init_error(pod)
    if text:
        return text
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        for key in ("state", "lastState"):
            term = (cs.get(key) or {}).get("terminated")
            if term and term.get("exitCode", 0) != 0 and term.get("message"):
                return term["message"].strip()
    return None


#: Waiting reasons of a container that cannot start until something outside the pod
#: changes: its image (pull), or its configuration (a Secret or ConfigMap it refers to
#: is missing, or lacks the key: the kubelet names the object, never a value).
CANNOT_START_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"})


def start_error(pod: Mapping) -> str | None:
    """``<reason>: <kubelet's message>`` of a runtime container that cannot start
    (``CANNOT_START_REASONS``), or None."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting is not None and waiting.get("reason") in CANNOT_START_REASONS:
            return f"{waiting['reason']}: {waiting.get('message') or ''}".strip()
    return None


def terminated_reason(pod: Mapping) -> str | None:
    """Why the pod's runtime cannot be (or no longer is) running - the pod ended, its
    container exited, or it cannot be started (image, config) - or None."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name")
    if status.get("phase") in ("Failed", "Succeeded"):
        why = status.get("message") or status.get("reason") or ""
        return f"pod {name} is {status['phase']}: {why}".strip()
    for cs in status.get("containerStatuses") or ():
        state = cs.get("state") or {}
        term = state.get("terminated")
        if term is not None:
            return (
                f"runtime container exited with code {term.get('exitCode')}"
                f" ({term.get('reason')}): {term.get('message') or ''}"
            ).strip()
    cannot_start = start_error(pod)
    if cannot_start is not None:
        return f"cannot start the runtime container: {cannot_start}"
    return None
