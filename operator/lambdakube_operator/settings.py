"""Operator configuration: one frozen object built from the command line (or by tests),
and the kopf settings derived from it.

kopf pitfalls handled here, once: our own finalizer and annotation prefix (two kopf
operators on one cluster must not fight over ``kopf.zalando.org``), progress kept in
annotations only (the default "smart" storage also writes ``status.kopf``, which our
structural CRD schema prunes, so kopf would never see its own progress), explicit watch
timeouts (silent watch stalls), and k8s-event posting of kopf's own log lines limited to
warnings (a timer's "succeeded" line every few seconds would flood the Events).
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field

import kopf

from lambdakube.models import DEFAULT_NODEJS_RUNTIME_IMAGE, DEFAULT_RUNTIME_IMAGE

from .planning import Timing
from lambdakube.resources import labels


@dataclass(frozen=True)
class OperatorConfig:
    #: Namespaces to serve; empty with ``all_namespaces`` False means "the kubeconfig's".
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    #: Kubeconfig file; None: in-cluster service account, else $KUBECONFIG/~/.kube/config.
    kubeconfig: str | None = None
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    #: The image of ``nodejs<N>.x`` Functions without ``spec.image`` (``resources.image_for``).
    nodejs_runtime_image: str = DEFAULT_NODEJS_RUNTIME_IMAGE
    #: The router's URL as handlers reach it (``AWS_ENDPOINT_URL_LAMBDA`` in every
    #: environment, ``lambdakube.resources.identity``); None: not set. The chart gives the
    #: router the same value, so both creators' pods agree.
    function_endpoint: str | None = None
    #: Level-triggered resync of every Function (seconds).
    resync_interval: float = 10.0
    #: Coalescing delay for pod-event triggered reconciles (seconds).
    pod_event_delay: float = 0.2
    timing: Timing = field(default_factory=Timing)
    metrics_port: int | None = 9102
    liveness_port: int | None = 8080
    watch_server_timeout: int = 60
    watch_client_timeout: int = 70
    #: Create the namespace's ``default`` ConcurrencyQuota when Functions exist and it does not.
    create_default_quota: bool = True
    #: Generic runtime pods (no function yet) kept per served namespace for router cold
    #: starts to claim; 0 disables the pool.
    generic_pool_size: int = 0

    def kopf_settings(self) -> kopf.OperatorSettings:
        s = kopf.OperatorSettings()
        s.persistence.finalizer = labels.FINALIZER
        s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=labels.PREFIX)
        s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=labels.PREFIX, key="last-handled-configuration"
        )
        # Our RBAC grants no CRD/namespace listing (least privilege), so no scanning:
        # the resources are discovered once at start-up and the namespaces are given.
        s.scanning.disabled = True
        s.watching.server_timeout = self.watch_server_timeout
        s.watching.client_timeout = self.watch_client_timeout
        s.watching.connect_timeout = 10
        s.networking.request_timeout = 30
        s.posting.level = logging.WARNING
        s.posting.reporting_component = labels.OPERATOR_NAME
        return s


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> OperatorConfig:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="lambdakube-operator",
        description="Keeps lambdakube Functions' provisioned environments, rollouts, quota reservations and status.",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="serve this namespace (repeatable; globs allowed)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve the whole cluster")
    p.add_argument("--kubeconfig", default=env.get("KUBECONFIG") or None)
    p.add_argument(
        "--runtime-image",
        default=env.get("LAMBDAKUBE_RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE),
        help="image for Functions without spec.image (default %(default)s)",
    )
    p.add_argument(
        "--nodejs-runtime-image",
        default=env.get("LAMBDAKUBE_NODEJS_RUNTIME_IMAGE", DEFAULT_NODEJS_RUNTIME_IMAGE),
        help="image for nodejs<N>.x Functions without spec.image (default %(default)s)",
    )
    p.add_argument(
        "--function-endpoint",
        default=env.get("LAMBDAKUBE_FUNCTION_ENDPOINT") or None,
        metavar="URL",
        help="the router's URL for handlers' SDKs (AWS_ENDPOINT_URL_LAMBDA in environments)",
    )
    p.add_argument("--resync-interval", type=float, default=10.0)
    p.add_argument(
        "--start-deadline", type=float, default=120.0, help="delete environments not Ready for this many seconds"
    )
    p.add_argument(
        "--drain-grace", type=float, default=30.0, help="draining environments are deleted after timeoutSeconds + this"
    )
    p.add_argument("--metrics-port", type=int, default=9102, help="0 disables")
    p.add_argument("--liveness-port", type=int, default=8080, help="0 disables")
    p.add_argument(
        "--no-default-quota",
        action="store_true",
        help="do not create a namespace's 'default' ConcurrencyQuota (otherwise created"
        " with the defaults when a Function there asks for reservedConcurrency)",
    )
    p.add_argument(
        "--generic-pool-size",
        type=_non_negative,
        default=0,
        metavar="N",
        help="keep N generic runtime pods per namespace for router cold starts"
        " to claim (default %(default)s: disabled)",
    )
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return OperatorConfig(
        namespaces=tuple(a.namespace),
        all_namespaces=a.all_namespaces,
        kubeconfig=a.kubeconfig,
        runtime_image=a.runtime_image,
        nodejs_runtime_image=a.nodejs_runtime_image,
        function_endpoint=a.function_endpoint,
        resync_interval=a.resync_interval,
        timing=Timing(start_deadline=a.start_deadline, drain_grace=a.drain_grace),
        metrics_port=a.metrics_port or None,
        liveness_port=a.liveness_port or None,
        create_default_quota=not a.no_default_quota,
        generic_pool_size=a.generic_pool_size,
    )
