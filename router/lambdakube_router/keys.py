"""Typed application keys (aiohttp ``AppKey``): one place, no string lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from lambdakube_router.app import RouterConfig
    from lambdakube_router.asyncq.dispatcher import Dispatcher
    from lambdakube_router.asyncq.store import AsyncStore
    from lambdakube_router.access import UserInfo
    from lambdakube_router.auth import Access, Gate
    from lambdakube_router.invocations import Engine, EngineSettings
    from lambdakube_router.metrics import Metrics
    from lambdakube_router.pollers.manager import MappingManager
    from lambdakube_router.schedules.runner import Scheduler
    from lambdakube_router.sources import Source

CONFIG: web.AppKey["RouterConfig"] = web.AppKey("config")
ENGINE: web.AppKey["Engine"] = web.AppKey("engine")
SETTINGS: web.AppKey["EngineSettings"] = web.AppKey("settings")
METRICS: web.AppKey["Metrics"] = web.AppKey("metrics")
STORE: web.AppKey["AsyncStore"] = web.AppKey("store")
DISPATCHER: web.AppKey["Dispatcher"] = web.AppKey("dispatcher")
SOURCE: web.AppKey["Source"] = web.AppKey("source")
GATE: web.AppKey["Gate"] = web.AppKey("gate")
#: The check of every request, when auth is on (``auth.Access``).
ACCESS: web.AppKey["Access"] = web.AppKey("access")
MAPPINGS: web.AppKey["MappingManager"] = web.AppKey("mappings")
SCHEDULER: web.AppKey["Scheduler"] = web.AppKey("scheduler")

#: Request key: the namespace of a plain function name for this request, when not the
#: router's ``--namespace`` (a ServiceAccount caller's own, ``access.UserInfo.home_namespace``).
DEFAULT_NAMESPACE: web.RequestKey[str] = web.RequestKey("default_namespace", str)
#: Request key: the authenticated caller (not set with ``--auth none``, nor for a public route).
CALLER: web.RequestKey["UserInfo"] = web.RequestKey("caller")
