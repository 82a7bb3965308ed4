"""The only module that calls the Kubernetes API (besides kopf's own watching/patching).

The official client is synchronous, so every call runs in a worker thread
(``asyncio.to_thread``): a blocking call in an async kopf handler would freeze every
handler and every watch of the operator. Responses are read as raw JSON
(``_preload_content=False``) so the rest of the operator works on the same plain dicts
that kopf hands to handlers, and every call carries an explicit request timeout.

404 on delete/patch and 409 on create are expected races in a level-triggered
controller (someone else - the router, the GC, a previous pass - got there first) and are
reported as booleans, not exceptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from lambdakube.models import GROUP, QUOTA_OBJECT_NAME, VERSION

from lambdakube.resources import labels

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (5, 30)  # connect, read (seconds)
FUNCTIONS = "functions"
QUOTAS = "concurrencyquotas"
FUNCTION_VERSIONS = "functionversions"
FUNCTION_ALIASES = "functionaliases"
#: Status writes by kind (``versions.provisioned_statuses`` keys).
PLURALS = {"FunctionVersion": FUNCTION_VERSIONS, "FunctionAlias": FUNCTION_ALIASES}


def _json(resp) -> dict:
    return json.loads(resp.data)


#: HTTP statuses that mean "someone else got there first" for each kind of call.
ALREADY_EXISTS = 409
GONE = 404


class Cruds:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.core = CoreV1Api(client)
        self.custom = CustomObjectsApi(client)

    def close(self) -> None:
        self.client.close()

    async def _call(self, method, *args, tolerate: int | None = None, **kwargs) -> dict | None:
        """Run one API call in a worker thread and return its JSON body, or None when it
        failed with the ``tolerate`` status (an expected race, see the module docstring)."""

        def call() -> dict | None:
            try:
                return _json(method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs))
            except ApiException as exc:
                if exc.status == tolerate:
                    return None
                raise

        return await asyncio.to_thread(call)

    # -- pods ------------------------------------------------------------------------------

    async def list_pods(self, namespace: str, function: str) -> list[dict]:
        body = await self._call(
            self.core.list_namespaced_pod, namespace, label_selector=f"{labels.FUNCTION}={function}"
        )
        return (body or {}).get("items") or []

    async def list_generic_pods(self, namespace: str) -> list[dict]:
        body = await self._call(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"{labels.ROLE}={labels.ROLE_GENERIC},!{labels.FUNCTION}",
        )
        return (body or {}).get("items") or []

    async def create_pod(self, namespace: str, body: Mapping) -> bool:
        return (
            await self._call(self.core.create_namespaced_pod, namespace, dict(body), tolerate=ALREADY_EXISTS)
            is not None
        )

    async def delete_pod(self, namespace: str, name: str) -> bool:
        return await self._call(self.core.delete_namespaced_pod, name, namespace, tolerate=GONE) is not None

    async def patch_pod(self, namespace: str, name: str, patch: Mapping) -> bool:
        # A dict body goes as a strategic merge patch.
        return await self._call(self.core.patch_namespaced_pod, name, namespace, dict(patch), tolerate=GONE) is not None

    async def delete_function_pods(self, namespace: str, function: str) -> None:
        await self._call(
            self.core.delete_collection_namespaced_pod, namespace, label_selector=f"{labels.FUNCTION}={function}"
        )

    # -- Functions ---------------------------------------------------------------------

    async def get_function(self, namespace: str, name: str) -> dict | None:
        return await self._call(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, FUNCTIONS, name, tolerate=GONE
        )

    async def patch_function_status(self, namespace: str, name: str, status: Mapping) -> bool:
        return (
            await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                FUNCTIONS,
                name,
                {"status": dict(status)},
                tolerate=GONE,
            )
            is not None
        )

    # -- ConcurrencyQuota ------------------------------------------------------------------

    async def get_quota(self, namespace: str) -> dict | None:
        return await self._call(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            QUOTAS,
            QUOTA_OBJECT_NAME,
            tolerate=GONE,
        )

    async def create_default_quota(self, namespace: str) -> dict | None:
        """Create ``default`` with the schema's defaults; None if someone else just did."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ConcurrencyQuota",
            "metadata": {
                "name": QUOTA_OBJECT_NAME,
                "namespace": namespace,
                "labels": {labels.MANAGED_BY: labels.OPERATOR_NAME},
            },
            "spec": {},
        }
        return await self._call(
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            QUOTAS,
            body,
            tolerate=ALREADY_EXISTS,
        )

    async def patch_quota_status(self, namespace: str, status: Mapping) -> bool:
        return (
            await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                QUOTAS,
                QUOTA_OBJECT_NAME,
                {"status": dict(status)},
                tolerate=GONE,
            )
            is not None
        )

    # -- FunctionVersions and FunctionAliases ----------------------------------------------

    async def create_function_version(self, namespace: str, body: Mapping) -> bool:
        """Publish: True when created, False when that name exists already (published)."""
        return (
            await self._call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                FUNCTION_VERSIONS,
                dict(body),
                tolerate=ALREADY_EXISTS,
            )
            is not None
        )

    async def patch_published_status(self, kind: str, namespace: str, name: str, status: Mapping) -> bool:
        """Merge-patch a FunctionVersion's or FunctionAlias's status (False: it is gone)."""
        return (
            await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
                name,
                {"status": dict(status)},
                tolerate=GONE,
            )
            is not None
        )
