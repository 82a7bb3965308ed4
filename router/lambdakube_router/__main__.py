"""``lambdakube-router``: run the router (local processes or Kubernetes pods as environments).

    lambdakube-router --functions examples/ --backend local --port 9000

Prints ``LAMBDAKUBE_ROUTER_LISTENING http://HOST:PORT`` once serving (with ``--port 0``
the real port), then runs until SIGINT/SIGTERM. No access log: the hot path logs nothing
at INFO.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.access import ConfigError
from lambdakube_router.fast_invoke import listen
from lambdakube_router.cli import add_serving_options, auth_settings, serving_config
from lambdakube_router.snapshot import ManifestError

log = logging.getLogger("lambdakube_router")


def give_environments_the_endpoint(config: RouterConfig, port: int) -> None:
    """Local environments call the router they run under (``AWS_ENDPOINT_URL_LAMBDA``)
    unless ``--function-endpoint`` named another; a wildcard host is reached on loopback.
    Set before the start: the backend is made at startup, from the config."""
    if config.backend != "local" or config.function_endpoint:
        return
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "::") else config.host
    config.function_endpoint = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_parser(prog: str = "lambdakube-router") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Lambda-style invocation router")
    p.add_argument(
        "--functions",
        metavar="DIR",
        help="directory of Function/ConcurrencyQuota manifests (local registry);"
        " without it, Function objects are watched through the Kubernetes API",
    )
    p.add_argument(
        "--watch-namespace",
        dest="watch_namespaces",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="Kubernetes registry: watch this namespace; repeat for several (default: all namespaces)",
    )
    p.add_argument(
        "--backend",
        choices=("local", "kubernetes"),
        default="local",
        help="where environments run (default: local processes)",
    )
    add_serving_options(
        p, state_dir_help="durable async queue location (default ~/.local/state/lambdakube)", log_level="INFO"
    )
    p.add_argument("--kubeconfig", help="kubernetes backend: kubeconfig (default: in-cluster/~/.kube)")
    p.add_argument("--runtime-image", help="kubernetes backend: image for inline-code functions")
    p.add_argument(
        "--nodejs-runtime-image",
        help="kubernetes backend: image for nodejs<N>.x functions without spec.image (python and node inside)",
    )
    p.add_argument(
        "--announce-url",
        metavar="URL",
        help="kubernetes backend: this router's announce endpoint as its pods reach it"
        " (http://<router pod IP>:<port>/internal/v1/environments/listening);"
        " fresh pods then say when they listen instead of waiting for the kubelet's"
        " status write",
    )
    p.add_argument(
        "--function-endpoint",
        metavar="URL",
        help="this router's URL as handlers reach it (kubernetes: the Service's; give the"
        " operator the same value; local: its own listening address unless given);"
        " every environment gets it as AWS_ENDPOINT_URL_LAMBDA, so an SDK client built"
        " with no arguments calls this router",
    )
    p.add_argument(
        "--status-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="kubernetes backend: how often busy/idle/coldStarts are written into"
        " Function status (only when changed) and ColdStart/Throttled Events"
        " posted; 0 disables (default 2)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    return p


def config_from_args(args: argparse.Namespace) -> RouterConfig:
    source = None
    if not args.functions:
        from lambdakube_router.sources import KubernetesSource  # noqa: PLC0415

        source = KubernetesSource(kubeconfig=args.kubeconfig, namespaces=args.watch_namespaces)
    return RouterConfig(
        source=source,
        functions_dir=args.functions,
        backend=args.backend,
        state_dir=args.state_dir,
        kubeconfig=args.kubeconfig,
        runtime_image=args.runtime_image,
        nodejs_runtime_image=args.nodejs_runtime_image,
        announce_url=args.announce_url,
        function_endpoint=args.function_endpoint,
        watch_namespaces=tuple(args.watch_namespaces),
        status_interval_seconds=args.status_interval,
        auth=auth_settings(args, default_mode="tokenreview" if args.backend == "kubernetes" else "none"),
        **serving_config(args),
    )


async def serve(config: RouterConfig, on_ready: Callable[[str, int], None] | None = None) -> None:
    app = await init_app(config)  # ManifestError before binding
    # keepalive_timeout also bounds a connection that has not sent a whole request yet
    # (aiohttp arms it when the connection is made, and again after each response).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=config.keepalive_seconds)
    # Bound before the start (the real port with --port 0), so the first environments,
    # provisioned ones included, already know where the router is.
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.create_server((config.host, config.port), family=family, backlog=1024)
    port = sock.getsockname()[1]
    give_environments_the_endpoint(config, port)
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    listener = None
    try:
        listener = await listen(app, runner, sock)
        loop = asyncio.get_running_loop()
        print(f"LAMBDAKUBE_ROUTER_LISTENING http://{config.host}:{port}", flush=True)
        if on_ready:
            on_ready(config.host, port)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        if listener is not None:
            await listener.close()  # no new connections; runner.cleanup closes aiohttp's
        await runner.cleanup()


def run(config: RouterConfig, *, use_uvloop: bool = True, on_ready: Callable[[str, int], None] | None = None) -> int:
    if use_uvloop:
        try:
            import uvloop  # noqa: PLC0415

            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(serve(config, on_ready))
    except (ManifestError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(config_from_args(args), use_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    sys.exit(main())
