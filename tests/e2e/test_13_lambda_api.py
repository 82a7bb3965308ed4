"""Lambda's API as the real aws CLI uses it against the installed router, through its
Service, authenticated the way an AWS SDK is: a ServiceAccount token (audience
lambdakube) as the session token of SigV4-signed requests. A plain name, and the
namespace of list-functions and get-account-settings, is the ServiceAccount's own.
put-function-concurrency patches the Function through the router's own rights, which
the chart's admission policy holds to that one field."""

from __future__ import annotations

import json

from tests.e2e.cluster import Cluster, function_manifest, recording_handler, wait_for
from tests.router.test_aws_clients import aws_cli


def test_the_aws_cli_against_the_installed_router(release: Cluster, ns: str, tmp_path):
    release.kubectl("create", "serviceaccount", "cli", "-n", ns)
    release.kubectl(
        "create", "rolebinding", "cli-admin", "-n", ns, "--clusterrole=lambdakube-admin", f"--serviceaccount={ns}:cli"
    )  # fmt: skip
    env = {"AWS_ACCESS_KEY_ID": "LAMBDAKUBE", "AWS_SESSION_TOKEN": release.create_token("cli", ns)}
    release.apply(
        [
            function_manifest("listed", recording_handler(), reservedConcurrency=2),
            function_manifest("other", "x = 1\n"),
        ],
        ns,
    )
    wait_for(lambda: release.router_function("listed", ns), 60, "the router to see the Function")

    def aws(*args: str) -> dict:
        out = aws_cli("lambda", *args, "--endpoint-url", release.router_url, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def listed() -> dict | None:
        got = aws("list-functions")
        return got if {f["FunctionName"] for f in got["Functions"]} >= {"listed", "other"} else None

    got = wait_for(listed, 60, "the RoleBinding to let the CLI list", interval=1)
    assert sorted(f["FunctionName"] for f in got["Functions"]) == ["listed", "other"]
    config = aws("get-function", "--function-name", "listed")["Configuration"]
    assert config["FunctionArn"] == f"lambdakube:{ns}:function:listed" and config["Version"] == "$LATEST"
    settings = aws("get-account-settings")
    assert settings["AccountUsage"]["FunctionCount"] == 2

    assert aws("put-function-concurrency", "--function-name", "listed", "--reserved-concurrent-executions", "3") == {
        "ReservedConcurrentExecutions": 3
    }
    assert release.get("function", "listed", ns)["spec"]["reservedConcurrency"] == 3
    assert aws("get-function-concurrency", "--function-name", "listed") == {"ReservedConcurrentExecutions": 3}

    result = tmp_path / "out.json"
    meta = aws("invoke", "--function-name", "listed", str(result))
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert json.loads(result.read_text())["version"] == "v1"

    # a wrong token is refused before anything is read
    env["AWS_SESSION_TOKEN"] = "not-a-token"
    out = aws_cli("lambda", "list-functions", "--endpoint-url", release.router_url, cwd=tmp_path, env=env)
    assert out.returncode != 0 and "UnrecognizedClientException" in out.stderr, out.stderr
