"""Schemathesis against a real router, over its whole served OpenAPI document (issue 13).

Why: an outside audit's schemathesis run found 500s (``after``/``upTo`` beyond 64 bits)
and answers the document did not declare. This runs the same tool, through its CLI (its
public interface), against the router these tests use (aiohttp test server on
127.0.0.1, local backend, real runtime processes) and fails on any server error, any
undocumented status code or any response that does not match its schema, on every
operation, invoke included.

Bounded so it stays in the normal suite: deterministic generation (the same cases every
run, no example database) and ``--max-examples`` per operation; about 950 cases in about
15 s on 2 cores. All phases run: the document's examples (they name the function and the
queue registered here, so invoke and the queue reads reach real data), boundary values
(``coverage``: 2^63, missing required parameters, ...), fuzzing, and stateful sequences.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.router.conftest import function

#: The names the document's examples use (``params``, ``openapi``).
HELLO = """
def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"hello": event}
"""

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
MAX_EXAMPLES = 50


async def test_router_conforms_to_its_openapi_document(make_router, tmp_path):
    router = await make_router(function("hello", HELLO, **{"async": {"onSuccess": {"queue": "done"}}}))
    report_path = tmp_path / "report.json"
    args = [
        "-m",
        "schemathesis.cli",
        "run",
        router.url("/openapi.json"),
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    # cwd: schemathesis keeps its cache (.schemathesis, .hypothesis) in the current directory
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = out.decode(errors="replace")
    assert report_path.exists(), output
    report = json.loads(report_path.read_text())
    cases = report["test_cases"]
    summary = (
        f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures"
        f" ({cases['unique_failures']} unique), {cases['errored']} errored,"
        f" {report['running_time']:.1f} s"
    )
    print(summary)
    assert proc.returncode == 0 and report["exit_code"] == 0, f"{summary}\n{output}"
    assert report["failures"] == [] and report["errors"] == [], f"{summary}\n{output}"
    assert report["operations"]["tested"] == report["operations"]["total"], output
    assert cases["generated"] > 0, output
