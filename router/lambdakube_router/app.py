"""aiohttp app factory: ``init_app(config)`` wires registry, pools, async queue, metrics.

Why everything starts in one ``cleanup_ctx``: startup and shutdown happen in one place
and in mirrored order (store opened before the dispatcher runs, pools closed before the
backend), and tests get a fully working router from ``aiohttp_client(await init_app(c))``.
Manifests are loaded inside ``init_app`` itself, so an invalid one fails before the
server binds (``lambdakube dev`` refuses to start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from lambdakube_router import (
    announce_api,
    auth,
    client_guard,
    event_source_api,
    gauges,
    introspection,
    invoke_api,
    keys,
    kube_api,
    lambda_provisioned_api,
    lambda_read_api,
    lambda_write_api,
    status_publisher,
    ui,
    url_api,
)
from lambdakube_router.access import AuthSettings
from lambdakube import schedule_expr
from lambdakube_router.asyncq import health
from lambdakube_router.asyncq.dispatcher import Dispatcher
from lambdakube_router.asyncq.policy import RetryPolicy
from lambdakube_router.asyncq.store import AsyncStore, default_state_dir
from lambdakube_router.backends.base import Backend
from lambdakube_router.backends.secrets_dir import ObjectDirs
from lambdakube_router.invocations import Engine, EngineSettings
from lambdakube_router.loop_lag import LoopLag
from lambdakube_router.metrics import Metrics
from lambdakube_router.names import Accounts
from lambdakube_router.pollers.manager import MappingManager, source_status_writer
from lambdakube_router.schedules import runner as schedules_runner
from lambdakube_router.schedules.ticks import TickStore
from lambdakube_router.snapshot import ManifestDirectory, Snapshot
from lambdakube_router.sources import DirectorySource, Source, StaticSource

log = logging.getLogger(__name__)


@dataclass
class RouterConfig:
    #: A directory of Function/ConcurrencyQuota manifests (local mode) ...
    functions_dir: str | Path | None = None
    #: ... or a ready snapshot (tests), or any Source (kubernetes watch).
    snapshot: Snapshot | None = None
    source: Source | None = None
    #: "local", "kubernetes", or a Backend instance.
    backend: str | Backend = "local"
    namespace: str = "default"
    #: Which namespace an AWS account id in a FunctionName ARN names
    #: (``--account-namespace``, ``--default-account``); unmapped accounts are not found.
    accounts: Accounts = field(default_factory=Accounts)
    host: str = "127.0.0.1"
    port: int = 9000
    #: Seconds a client connection may stay without a complete request: idle between
    #: requests, or still sending its first request's head (a slowloris) - then it is
    #: closed. aiohttp's default is 3,630 s; Envoy and Knative's queue-proxy use 60-75 s.
    keepalive_seconds: float = 75.0
    #: Serve plain Invoke requests on the router's own front (``fast_invoke``); False:
    #: everything through aiohttp (to compare the two).
    fast_invoke: bool = True
    #: Seconds a request's body may take to arrive after its head: then 408 and close.
    body_timeout_seconds: float = client_guard.BODY_TIMEOUT_SECONDS
    #: Client connections above this are answered 503 and closed, unread (``serve``).
    max_connections: int = client_guard.MAX_CONNECTIONS
    #: Who may call (``access``, ``auth``): none (loopback only unless insecure),
    #: tokenreview (TokenReview + SubjectAccessReview) or token-file.
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: Durable async queue location; None: ~/.local/state/lambdakube.
    state_dir: str | Path | None = None
    invoke_grace_seconds: float = 2.0
    init_timeout_seconds: float = 30.0
    reap_interval_seconds: float = 1.0
    watch_interval_seconds: float | None = 2.0
    async_retry: RetryPolicy = field(default_factory=RetryPolicy)
    async_concurrency: int = 64
    async_poll_interval: float = 1.0
    sqlite_synchronous: str = "FULL"
    #: A corrupt async store is renamed aside (``<file>.corrupt-<time>``) and replaced by
    #: an empty one. False: the router runs without async invocations until it is mended.
    quarantine_corrupt_store: bool = False
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    #: local backend: where Secret and ConfigMap references are read from,
    #: ``<dir>/<namespace>/<name>/<key>`` (``backends.secrets_dir``); None: not given.
    secrets_dir: str | Path | None = None
    configmaps_dir: str | Path | None = None
    #: local backend: pre-warmed generic environments kept ready for cold starts. Also
    #: the cap on them: they count toward no function's concurrency or namespace quota.
    #: 0 disables (every cold start spawns a fresh process).
    generic_pool_size: int = 2
    #: kubernetes backend
    kubeconfig: str | None = None
    runtime_image: str | None = None
    #: kubernetes backend: the image of ``nodejs<N>.x`` functions (None: the default).
    nodejs_runtime_image: str | None = None
    #: kubernetes backend: the URL of this router's ``announce_api`` as its fresh pods can
    #: reach it (the chart: the router pod's own IP). None: pods don't announce.
    announce_url: str | None = None
    #: kubernetes backend: the router's URL for handlers' SDKs (``AWS_ENDPOINT_URL_LAMBDA``
    #: in every pod it creates, ``lambdakube.resources.identity``). None: not set.
    function_endpoint: str | None = None
    #: kubernetes backend: the namespaces served (empty: all), for its pod cache.
    watch_namespaces: tuple[str, ...] = ()
    #: kubernetes backend: write busy/idle/coldStarts into Function status and post
    #: ColdStart/Throttled Events every N seconds (None or 0: off).
    status_interval_seconds: float | None = 2.0
    status_event_window_seconds: float = 60.0
    #: How often the async queue's oldest event is sampled for its age gauge (``gauges``).
    queue_age_interval_seconds: float = gauges.QUEUE_AGE_INTERVAL
    #: How often the scheduler looks for ticks due (``schedules.runner``).
    schedule_interval_seconds: float = schedules_runner.INTERVAL
    #: Test only (``--schedule-minute-seconds``): how long a rate's minute is, so that a
    #: real-time test sees ``rate(1 minute)`` tick in seconds. Crons keep wall time.
    schedule_minute_seconds: float = schedule_expr.MINUTE
    #: The time schedules are judged by (tests: a fake clock); None: ``wall_clock``.
    schedule_clock: Callable[[], float] | None = None


def _make_source(config: RouterConfig) -> Source:
    if config.source is not None:
        return config.source
    if config.snapshot is not None:
        return StaticSource(config.snapshot)
    if config.functions_dir is not None:
        check = None
        if config.backend == "local":  # the kubelet resolves the kubernetes backend's
            objects = _object_dirs(config)
            check = lambda entry: objects.problems(entry.ref.namespace, entry.spec)  # noqa: E731
        manifests = ManifestDirectory(config.functions_dir, config.namespace, check=check)
        return DirectorySource(
            config.functions_dir, config.namespace, config.watch_interval_seconds, manifests=manifests
        )
    return StaticSource(Snapshot())


def _object_dirs(config: RouterConfig) -> ObjectDirs:
    return ObjectDirs(
        secrets=Path(config.secrets_dir) if config.secrets_dir is not None else None,
        config_maps=Path(config.configmaps_dir) if config.configmaps_dir is not None else None,
    )


def _make_backend(config: RouterConfig, session: aiohttp.ClientSession, state_dir: Path) -> Backend:
    """``state_dir``: the router's own (its lock is held): the local backend keeps its
    environments' files in it, and removes what a killed router left there."""
    if not isinstance(config.backend, str):
        return config.backend
    if config.backend == "local":
        from lambdakube_router.backends.local import LocalBackend

        local = LocalBackend(
            session=session,
            generic_pool_size=config.generic_pool_size,
            work_dir=state_dir / "environments",
            objects=_object_dirs(config),
        )
        local.function_endpoint = config.function_endpoint  # else its own address, once listening
        return local
    if config.backend == "kubernetes":
        from lambdakube_router.backends.kubernetes import KubernetesBackend

        kw: dict[str, Any] = {"image": config.runtime_image} if config.runtime_image else {}
        if config.nodejs_runtime_image:
            kw["nodejs_image"] = config.nodejs_runtime_image
        return KubernetesBackend(
            kubeconfig=config.kubeconfig,
            announce_url=config.announce_url,
            function_endpoint=config.function_endpoint,
            namespaces=config.watch_namespaces,
            **kw,
        )
    raise ValueError(f"unknown backend {config.backend!r} (local or kubernetes)")


async def init_app(config: RouterConfig) -> web.Application:
    source = _make_source(config)
    initial = await source.initial()  # ManifestError: refuse to start

    metrics = Metrics()
    app = web.Application(
        client_max_size=invoke_api.MAX_SYNC_PAYLOAD + 1024 * 1024,
        middlewares=[client_guard.body_guard(metrics, config.body_timeout_seconds)],
    )
    auth.install(app, config)  # ConfigError: refuse to start
    settings = EngineSettings(
        invoke_grace_seconds=config.invoke_grace_seconds,
        init_timeout_seconds=config.init_timeout_seconds,
        reap_interval_seconds=config.reap_interval_seconds,
        clock=config.clock,
        wall_clock=config.wall_clock,
    )
    app[keys.CONFIG] = config
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.SOURCE] = source

    async def lifecycle(app: web.Application):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        state_dir = Path(config.state_dir) if config.state_dir else default_state_dir()
        store = AsyncStore(state_dir, synchronous=config.sqlite_synchronous)
        engine = Engine(_make_backend(config, session, state_dir), app[keys.METRICS], settings)
        dispatcher = Dispatcher(
            store,
            engine,
            retry=config.async_retry,
            concurrency=config.async_concurrency,
            poll_interval=config.async_poll_interval,
            wall_clock=config.wall_clock,
            init_timeout=config.init_timeout_seconds,
            invoke_grace=config.invoke_grace_seconds,
        )
        scheduler = schedules_runner.Scheduler(
            engine,
            dispatcher,
            TickStore(state_dir, synchronous=config.sqlite_synchronous),
            wall_clock=config.wall_clock,
            clock=config.schedule_clock,
            interval=config.schedule_interval_seconds,
            minute_seconds=config.schedule_minute_seconds,
            registry=app[keys.METRICS].registry,
        )
        app[keys.ENGINE] = engine
        app[keys.STORE] = store
        app[keys.DISPATCHER] = dispatcher
        app[keys.SCHEDULER] = scheduler
        app[keys.METRICS].attach_state(engine.state_rows, engine.namespace_rows, lambda: dict(store.depth))
        app[keys.METRICS].attach_async_store(lambda: store.health)
        generic_pool = engine.backend.generic_pool
        if generic_pool is not None:
            app[keys.METRICS].attach_generic_pool(generic_pool.snapshot)
        announces = engine.backend.announces
        if announces is not None:
            app[keys.METRICS].attach_announces(lambda: dict(announces))
        app[keys.METRICS].registry.register(gauges.LimitsCollector(lambda: engine))
        queue_age = gauges.QueueAge(store, config.wall_clock, config.queue_age_interval_seconds)
        app[keys.METRICS].registry.register(queue_age)
        kube = status_publisher.kubernetes_api(engine.backend)
        mappings = MappingManager(
            engine=engine,
            store=store,
            registry=app[keys.METRICS].registry,
            clock=config.clock,
            wall_clock=config.wall_clock,
            status_writer=source_status_writer(source),
            wake_async=dispatcher.notify,
        )
        app[keys.MAPPINGS] = mappings

        def apply(snap: Snapshot) -> None:
            engine.apply(snap)
            mappings.apply(snap.mappings)

        watcher = publisher = reported = None
        lag = LoopLag(app[keys.METRICS].loop_lag.observe)
        app[keys.METRICS].attach_loop_lag_max(lambda: lag.max_seconds)
        if kube is not None and config.status_interval_seconds:
            publisher = status_publisher.StatusPublisher(
                kube,
                status_publisher.engine_rows(engine),
                interval=config.status_interval_seconds,
                event_window=config.status_event_window_seconds,
                clock=config.clock,
                wall_clock=config.wall_clock,
            )
        try:
            lag.start()
            await store.open(quarantine_corrupt=config.quarantine_corrupt_store, wall_now=config.wall_clock())
            apply(initial)
            engine.start_background()
            dispatcher.start()
            mappings.start()
            await scheduler.open_and_start()  # after the store: its lock owns the state dir
            queue_age.start()
            if store.quarantined_files and kube is not None:
                reported = asyncio.get_running_loop().create_task(
                    report_quarantine(kube, store, wall_now=config.wall_clock())
                )
            if publisher is not None:
                publisher.start()
            watcher = asyncio.get_running_loop().create_task(source.run(apply))
            log.info("router ready: %d functions, state in %s", len(engine.functions), state_dir)
            yield
        finally:
            for task in (watcher, reported):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await mappings.close()
            if publisher is not None:
                await publisher.close()
            await lag.close()
            await queue_age.close()
            await scheduler.close()
            await dispatcher.close()
            await engine.close()
            await store.close()
            await session.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/2015-03-31/functions/{FunctionName}/invocations", invoke_api.invoke)
    lambda_read_api.add_routes(app)
    lambda_write_api.add_routes(app)
    lambda_provisioned_api.add_routes(app)
    introspection.add_routes(app)
    ui.add_routes(app)
    announce_api.add_routes(app)
    event_source_api.add_routes(app)
    url_api.add_routes(app)
    return app


async def report_quarantine(
    kube: kube_api.KubeApi, store: AsyncStore, *, wall_now: float, environ: dict[str, str] | None = None
) -> bool:
    """A Warning Event on the router's own Pod (``POD_NAMESPACE``/``POD_NAME``, the chart's
    downward API) saying its async store was moved aside: the log line may be gone by the
    time anyone looks, the Event is on the object they look at. False: not posted."""
    env = os.environ if environ is None else environ
    pod_namespace, pod_name = env.get("POD_NAMESPACE"), env.get("POD_NAME")
    if not pod_namespace or not pod_name:
        log.warning("POD_NAMESPACE/POD_NAME not set: no Event about the quarantined async store")
        return False
    moved = ", ".join(dst.name for _, dst in store.quarantined_files)
    body = health.quarantine_event(
        pod_namespace=pod_namespace,
        pod_name=pod_name,
        message=f"The async store {store.path} was corrupt; moved aside ({moved}) and started empty:"
        " the async events and queue messages in it are not delivered.",
        instance=env.get("HOSTNAME") or socket.gethostname(),
        wall_now=wall_now,
    )
    try:
        await kube.create(kube_api.events(pod_namespace), body)
    except (kube_api.ApiError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("cannot post the %s Event: %s", health.REASON_QUARANTINED, exc)
        return False
    return True


def temp_state_dir() -> str:
    return tempfile.mkdtemp(prefix="lambdakube-router-")
