"""The operator's ``/init`` driver: provisioned pods get their code once, from the shared
builder, and an Init error lands on the pod.

The contract rows run against a real generic runtime process; the "exactly once" and
"retry until it listens" rows count requests on a small aiohttp server instead (they
are about the driver, not the runtime). No row sleeps to prove that nothing happened:
each waits for the driver's own task to finish and then looks at what was recorded.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from lambdakube.models import FunctionSpec
from lambdakube.resources import init_body, labels
from lambdakube_operator.initializer import Initializer
from tests.cluster.controlplane import free_port

SPEC = FunctionSpec.model_validate(
    {
        "handler": "index.handler",
        "provisionedConcurrency": 1,
        "code": {"inline": {"source": "def handler(e, c):\n    return {'ok': e}\n"}},
    }
)
BROKEN = FunctionSpec.model_validate({"handler": "index.handler", "code": {"inline": {"source": "import left_pad\n"}}})


class Annotations:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict]] = []

    async def __call__(self, namespace, name, patch) -> bool:
        self.patches.append((namespace, name, patch))
        return True


async def settle(initializer: Initializer) -> None:
    await asyncio.gather(*list(initializer._tasks.values()), return_exceptions=True)


async def test_a_generic_runtime_takes_its_code_and_turns_ready(start_runtime):
    runtime = start_runtime(code_dir=None, wait=None)  # no handler: a generic runtime
    assert runtime.request("GET", "/readyz").json()["state"] == "generic"
    notes = Annotations()
    init = Initializer(notes)
    try:
        init.sync("ns", "hello", SPEC, [("hello-p1", f"127.0.0.1:{runtime.port}", "")], {"hello-p1"})
        await settle(init)
    finally:
        await init.close()
    ready = runtime.request("GET", "/readyz")
    assert ready.status == 200 and ready.json()["function"] == "hello"
    assert runtime.invoke({"x": 1}).json() == {"ok": {"x": 1}}
    assert notes.patches == []


async def test_an_init_error_is_written_to_the_pod(start_runtime):
    runtime = start_runtime(code_dir=None, wait=None)
    notes = Annotations()
    init = Initializer(notes)
    try:
        init.sync("ns", "broken", BROKEN, [("broken-p1", f"127.0.0.1:{runtime.port}", "")], {"broken-p1"})
        await settle(init)
    finally:
        await init.close()
    [(ns, name, patch)] = notes.patches
    message = patch["metadata"]["annotations"][labels.INIT_ERROR]
    assert (ns, name) == ("ns", "broken-p1")
    assert message.startswith("ns/broken: Init failed: Runtime.ImportModuleError") and "left_pad" in message


class CountingRuntime:
    """Answers ``/init`` like a runtime would (200 once, then 409) and records bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            if len(self.bodies) > 1:
                return web.json_response({"errorType": "EnvironmentAlreadyInitialized"}, status=409)
            return web.json_response({"ready": True, "initDurationMs": 1.5})

        app = web.Application()
        app.router.add_post("/init", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def counting():
    """A port, a CountingRuntime that will listen on it (``start`` when a test says),
    and a factory of Initializers that are closed at teardown."""
    port, server, made = free_port(), CountingRuntime(), []

    def initializer(**kw) -> Initializer:
        made.append(Initializer(Annotations(), **kw))
        return made[-1]

    yield port, server, initializer
    for init in made:
        await init.close()
    await server.close()


async def test_each_pod_is_sent_its_code_once_across_passes(counting):
    port, server, make = counting
    await server.start(port)
    init = make()
    pods = [("hello-p1", f"127.0.0.1:{port}", "")]
    init.sync("ns", "hello", SPEC, pods, {"hello-p1"})
    init.sync("ns", "hello", SPEC, pods, {"hello-p1"})  # a pass while Init runs
    await settle(init)
    init.sync("ns", "hello", SPEC, pods, {"hello-p1"})  # a pass before the probe flips
    await settle(init)
    assert server.bodies == [json.loads(json.dumps(init_body("hello", "ns", SPEC)))]
    # A pod that is gone is forgotten; a new pod of the same name is a new pod.
    init.sync("ns", "hello", SPEC, [], set())
    init.sync("ns", "hello", SPEC, pods, {"hello-p1"})
    await settle(init)
    assert len(server.bodies) == 2


async def test_a_runtime_not_listening_yet_is_retried_until_it_is(counting):
    port, server, make = counting
    init = make(patience=30, retry_delay=0.02, max_retry_delay=0.05)
    init.sync("ns", "hello", SPEC, [("hello-p1", f"127.0.0.1:{port}", "")], {"hello-p1"})
    task = init._tasks[("ns", "hello-p1")]
    assert not task.done()
    await server.start(port)  # the runtime starts listening after the first refusals
    await asyncio.wait_for(task, 10)
    assert len(server.bodies) == 1


async def test_a_runtime_that_never_listens_is_left_for_a_later_pass(counting):
    port, server, make = counting
    init = make(patience=0.1, retry_delay=0.02, max_retry_delay=0.02)
    init.sync("ns", "hello", SPEC, [("hello-p1", f"127.0.0.1:{port}", "")], {"hello-p1"})
    await settle(init)  # gave up: not marked done
    await server.start(port)
    init.sync("ns", "hello", SPEC, [("hello-p1", f"127.0.0.1:{port}", "")], {"hello-p1"})
    await settle(init)
    assert len(server.bodies) == 1
