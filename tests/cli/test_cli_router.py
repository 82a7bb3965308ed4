"""The real ``lambdakube`` command (a subprocess) against a real router on 127.0.0.1 with
real runtime processes (``make_router``): what it prints, parsed, and its exit codes."""

from __future__ import annotations

import asyncio
import json
import socket

import yaml

from lambdakube_router.access import AuthSettings
from tests.cli.conftest import LAMBDAKUBE, base_url, lk, parse_table
from tests.router.conftest import function, quota

ECHO = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    print("handled", event.get("marker", "-"))
    return {"echo": event}
"""

SLOW = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "done"
"""


def manifests():
    return (
        function("echo", ECHO),
        function("closed", ECHO, reservedConcurrency=0),  # every invocation throttled
        function("warm", ECHO, reservedConcurrency=3, provisionedConcurrency=1),
        function("greedy", ECHO, reservedConcurrency=500),  # does not fit: rejected
        quota(concurrentExecutions=100, minimumUnreserved=10),
    )


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_exit_codes(make_router, tmp_path):
    router = await make_router(*manifests())
    url = base_url(router)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = {
        "a result": (["invoke", "echo"], 0),
        "a function error": (["invoke", "echo", "--payload", '{"fail": true}'], 1),
        "a throttle": (["invoke", "closed"], 3),
        "an unknown function": (["invoke", "nothing-here"], 1),
        "an unknown qualifier": (["invoke", "echo", "--qualifier", "7"], 1),
        "an event": (["invoke", "echo", "--async"], 0),
        "a dry run": (["invoke", "echo", "--dry-run"], 0),
        "a payload that is not JSON": (["invoke", "echo", "--payload", "{"], 2),
        "a payload file that is not JSON": (["invoke", "echo", "--payload", f"@{bad}"], 2),
        "a missing payload file": (["invoke", "echo", "--payload", f"@{tmp_path}/none"], 2),
        "--async with --dry-run": (["invoke", "echo", "--async", "--dry-run"], 2),
        "an unknown flag": (["invoke", "echo", "--nope"], 2),
        "no name": (["describe"], 2),
        "an unknown resource": (["get", "pods"], 2),
        "describe an unknown function": (["describe", "nothing-here"], 1),
        "a bench with throttles only": (["bench", "closed", "-c", "2", "-n", "4"], 3),
        "a bench with function errors": (["bench", "echo", "-n", "2", "--payload", '{"fail": true}'], 1),
        "a bench of zero": (["bench", "echo", "-n", "0"], 2),
        "a router URL that is no URL": (["get", "--router-url", "ftp://x"], 2),
        "no router there": (["get", "--router-url", f"http://127.0.0.1:{free_port()}"], 1),
    }
    got = {}
    for name, (args, _) in cases.items():
        run = await lk(*args, url=url)
        got[name] = run.code
        if run.code == 2:
            assert "error" in run.err, (name, run.err)
    assert got == {name: want for name, (_, want) in cases.items()}


async def test_invoke_prints_result_report_cold_warm_and_environment(make_router):
    router = await make_router(*manifests())
    url = base_url(router)
    first = await lk("invoke", "echo", "--payload", '{"n": 1}', url=url)
    assert first.code == 0, first.err
    assert json.loads(first.out) == {"echo": {"n": 1}}
    how, report = first.err.splitlines()
    assert how.startswith("cold start (init ") and report.startswith("REPORT RequestId: ")
    env_id = how.split("environment ")[1].split()[0]

    second = await lk("invoke", "echo", "-o", "json", url=url)
    doc = json.loads(second.out)
    assert doc["coldStart"] is False and doc["environmentId"] == env_id and doc["result"] == {"echo": {}}
    assert doc["report"].startswith("REPORT RequestId: " + doc["requestId"]) and "logTail" not in doc

    tailed = await lk("invoke", "echo", "--payload", '{"marker": "m-1"}', "--log-tail", url=url)
    assert "handled m-1" in tailed.err and "START RequestId" in tailed.err and "warm, environment" in tailed.err

    failed = await lk("invoke", "echo", "--payload", '{"fail": true}', url=url)
    assert failed.code == 1 and json.loads(failed.out)["errorType"] == "ValueError"
    assert "function error: Unhandled" in failed.err

    throttled = await lk("invoke", "closed", "-o", "yaml", url=url)
    assert throttled.code == 3
    assert yaml.safe_load(throttled.out)["throttle"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    event = await lk("invoke", "echo", "--async", url=url)
    assert event.code == 0 and event.out.startswith("accepted: event ")


async def test_get_functions_and_quota(make_router):
    router = await make_router(*manifests())
    url = base_url(router)
    for _ in range(2):
        assert (await lk("invoke", "closed", url=url)).code == 3
    assert (await lk("invoke", "echo", url=url)).code == 0

    rows = {r["NAME"]: r for r in parse_table((await lk("get", url=url)).out)}
    assert set(rows) == {"echo", "closed", "warm", "greedy"}
    assert rows["closed"]["THROTTLES"] == "2" and rows["closed"]["RESERVED"] == "0"
    assert rows["echo"]["COLD-STARTS"] == "1" and rows["echo"]["READY"] == "1" and rows["echo"]["IDLE"] == "1"
    assert rows["warm"]["PROVISIONED"] in ("0/1", "1/1") and rows["warm"]["RESERVED"] == "3"
    assert rows["greedy"]["RESERVED"] == "500 (rejected)"

    wide = {r["NAME"]: r for r in parse_table((await lk("get", "functions", "-o", "wide", url=url)).out)}
    assert wide["closed"]["THROTTLE-REASONS"] == "ReservedFunctionConcurrentInvocationLimitExceeded=2"
    assert wide["echo"]["P50"].endswith("ms")

    names = (await lk("get", "-o", "name", url=url)).out.split()
    assert names == ["closed", "echo", "greedy", "warm"]
    as_json = json.loads((await lk("get", "functions", "-o", "json", url=url)).out)
    assert [f["name"] for f in as_json["functions"]] == names

    (q,) = parse_table((await lk("get", "quota", url=url)).out)
    assert q == {
        "NAMESPACE": "default",
        "QUOTA": "100",
        "USED": "0",
        "RESERVED": "3",  # closed (0) and warm (3) fit; greedy does not
        "UNRESERVED": "97",
        "GRANTED": "closed=0,warm=3",
        "REJECTED": "greedy",
    }
    q_yaml = yaml.safe_load((await lk("get", "quota", "-o", "yaml", url=url)).out)["quota"]
    assert q_yaml["concurrentExecutions"] == 100 and "greedy" in q_yaml["rejected"]

    other = await lk("get", "-n", "elsewhere", url=url)
    assert other.code == 0 and other.out == "" and "No functions found in elsewhere" in other.err


async def test_describe_shows_environments_and_recent_throttles(make_router):
    router = await make_router(*manifests())
    url = base_url(router)
    for _ in range(3):
        await lk("invoke", "echo", url=url)
    await lk("invoke", "closed", url=url)

    text = (await lk("describe", "echo", url=url)).out
    envs = parse_table(text.split("Environments:\n")[1].split("Throttles:")[0])
    (env,) = envs
    assert env["STATE"] == "idle" and env["INVOCATIONS"] == "3" and env["PROVISIONED"] == "no"
    assert env["AGE"].endswith("s") and "3 invocations, p50 " in text and "Throttles:\n  <none>" in text

    closed = (await lk("describe", "closed", url=url)).out
    (th,) = parse_table(closed.split("Throttles:\n")[1].split("Recent throttles:")[0])
    assert th["REASON"] == "ReservedFunctionConcurrentInvocationLimitExceeded" and th["TOTAL"] == "1"
    (recent,) = parse_table(closed.split("Recent throttles:\n")[1])
    assert recent["WHEN"].endswith("s ago") and recent["REASON"] == th["REASON"]

    await router.eventually(lambda: router.pool("warm").provisioned_ready()[0] >= 1)
    warm = json.loads((await lk("describe", "warm", "-o", "json", url=url)).out)
    assert [e["provisioned"] for e in warm["environments"]] == [True]


async def test_logs_and_follow(make_router):
    router = await make_router(*manifests())
    url = base_url(router)
    assert (await lk("invoke", "echo", "--payload", '{"marker": "first"}', url=url)).code == 0
    out = (await lk("logs", "echo", url=url)).out.splitlines()
    env = out[0].split("]")[0] + "]"
    assert all(line.startswith(env) for line in out)
    assert [line.split("] ")[1].split()[0] for line in out] == ["START", "handled", "END", "REPORT"]
    assert f"{env} handled first" in out

    follower = await asyncio.create_subprocess_exec(
        str(LAMBDAKUBE),
        "logs", "echo", "--follow", "--interval", "0.1", "--max-seconds", "30", "--router-url", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        seen = []
        for _ in range(200):  # bounded: each round is one invoke and one line read at most
            line = (await asyncio.wait_for(follower.stdout.readline(), 15)).decode().rstrip("\n")
            seen.append(line)
            if line.endswith("handled first"):
                assert (await lk("invoke", "echo", "--payload", '{"marker": "second"}', url=url)).code == 0
            if line.endswith("handled second"):
                break
        else:
            raise AssertionError(seen)
        # the first invocation's lines were printed once, the second's after them
        assert sum(line.endswith("handled first") for line in seen) == 1
    finally:
        follower.kill()  # by its handle (its PID)
        await follower.wait()


async def test_bench_counts_cold_and_warm(make_router):
    router = await make_router(function("slow", SLOW), function("echo", ECHO))
    url = base_url(router)
    run = await lk("bench", "slow", "-c", "3", "-n", "30", "--payload", '{"sleep": 0.01}', "-o", "json", url=url)
    assert run.code == 0, run.err
    s = json.loads(run.out)
    assert (s["completed"], s["succeeded"], s["concurrency"]) == (30, 30, 3)
    assert 1 <= s["cold"]["count"] <= 3 and s["cold"]["count"] + s["warm"]["count"] == 30
    assert s["warm"]["p50Ms"] >= 10 and s["latency"]["p99Ms"] >= s["latency"]["p50Ms"]
    envs = json.loads((await lk("describe", "slow", "-o", "json", url=url)).out)["environments"]
    assert len(envs) >= s["cold"]["count"] and sum(e["invocations"] for e in envs) == 30

    text = await lk("bench", "echo", "-c", "2", "-n", "10", "--progress", url=url)
    assert text.code == 0 and "10/10 invocations, 2 at a time" in text.out and "[" + "#" * 30 + "] 10/10" in text.err


async def test_a_token_from_the_environment_or_the_flag(make_router, tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text("s3cret,alice,1\n")
    router = await make_router(function("echo", ECHO), auth=AuthSettings(mode="token-file", token_file=str(path)))
    url = base_url(router)
    refused = await lk("get", url=url)
    assert refused.code == 1 and "401 UnrecognizedClientException" in refused.err
    assert (await lk("get", url=url, env={"LAMBDAKUBE_TOKEN": "s3cret"})).code == 0
    assert (await lk("invoke", "echo", "--token", "s3cret", url=url)).code == 0
    assert (await lk("logs", "echo", "--token", "wrong", url=url)).code == 1


async def test_completion_script():
    import subprocess

    run = await lk("completion", "bash")
    assert run.code == 0
    assert subprocess.run(["bash", "-n"], input=run.out, text=True, timeout=10).returncode == 0
    for word in ("invoke", "get", "describe", "logs", "bench", "--qualifier", "--follow", "--concurrency"):
        assert word in run.out
