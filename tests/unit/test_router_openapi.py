"""The served OpenAPI document covers every route the router registers."""

from __future__ import annotations

import re

from lambdakube_router.app import RouterConfig, init_app
from lambdakube_router.openapi import OPENAPI


async def test_every_route_is_documented(tmp_path):
    app = await init_app(RouterConfig(state_dir=tmp_path))
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD":
            continue
        routes.add((re.sub(r"\{(\w+)\}", r"{\1}", path), route.method.lower()))
    documented = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert routes == documented


def test_document_shape():
    assert OPENAPI["openapi"].startswith("3.")
    invoke = OPENAPI["paths"]["/2015-03-31/functions/{FunctionName}/invocations"]["post"]
    assert {"200", "202", "204", "400", "404", "413", "415", "429", "502", "504"} <= set(invoke["responses"])
    throttle = OPENAPI["components"]["schemas"]["Throttle"]
    assert throttle["properties"]["Reason"]["enum"] == [
        "ReservedFunctionConcurrentInvocationLimitExceeded",
        "ConcurrentInvocationLimitExceeded",
        "FunctionInvocationRateLimitExceeded",
    ]


def test_operations_that_need_a_caller_document_it():
    from lambdakube_router.access import NEEDS, PUBLIC

    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            key = (method.upper(), path)
            if key in PUBLIC:
                assert "security" not in op and "401" not in op["responses"], key
            else:
                assert key in NEEDS and op["security"] == [{"bearer": []}], key
                assert {"401", "403", "503"} <= set(op["responses"]), key
