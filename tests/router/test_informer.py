"""The informer (list + watch on aiohttp) against a real kube-apiserver, on Functions (a
custom resource; ``test_pod_cache`` covers pods): it lists, follows ADDED/MODIFIED/DELETED,
keeps to its namespaces, resumes a watch that ended from the version it reached, relists
after ``410 Gone`` or a dropped connection (forgetting what it missed), reports a refused
list, and never starts again once closed. Then the Kubernetes source on two informers:
a Function's status write is no new snapshot, a spec change is, a refused list stops the
router's start.

Faults go through ``Faults``, the informer's HTTP in front of a real session: it holds
watch requests, makes the next one ask for an expired version (the apiserver's own 410)
or fails it as a broken connection. No kubelet and no operator: objects are only
objects here.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import aiohttp
import pytest
import yaml

from lambdakube.backoff import Backoff
from lambdakube.models import GROUP, VERSION
from lambdakube_router.informer import ApiSession, Informer
from tests.router.conftest import function, kubectl

pytestmark = pytest.mark.cluster

API = f"/apis/{GROUP}/{VERSION}"
HELLO = """
def handler(event, context):
    return event
"""
FAST = Backoff(0.05, 0.2)


@pytest.fixture
async def configuration(control_plane, crds):
    from kubernetes import config  # noqa: PLC0415

    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    yield api_client.configuration
    api_client.close()


async def apply(cp, namespace: str, name: str, **spec) -> None:
    await kubectl(
        cp,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(function(name, HELLO, namespace=namespace, **spec)),
    )


class Faults:
    """The informer's ``http`` factory: requests go to the real apiserver through a real
    session, with the faults a test turns on. Counts lists and watch requests as they
    arrive (a new watch request means the previous stream ended)."""

    def __init__(self, configuration) -> None:
        self.session = ApiSession(configuration)
        self.lists = 0
        self.watches = 0
        self.watch_urls: list[str] = []
        #: Cleared: watch requests wait here (the informer is disconnected).
        self.open = asyncio.Event()
        self.open.set()
        #: The next watch asks for resourceVersion 1, long gone: the apiserver says 410.
        self.expire = False
        #: The next this many watch requests fail as broken connections.
        self.drop = 0
        #: The next this many lists are answered 429, as by an apiserver whose storage
        #: is still initialising (the answer a freshly started control plane gives).
        self.busy = 0
        self._counted = asyncio.Condition()

    def __call__(self) -> Faults:
        return self

    def get(self, url: str, **kw) -> _Request:
        return _Request(self, url, kw)

    async def count(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        async with self._counted:
            self._counted.notify_all()

    async def until(self, predicate, timeout: float = 15) -> None:
        async with self._counted:
            await asyncio.wait_for(self._counted.wait_for(predicate), timeout)


class _Request:
    def __init__(self, faults: Faults, url: str, kw: dict) -> None:
        self.faults, self.url, self.kw = faults, url, kw

    async def __aenter__(self) -> aiohttp.ClientResponse:
        f, url = self.faults, self.url
        if "watch=1" in url:
            await f.count("watches")
            await f.open.wait()
            if f.drop:
                f.drop -= 1
                raise aiohttp.ClientConnectionError("dropped by the test")
            if f.expire:
                f.expire = False
                url = re.sub(r"resourceVersion=[^&]*", "resourceVersion=1", url)
            f.watch_urls.append(url)
        else:
            await f.count("lists")
            if f.busy:
                f.busy -= 1
                self._cm = None
                return _Busy()  # type: ignore[return-value]
        self._cm = f.session().get(url, **self.kw)
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)


class _Busy:
    """The apiserver's answer while its storage (re)initialises."""

    status = 429

    async def text(self) -> str:
        return '{"kind":"Status","message":"storage is (re)initializing","code":429}'


class Recorder:
    """``on_event`` as (name, old timeout or None, new timeout or None), in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, int | None]] = []

    def __call__(self, key, old, new) -> None:
        self.events.append((key[1], timeout(old), timeout(new)))

    def of(self, name: str) -> list[tuple[int | None, int | None]]:
        return [(old, new) for n, old, new in self.events if n == name]


def timeout(obj: dict | None) -> int | None:
    return None if obj is None else obj["spec"].get("timeoutSeconds", 3)


def informer(http, configuration, namespaces, **kw) -> Informer:
    return Informer(http, configuration, api=API, plural="functions", namespaces=namespaces, retry=FAST, **kw)


async def wait(inf: Informer, predicate, timeout: float = 15) -> None:
    """Until ``predicate()``, woken by the informer's changes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"the informer did not get there; it has {sorted(inf.objects)}"
        await inf.next_change(inf.version, left)


def names(inf: Informer, namespace: str) -> set[str]:
    return {name for ns, name in inf.objects if ns == namespace}


async def test_lists_then_follows_adds_changes_and_deletes(control_plane, configuration, namespace):
    await apply(control_plane, namespace, "before")
    session, seen = ApiSession(configuration), Recorder()
    inf = informer(session, configuration, [namespace], on_event=seen)
    try:
        assert await inf.synced(15)
        assert names(inf, namespace) == {"before"} and seen.of("before") == [(None, 3)]
        assert inf.get(namespace, "before")["metadata"]["uid"]

        await apply(control_plane, namespace, "after")
        await wait(inf, lambda: "after" in names(inf, namespace))
        await apply(control_plane, namespace, "before", timeoutSeconds=9)
        await wait(inf, lambda: timeout(inf.get(namespace, "before")) == 9)
        await kubectl(control_plane, "delete", "function", "after", "-n", namespace)
        await wait(inf, lambda: "after" not in names(inf, namespace))

        assert seen.of("before") == [(None, 3), (3, 9)]
        assert seen.of("after") == [(None, 3), (3, None)]
        assert inf.error is None
    finally:
        await inf.close()
        await session.close()


async def test_keeps_to_its_namespaces_or_watches_the_cluster(control_plane, configuration):
    watched = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    other = f"w-{uuid.uuid4().hex[:8]}"
    session = ApiSession(configuration)
    scoped = informer(session, configuration, watched)
    everywhere = informer(session, configuration, ())
    try:
        for ns in (*watched, other):
            await kubectl(control_plane, "create", "namespace", ns)
            await apply(control_plane, ns, "hello")
        assert await scoped.synced(15) and await everywhere.synced(15)
        await apply(control_plane, watched[1], "second")
        await apply(control_plane, other, "second")
        await wait(scoped, lambda: names(scoped, watched[1]) == {"hello", "second"})
        await wait(everywhere, lambda: names(everywhere, other) == {"hello", "second"})
        assert {ns for ns, _ in scoped.objects} == set(watched)
        assert names(scoped, watched[0]) == {"hello"}
        assert names(everywhere, watched[0]) == {"hello"}
        assert names(everywhere, watched[1]) == {"hello", "second"}
    finally:
        await scoped.close()
        await everywhere.close()
        await session.close()
        for ns in (*watched, other):
            await kubectl(control_plane, "delete", "namespace", ns, "--wait=false", check=False)


async def test_a_watch_that_ends_is_resumed_without_a_relist(control_plane, configuration, namespace):
    faults = Faults(configuration)
    inf = informer(faults, configuration, [namespace], watch_seconds=1)
    try:
        assert await inf.synced(15)
        await faults.until(lambda: faults.watches >= 3)  # two server-side timeouts later
        assert faults.lists == 1
        await apply(control_plane, namespace, "hello")
        await wait(inf, lambda: "hello" in names(inf, namespace))
        assert faults.lists == 1
        # every watch resumed from the version the previous one reached
        versions = [int(re.search(r"resourceVersion=(\d+)", u).group(1)) for u in faults.watch_urls]
        assert versions == sorted(versions)
    finally:
        await inf.close()
        await faults.session.close()


async def test_a_410_relists_and_forgets_what_it_missed(control_plane, configuration, namespace):
    """Disconnected, the informer misses a delete, a create and a change; its next watch
    asks for a version the apiserver no longer has (410 Gone), so it relists: the deleted
    object is reported gone, the others as new and changed."""
    for name in ("stays", "goes"):
        await apply(control_plane, namespace, name)
    faults, seen = Faults(configuration), Recorder()
    inf = informer(faults, configuration, [namespace], watch_seconds=1, on_event=seen)
    try:
        assert await inf.synced(15)
        faults.open.clear()
        held = faults.watches
        await faults.until(lambda: faults.watches > held)  # the running watch has ended
        await kubectl(control_plane, "delete", "function", "goes", "-n", namespace)
        await apply(control_plane, namespace, "new")
        await apply(control_plane, namespace, "stays", timeoutSeconds=7)
        assert names(inf, namespace) == {"stays", "goes"}  # it cannot know yet
        faults.expire = True
        faults.open.set()
        await wait(inf, lambda: names(inf, namespace) == {"stays", "new"} and timeout(inf.get(namespace, "stays")) == 7)
        assert faults.lists == 2
        assert seen.of("goes") == [(None, 3), (3, None)]
        assert seen.of("new") == [(None, 3)]
        assert seen.of("stays") == [(None, 3), (3, 7)]
        assert inf.error is None
    finally:
        await inf.close()
        await faults.session.close()


async def test_a_dropped_connection_relists(control_plane, configuration, namespace):
    await apply(control_plane, namespace, "hello")
    faults = Faults(configuration)
    faults.drop = 2
    inf = informer(faults, configuration, [namespace])
    try:
        assert await inf.synced(15)
        await faults.until(lambda: faults.lists >= 3)  # after each failed watch, after a backoff
        await apply(control_plane, namespace, "second")
        await wait(inf, lambda: names(inf, namespace) == {"hello", "second"})
        assert inf.error is None
    finally:
        await inf.close()
        await faults.session.close()


def refused(configuration) -> object:
    configuration.refresh_api_key_hook = None
    configuration.api_key = {"BearerToken": "not-a-valid-token"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return configuration


async def test_a_refused_list_is_reported(configuration, namespace):
    session = ApiSession(configuration)
    inf = informer(session, refused(configuration), [namespace])
    try:
        assert await inf.synced(15, or_error=True) is False  # at once, not after 15 s
        assert "listing functions" in inf.error and "HTTP 401" in inf.error and inf.refused
    finally:
        await inf.close()
        await session.close()


async def test_a_busy_apiserver_is_waited_for_not_refused(configuration, namespace):
    """429/5xx are for now: ``synced(or_error=True)`` keeps waiting, the lists retry."""
    faults = Faults(configuration)
    faults.busy = 3
    inf = informer(faults, configuration, [namespace])
    try:
        assert await inf.synced(15, or_error=True) is True
        assert faults.lists == 4 and inf.error is None and not inf.refused
    finally:
        await inf.close()
        await faults.session.close()


async def test_a_closed_informer_never_starts_again(configuration, namespace):
    session = ApiSession(configuration)
    inf = informer(session, configuration, [namespace])
    try:
        assert await inf.synced(15)
        await inf.close()
        inf.start()
        assert inf._tasks == []
        never = informer(session, configuration, [namespace])
        await never.close()
        assert await never.synced(15) is False and never._tasks == []
    finally:
        await session.close()


# -- the Kubernetes source on two informers -------------------------------------------------


async def test_the_source_applies_spec_changes_not_status_writes(control_plane, configuration, namespace):
    from kubernetes import client  # noqa: PLC0415

    from lambdakube_router.sources import KubernetesSource

    await apply(control_plane, namespace, "hello")
    api_client = client.ApiClient(configuration)
    source = KubernetesSource(api_client=api_client, namespaces=[namespace], watch_timeout=5)
    applied: list = []
    snap = await source.initial()  # first, as the router does
    task = asyncio.create_task(source.run(applied.append))
    try:
        assert list(snap.functions) == [(namespace, "hello")] and snap.quota_status == {}
        functions = source.informers[0]

        # A status write (the router's status publisher, the operator) moves the object's
        # resourceVersion; once the informer has seen it, nothing is waiting to be applied.
        await kubectl(
            control_plane,
            "patch",
            "function",
            "hello",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"busy": 2}}),
        )
        await wait(functions, lambda: (functions.get(namespace, "hello").get("status") or {}).get("busy") == 2)
        assert not source.pending and applied == []

        await apply(control_plane, namespace, "hello", timeoutSeconds=8)
        deadline = asyncio.get_running_loop().time() + 15
        while not applied:
            assert asyncio.get_running_loop().time() < deadline, "the spec change was not applied"
            await functions.next_change(functions.version, 0.1)
        assert len(applied) == 1 and applied[0].functions[(namespace, "hello")].spec.timeout_seconds == 8
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        api_client.close()
    assert all(not inf._tasks for inf in source.informers)  # run's end closed them


async def test_the_source_refuses_to_start_on_a_refused_list(configuration, namespace):
    from kubernetes import client  # noqa: PLC0415

    from lambdakube_router.sources import KubernetesSource, SourceError

    api_client = client.ApiClient(refused(configuration))
    source = KubernetesSource(api_client=api_client, namespaces=[namespace])
    try:
        with pytest.raises(SourceError, match="HTTP 401"):
            await source.initial()
    finally:
        api_client.close()
