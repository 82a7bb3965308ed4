"""Lambda's own clients against the router: the real boto3 and the real aws CLI invoke by
full ARN, partial ARN, plain name and name:qualifier, send a ClientContext the handler
reads Lambda's way, and get Lambda's errors as botocore parses them.

The router runs in-process on 127.0.0.1 (local backend); each client call runs in a
thread so the event loop keeps serving it. Nothing leaves loopback: the clients are
given the router as their endpoint, dummy credentials, and no config or metadata service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambdakube_router.names import LAMBDA_PATTERN, Accounts
from tests.router.conftest import function

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

SHOW = """
import os

def handler(event, context):
    cc = context.client_context
    return {
        "namespace": os.environ["LAMBDAKUBE_NAMESPACE"],
        "event": event,
        "custom": cc.custom if cc else None,
        "installation_id": cc.client.installation_id if cc and cc.client else None,
        "invoked_function_arn": context.invoked_function_arn,
        "cognito_identity_id": context.identity.cognito_identity_id,
    }
"""

ACCOUNT = "123456789012"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:hello"
ACCOUNTS = Accounts(namespaces={ACCOUNT: "team-a"})
#: The clients' environment: dummy credentials, a region, no files, no metadata service.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
async def router(make_router, monkeypatch):
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    return await make_router(function("hello", SHOW), function("hello", SHOW, namespace="team-a"), accounts=ACCOUNTS)


def lambda_client(router):
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=router.url("/"),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


async def boto_invoke(client, **kwargs) -> dict:
    def call():
        reply = client.invoke(**kwargs)
        return {**reply, "Payload": json.loads(reply["Payload"].read())}

    return await asyncio.to_thread(call)


async def boto_error(client, **kwargs) -> dict:
    with pytest.raises(ClientError) as exc:
        await asyncio.to_thread(client.invoke, **kwargs)
    return exc.value.response


async def test_boto3_invokes_by_every_name(router):
    client = lambda_client(router)

    reply = await boto_invoke(client, FunctionName=ARN, Payload=b'{"n": 1}')
    assert reply["StatusCode"] == 200 and reply["ExecutedVersion"] == "$LATEST"
    assert reply["Payload"]["namespace"] == "team-a"  # the account's, not the default
    assert reply["Payload"]["event"] == {"n": 1}
    assert reply["Payload"]["invoked_function_arn"] == ARN

    reply = await boto_invoke(client, FunctionName=ARN + ":$LATEST")
    assert reply["Payload"]["invoked_function_arn"] == ARN + ":$LATEST"

    reply = await boto_invoke(client, FunctionName=f"{ACCOUNT}:function:hello")
    assert reply["Payload"]["namespace"] == "team-a"
    assert reply["Payload"]["invoked_function_arn"] == "lambdakube:team-a:function:hello"

    reply = await boto_invoke(client, FunctionName="hello")
    assert reply["Payload"]["namespace"] == "default"
    assert reply["Payload"]["invoked_function_arn"] == "lambdakube:default:function:hello"

    reply = await boto_invoke(client, FunctionName="hello", Qualifier="$LATEST")
    assert reply["Payload"]["invoked_function_arn"] == "lambdakube:default:function:hello:$LATEST"

    reply = await boto_invoke(client, FunctionName="lambdakube:team-a:function:hello")
    assert reply["Payload"]["namespace"] == "team-a"


async def test_boto3_client_context_reaches_the_handler_as_lambdas_object(router):
    client = lambda_client(router)
    sent = {"client": {"installation_id": "i-1"}, "custom": {"user": "u1", "n": [1, 2]}, "env": {"locale": "en"}}
    reply = await boto_invoke(
        client, FunctionName=ARN, ClientContext=base64.b64encode(json.dumps(sent).encode()).decode()
    )
    assert reply["Payload"]["custom"] == {"user": "u1", "n": [1, 2]}
    assert reply["Payload"]["installation_id"] == "i-1"
    assert reply["Payload"]["cognito_identity_id"] is None


@pytest.mark.parametrize(
    "name, code, message",
    [
        pytest.param(
            "bad name!",
            "ValidationException",
            "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy constraint:"
            f" Member must satisfy regular expression pattern: {LAMBDA_PATTERN}",
            id="bad characters",
        ),
        pytest.param(
            "arn:aws:lambda:moon:123456789012:function:hello",
            "ValidationException",
            "1 validation error detected: Value 'arn:aws:lambda:moon:123456789012:function:hello' at"
            " 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern:"
            f" {LAMBDA_PATTERN}",
            id="bad region",
        ),
        pytest.param(
            "f" * 65,
            "ValidationException",
            f"1 validation error detected: Value '{'f' * 65}' at 'functionName' failed to satisfy constraint:"
            " Member must have length less than or equal to 64",
            id="name too long",
        ),
        pytest.param(
            "arn:aws:lambda:us-east-1:999999999999:function:hello",
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:999999999999:function:hello (account 999999999999 is"
            " mapped to no namespace; the router's --account-namespace ACCOUNT=NAMESPACE maps one)",
            id="unmapped account",
        ),
        pytest.param(
            "hello:live",
            "ResourceNotFoundException",
            "Function not found: default/hello:live",
            id="an unknown alias",
        ),
        pytest.param("missing", "ResourceNotFoundException", "Function not found: default/missing", id="no function"),
    ],
)
async def test_boto3_gets_lambdas_errors(router, name, code, message):
    response = await boto_error(lambda_client(router), FunctionName=name)
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"] == message
    assert response["ResponseMetadata"]["HTTPStatusCode"] == (400 if code == "ValidationException" else 404)


def aws_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The aws CLI of this interpreter's environment (the ``awscli`` test extra); a
    missing one fails, naming how to get it."""
    exe = Path(sys.executable).with_name("aws")
    assert exe.exists(), f"the aws CLI is missing from {exe.parent}: run `make deps` (the awscli test extra)"
    full = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **AWS_ENV, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


async def test_the_aws_cli_invokes_by_arn(router, tmp_path):
    endpoint = router.url("/")
    cc = base64.b64encode(json.dumps({"custom": {"from": "cli"}}).encode()).decode()
    out = await asyncio.to_thread(
        aws_cli,
        "lambda",
        "invoke",
        "--function-name",
        ARN,
        "--endpoint-url",
        endpoint,
        "--payload",
        '{"via": "cli"}',
        "--client-context",
        cc,
        "out.json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["namespace"] == "team-a" and result["event"] == {"via": "cli"}
    assert result["custom"] == {"from": "cli"} and result["invoked_function_arn"] == ARN

    bad = await asyncio.to_thread(
        aws_cli, "lambda", "invoke", "--function-name", "no/such", "--endpoint-url", endpoint, "o.json", cwd=tmp_path
    )
    assert bad.returncode != 0
    assert "An error occurred (ValidationException) when calling the Invoke operation: 1 validation error" in bad.stderr
