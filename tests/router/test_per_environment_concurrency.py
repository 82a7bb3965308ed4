"""``perEnvironmentConcurrency`` end to end: a real router on the local backend, real
Node.js environments, a bounded burst of concurrent invokes.

The hard invariant is checked from outside the router's own bookkeeping: every
invocation appends ``+<instance>`` when it starts and ``-<instance>`` when it ends to
one shared file (``O_APPEND``: one write per line, from every environment's process),
and the test replays that file. An environment never runs more than N at once; a burst
of 3N invocations that all overlap uses ceil(3N / N) = 3 environments; concurrency
limits still count invocations, not environments; a timeout recycles the environment
and its other invocation gets a clear, counted error.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import shutil

import pytest

from tests.router.conftest import function

HOLDER = """
import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";

const instanceId = randomUUID();
const journal = process.env.JOURNAL;
let inFlight = 0;

export const handler = async (event, context) => {
  inFlight += 1;
  const seen = inFlight;
  appendFileSync(journal, `+${instanceId}\\n`);
  console.log(`holding ${event.holdMs} ms`);
  await new Promise((resolve) => setTimeout(resolve, event.holdMs ?? 0));
  appendFileSync(journal, `-${instanceId}\\n`);
  inFlight -= 1;
  return { instanceId, seen, requestId: context.awsRequestId };
};
"""


@pytest.fixture(autouse=True)
def _node():
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `apt-get install nodejs` (Debian's, v18+)", pytrace=False)


def most_at_once(journal) -> dict[str, int]:
    """The most invocations each instance (environment) ran at once, from the journal."""
    now: collections.Counter[str] = collections.Counter()
    peak: collections.Counter[str] = collections.Counter()
    for line in journal.read_text().splitlines():
        instance = line[1:]
        now[instance] += 1 if line[0] == "+" else -1
        peak[instance] = max(peak[instance], now[instance])
    assert all(v == 0 for v in now.values()), "every invocation that started ended"
    return dict(peak)


def holder(n: int, journal, **spec) -> dict:
    return function(
        "holder",
        HOLDER,
        runtime="nodejs20.x",
        perEnvironmentConcurrency=n,
        env={"JOURNAL": str(journal)},
        **spec,
    )


@pytest.mark.parametrize("n", [1, 2, 4])
async def test_never_more_than_n_at_once_and_ceil_environments(make_router, tmp_path, n):
    journal = tmp_path / "journal"
    journal.touch()
    router = await make_router(holder(n, journal))
    burst = 3 * n
    results = await asyncio.gather(*(router.invoke_json("holder", {"holdMs": 1500}) for _ in range(burst)))
    assert [status for status, _, _ in results] == [200] * burst, results
    envs = collections.Counter(headers["X-Environment-Id"] for _, headers, _ in results)
    # All 3N overlap (each holds 1.5 s, and they were sent together): ceil(3N / N) = 3.
    assert len(envs) == 3, envs
    assert set(envs.values()) == {n}
    peaks = most_at_once(journal)
    assert len(peaks) == 3 and max(peaks.values()) == n, peaks
    assert max(body["seen"] for _, _, body in results) == n
    # One cold start per environment, however many it served at once.
    assert sum(headers["X-Cold-Start"] == "true" for _, headers, _ in results) == 3
    pool = router.pool("holder")
    assert pool.stats.cold_starts == 3
    # Released, all idle again (nothing in flight): reaped as before.
    assert pool.counts()["idle"] == 3 and pool.counts()["busy"] == 0


async def test_the_environment_serves_n_and_reports_its_slots(make_router, tmp_path):
    journal = tmp_path / "journal"
    journal.touch()
    router = await make_router(holder(2, journal))
    first = asyncio.ensure_future(router.invoke_json("holder", {"holdMs": 1500}))
    await router.eventually(lambda: router.pool("holder").counts()["busy"] == 1)
    status, headers, body = await router.invoke_json("holder", {"holdMs": 0}, headers={"X-Amz-Log-Type": "Tail"})
    assert status == 200 and headers["X-Cold-Start"] == "false"  # the busy env's free slot
    assert body["seen"] == 2
    # Its tail holds its own lines only (told apart by the request id each line carries).
    tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
    assert "holding 0 ms" in tail and "holding 1500 ms" not in tail, tail
    _, first_headers, first_body = await first
    assert first_headers["X-Environment-Id"] == headers["X-Environment-Id"]
    assert first_body["instanceId"] == body["instanceId"]
    described = await router.get_json("/lambdakube/v1/namespaces/default/functions/holder")
    (env,) = described["pool"]["environments"]
    assert env["slots"] == 2 and env["inFlight"] == 0


async def test_limits_count_invocations_not_environments(make_router, tmp_path):
    journal = tmp_path / "journal"
    journal.touch()
    router = await make_router(holder(2, journal, reservedConcurrency=3))
    results = await asyncio.gather(*(router.invoke_json("holder", {"holdMs": 1500}) for _ in range(4)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 200, 429], results
    envs = {headers["X-Environment-Id"] for status, headers, _ in results if status == 200}
    assert len(envs) == 2  # ceil(3 / 2)


async def test_a_timeout_recycles_the_environment_and_fails_the_other_invocation_clearly(make_router, tmp_path):
    journal = tmp_path / "journal"
    journal.touch()
    router = await make_router(holder(2, journal, timeoutSeconds=1))
    slow, other = await asyncio.gather(
        router.invoke_json("holder", {"holdMs": 5000}),
        router.invoke_json("holder", {"holdMs": 4000}),
    )
    assert slow[1]["X-Environment-Id"] == other[1]["X-Environment-Id"]
    by_type = {body["errorType"]: (headers, body) for _, headers, body in (slow, other)}
    timed_out_headers, timed_out = by_type["Sandbox.Timedout"]
    recycled_headers, recycled = by_type["Sandbox.Recycled"]
    assert timed_out_headers["X-Amz-Function-Error"] == recycled_headers["X-Amz-Function-Error"] == "Unhandled"
    timed_out_id = timed_out_headers["X-Amz-Request-Id"]
    assert recycled_headers["X-Lambdakube-Recycled-By"] == timed_out_id
    assert f"request {timed_out_id} timed out after" in recycled["errorMessage"]
    metrics = await (await router.client.get("/metrics")).text()
    assert 'lambdakube_recycled_invocations_total{function="holder",namespace="default"} 1.0' in metrics
    # The recycled environment is gone: the next invocation is a cold start elsewhere.
    status, headers, _ = await router.invoke_json("holder", {"holdMs": 0})
    assert status == 200 and headers["X-Cold-Start"] == "true"
    assert headers["X-Environment-Id"] != slow[1]["X-Environment-Id"]
