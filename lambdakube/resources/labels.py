"""Names of the labels and annotations that the operator, the router and tests share.

Everything lives under ``lambdakube.dev`` so nothing collides with another controller
(kopf's own progress annotations use the same prefix, see ``settings.py``).
"""

from __future__ import annotations

PREFIX = "lambdakube.dev"

#: Pod label: the Function (name) this environment belongs to.
FUNCTION = f"{PREFIX}/function"
#: Pod label: the environment id (equal to the pod name, also ``LAMBDAKUBE_ENV_ID``).
ENVIRONMENT = f"{PREFIX}/environment"
#: Pod label: ``provisioned`` (kept by the operator), ``on-demand`` (router cold starts) or
#: ``generic`` (a runtime started without a function, kept by the operator; a router
#: cold start claims one and relabels it ``on-demand``).
ROLE = f"{PREFIX}/role"
ROLE_PROVISIONED = "provisioned"
ROLE_ON_DEMAND = "on-demand"
ROLE_GENERIC = "generic"
#: Generic pod label: short hash of the runtime image it runs (``runtime_image_hash``):
#: a router claims only generic pods of the image it would have used itself.
RUNTIME_IMAGE_HASH = f"{PREFIX}/runtime-image-hash"
#: Pod label: the published version an environment runs (its number); absent: ``$LATEST``.
#: Pods of different versions never stand in for each other, even when their spec
#: hashes agree (a version published from an unchanged head has ``$LATEST``'s hash).
VERSION = f"{PREFIX}/version"
#: Pod label: hash of the environment-shaping spec the pod was built from.
SPEC_HASH = f"{PREFIX}/spec-hash"
#: Pod label ``"true"``: an older spec; the router stops leasing it and deletes it after
#: its in-flight request; the operator deletes it after the drain deadline regardless.
DRAINING = f"{PREFIX}/draining"
#: Pod annotation: RFC 3339 time the operator first saw the pod draining.
DRAINING_SINCE = f"{PREFIX}/draining-since"
#: Pod annotation: the runtime's Init error, written by whoever sent ``/init`` or read
#: ``/readyz`` (the router's pod backend, the operator; tests without a kubelet too).
INIT_ERROR = f"{PREFIX}/init-error"
#: Pod annotation ``host:port``: where the runtime listens, instead of ``status.podIP``
#: (tests without a kubelet run a real runtime on 127.0.0.1 and point the pod at it).
ADDRESS = f"{PREFIX}/address"
#: Pod annotation: the function timeout the pod was built with (drain deadline).
TIMEOUT_SECONDS = f"{PREFIX}/timeout-seconds"

#: Finalizer on Functions: the operator deletes the function's pods before it goes.
FINALIZER = f"{PREFIX}/cleanup"

MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR_NAME = "lambdakube-operator"
ROUTER_NAME = "lambdakube-router"
