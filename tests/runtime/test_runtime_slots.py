"""An environment with several slots (``LAMBDAKUBE_MAX_CONCURRENCY``, the Function's
``perEnvironmentConcurrency``), as the router drives it: a real runtime process and our
Node.js bootstrap. Up to N invocations run at once in the one Node.js process, the
N+1st is refused at once (409, never queued), the child is told N as Lambda Managed
Instances tell it, and the built-in python path refuses more than one at its start."""

from __future__ import annotations

import shutil
import threading

import pytest

from tests.runtime.conftest import launch

NODE = """
let inFlight = 0;
export const handler = async (event) => {
  inFlight += 1;
  const seen = inFlight;
  console.log("holding");
  await new Promise((resolve) => setTimeout(resolve, event.holdMs ?? 0));
  inFlight -= 1;
  return { seen, max: process.env.AWS_LAMBDA_MAX_CONCURRENCY };
};
"""


@pytest.fixture(autouse=True)
def _node():
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `apt-get install nodejs` (Debian's, v18+)", pytrace=False)


def test_two_at_once_in_one_node_process_and_a_third_is_refused(start_runtime):
    rt = start_runtime(
        "index.handler",
        inline_code=NODE,
        env={"LAMBDAKUBE_RUNTIME": "nodejs20.x", "LAMBDAKUBE_MAX_CONCURRENCY": "2", "LAMBDAKUBE_TIMEOUT_SECONDS": "20"},
    )
    replies: list = [None, None]

    def hold(i: int) -> None:
        replies[i] = rt.invoke({"holdMs": 1500}, headers={"X-Request-Id": f"slot-{i}"})

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    # Each console line carries its own invocation's id: both are running now.
    rt.wait_for_line(lambda line: "\tslot-1\tINFO\tholding" in line)
    rt.wait_for_line(lambda line: "\tslot-0\tINFO\tholding" in line)
    third = rt.invoke({})
    for t in threads:
        t.join(timeout=30)
    assert third.status == 409 and third.json()["errorType"] == "EnvironmentBusy"
    assert "serves 2 requests at a time" in third.json()["errorMessage"]
    assert [r.status for r in replies] == [200, 200]
    assert sorted(r.json()["seen"] for r in replies) == [1, 2]  # they overlapped
    assert {r.json()["max"] for r in replies} == {"2"}
    assert rt.invoke({}).json()["seen"] == 1  # free again


def test_the_builtin_python_path_refuses_more_than_one_at_its_start():
    with pytest.raises(Exception) as failed:
        launch("basic.echo", env={"LAMBDAKUBE_MAX_CONCURRENCY": "2"}, wait="ready")
    assert "needs a Runtime API runtime" in str(failed.value)
