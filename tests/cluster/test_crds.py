"""Our CRDs, served by the real kube-apiserver: OpenAPI schema, CEL rules, defaults,
printer columns and the status subresource all behave as the models say."""

import json

import pytest
import yaml

from lambdakube import models
from tests import env_ref_cases

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds(control_plane):
    control_plane.install_crds()
    return control_plane


def function(name="hello", **spec):
    body = {
        "handler": "index.handler",
        "code": {"inline": {"source": "def handler(event, context):\n    return event\n"}},
        **spec,
    }
    return {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "Function", "metadata": {"name": name}, "spec": body}


def apply(cp, namespace, obj, check=True):
    return cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=check)


def test_valid_function_gets_lambda_defaults(crds, namespace):
    apply(crds, namespace, function())
    got = json.loads(crds.kubectl("get", "fn", "hello", "-n", namespace, "-o", "json").stdout)
    spec = got["spec"]
    assert spec["timeoutSeconds"] == 3
    assert spec["provisionedConcurrency"] == 0
    assert spec["idleTimeoutSeconds"] == 300
    assert spec["code"]["inline"]["module"] == "index"
    assert "reservedConcurrency" not in spec


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"provisionedConcurrency": -1}, "spec.provisionedConcurrency: Invalid value: -1"),
        ({"timeoutSeconds": 0}, "spec.timeoutSeconds: Invalid value: 0"),
        ({"timeoutSeconds": 901}, "should be less than or equal to 900"),
        (
            {"reservedConcurrency": 1, "provisionedConcurrency": 2},
            "provisionedConcurrency must not exceed reservedConcurrency",
        ),
        ({"maxConcurrency": 1, "provisionedConcurrency": 2}, "provisionedConcurrency must not exceed maxConcurrency"),
        ({"handler": "main.handler"}, "handler must be <code.inline.module>.<function>"),
        ({"handler": "nohandler"}, "spec.handler: Invalid value"),
        ({"env": {"BAD-NAME": "x"}}, "env names must be valid environment variable names"),
        ({"async": {"maxRetryAttempts": 5}}, "should be less than or equal to 2"),
        (
            {"async": {"onFailure": {"function": "a", "queue": "b"}}},
            "a destination names exactly one of function or queue",
        ),
        ({"surprise": True}, 'unknown field "spec.surprise"'),
        ({"serviceAccountName": "Builder"}, "spec.serviceAccountName: Invalid value"),
        ({"perEnvironmentConcurrency": 2}, "perEnvironmentConcurrency above 1 needs a Runtime API runtime"),
        (
            {"perEnvironmentConcurrency": 2, "runtime": "python3.12"},
            "perEnvironmentConcurrency above 1 needs a Runtime API runtime",
        ),
        ({"perEnvironmentConcurrency": 65, "runtime": "nodejs20.x"}, "should be less than or equal to 64"),
    ],
)
def test_invalid_function_is_rejected_with_a_clear_message(crds, namespace, spec, expected):
    out = apply(crds, namespace, function("bad", **spec), check=False)
    assert out.returncode != 0
    assert expected in out.stderr, out.stderr


def test_function_without_code_or_image_is_rejected(crds, namespace):
    obj = function("nocode")
    del obj["spec"]["code"]
    out = apply(crds, namespace, obj, check=False)
    assert "set image (handler inside the image) or code.inline" in out.stderr


def test_printer_columns_and_status_subresource(crds, namespace):
    apply(crds, namespace, function())
    status = {
        "status": {
            "ready": 2,
            "busy": 1,
            "idle": 1,
            "provisioned": 2,
            "coldStarts": 7,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    crds.kubectl(
        "patch", "fn", "hello", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    table = crds.kubectl("get", "functions", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "PROVISIONED", "BUSY", "IDLE", "COLDSTARTS", "AGE"]
    assert table[1].split()[:6] == ["hello", "True", "2", "1", "1", "7"]
    # A spec write through the main resource must not be able to touch status.
    crds.kubectl(
        "patch", "fn", "hello", "-n", namespace, "--type=merge", "-p", json.dumps({"status": {"coldStarts": 0}})
    )
    got = json.loads(crds.kubectl("get", "fn", "hello", "-n", namespace, "-o", "json").stdout)
    assert got["status"]["coldStarts"] == 7


def test_quota_is_a_singleton_named_default(crds, namespace):
    quota = {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "ConcurrencyQuota",
        "metadata": {"name": "other"},
        "spec": {"concurrentExecutions": 50},
    }
    out = apply(crds, namespace, quota, check=False)
    assert "a namespace has one ConcurrencyQuota and it is named 'default'" in out.stderr
    quota["metadata"]["name"] = "default"
    quota["spec"]["minimumUnreserved"] = 10
    apply(crds, namespace, quota)
    got = json.loads(crds.kubectl("get", "cq", "default", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["scalingRate"] == {"burst": 1000, "periodSeconds": 10}
    quota["spec"]["minimumUnreserved"] = 60
    out = apply(crds, namespace, quota, check=False)
    assert "minimumUnreserved must not exceed concurrentExecutions" in out.stderr


@pytest.mark.parametrize("case", env_ref_cases.CASES.values(), ids=env_ref_cases.CASES.keys())
def test_env_references_are_judged_as_the_models_judge_them(crds, namespace, case):
    fields, _model_message, api_message = case
    out = apply(crds, namespace, function("refs", **fields), check=False)
    if api_message is None:
        assert out.returncode == 0, out.stderr
        got = json.loads(crds.kubectl("get", "fn", "refs", "-n", namespace, "-o", "json").stdout)["spec"]
        assert {k: got[k] for k in fields} == fields  # stored as given: no defaults added
    else:
        assert out.returncode != 0
        assert api_message in out.stderr, out.stderr


def version(name="hello-v1", function_name="hello", number=1, **config):
    body = {
        "handler": "index.handler",
        "code": {"inline": {"source": "def handler(event, context):\n    return 1\n"}},
        **config,
    }
    spec = {"function": function_name, "version": number, "config": body}
    return {
        "apiVersion": "lambdakube.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": name},
        "spec": spec,
    }


def alias(name="live", function_version="1", weights=None):
    spec: dict = {"function": "hello", "functionVersion": function_version}
    if weights is not None:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"apiVersion": "lambdakube.dev/v1alpha1", "kind": "FunctionAlias", "metadata": {"name": name}, "spec": spec}


def test_a_published_version_is_immutable(crds, namespace):
    apply(crds, namespace, version())
    got = json.loads(crds.kubectl("get", "fnv", "hello-v1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["config"]["timeoutSeconds"] == 3  # defaults, as a Function's
    described = {**version(), "spec": {**version()["spec"], "description": "later"}}
    for changed in (version(timeoutSeconds=9), version(number=2), version(function_name="other"), described):
        out = apply(crds, namespace, changed, check=False)
        assert out.returncode != 0
        assert models.VERSION_IMMUTABLE in out.stderr
    # the one mutable field: Lambda's PutProvisionedConcurrencyConfig on the version
    apply(crds, namespace, {**version(), "spec": {**version()["spec"], "provisionedConcurrency": 2}})
    got = json.loads(crds.kubectl("get", "fnv", "hello-v1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["provisionedConcurrency"] == 2


@pytest.mark.parametrize(
    "obj, expected",
    [
        pytest.param(version(handler="main.handler"), "handler must be <code.inline.module>.<function>", id="module"),
        pytest.param(version(number=0), "spec.version: Invalid value: 0", id="version-0"),
        pytest.param(
            {**version(), "spec": {"function": "hello", "version": 1, "config": {"handler": "index.h"}}},
            "set image (handler inside the image) or code.inline",
            id="no-code",
        ),
    ],
)
def test_invalid_versions_are_refused(crds, namespace, obj, expected):
    out = apply(crds, namespace, {**obj, "metadata": {"name": "bad-v1"}}, check=False)
    assert out.returncode != 0
    assert expected in out.stderr


@pytest.mark.parametrize(
    "obj, expected",
    [
        pytest.param(alias(weights={"2": 0.1}), None, id="weighted"),
        pytest.param(alias(function_version="$LATEST"), None, id="latest"),
        pytest.param(alias(function_version="$LATEST", weights={"2": 0.1}), "cannot point to $LATEST", id="latest+2"),
        pytest.param(alias(weights={"1": 0.1}), "must differ from functionVersion", id="same-version"),
        pytest.param(alias(weights={"2": 0.1, "3": 0.1}), "Too many: 2: must have at most 1", id="two-additional"),
        pytest.param(alias(weights={"2": 1.5}), "should be less than or equal to 1", id="weight>1"),
        pytest.param(alias(weights={"x": 0.5}), "keys must be version numbers", id="key"),
        pytest.param(alias(function_version="v1"), "spec.functionVersion: Invalid value", id="target"),
        pytest.param(alias(name="123"), "must not be all digits", id="digits"),
        pytest.param(
            {
                **alias(function_version="$LATEST"),
                "spec": {"function": "hello", "functionVersion": "$LATEST", "provisionedConcurrency": 1},
            },
            models.PROVISIONED_ON_LATEST,
            id="provisioned-on-latest",
        ),
    ],
)
def test_alias_rules_are_lambdas(crds, namespace, obj, expected):
    out = apply(crds, namespace, obj, check=False)
    if expected is None:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode != 0
        assert expected in out.stderr


def test_schedule_and_url_defaults(crds, namespace):
    apply(crds, namespace, function("timed", schedule={"expression": "rate(5 minutes)"}, url={}))
    got = json.loads(crds.kubectl("get", "fn", "timed", "-n", namespace, "-o", "json").stdout)["spec"]
    assert got["schedule"] == {"expression": "rate(5 minutes)", "timezone": "UTC", "enabled": True}
    assert got["url"] == {"authType": "KUBERNETES"}
    models.FunctionSpec.model_validate(got)  # and the router reads it back
    wide = crds.kubectl("get", "fn", "timed", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "SCHEDULE" in wide[0].split() and "URL" in wide[0].split()
    assert "KUBERNETES" in wide[1].split()


SCHEDULES = [
    ("a cron in a zone", {"expression": "cron(0 12 * * ? *)", "timezone": "Europe/Berlin"}, None),
    ("L, W and #", {"expression": "cron(0 10 LW * ? 2027)"}, None),
    ("neither rate nor cron", {"expression": "every 5 minutes"}, "expression must be rate(value unit) or cron("),
    ("rate: 1 takes the singular", {"expression": "rate(1 minutes)"}, "a rate is rate(1 minute|hour|day)"),
    ("rate: seconds", {"expression": "rate(30 seconds)"}, "a rate is rate(1 minute|hour|day)"),
    ("cron: Unix's five fields", {"expression": "cron(0 12 * * *)"}, "a cron has 6 fields"),
    ("cron: both day fields", {"expression": "cron(0 12 1 * MON *)"}, "? in exactly one of day-of-month"),
    ("a zone that is a path", {"expression": "rate(5 minutes)", "timezone": "../etc"}, "spec.schedule.timezone"),
]  # fmt: skip


@pytest.mark.parametrize("schedule,expected", [c[1:] for c in SCHEDULES], ids=[c[0] for c in SCHEDULES])
def test_schedules_are_judged_as_the_models_judge_them(crds, namespace, schedule, expected):
    """The apiserver's CEL and pattern rules refuse what the model refuses, with its words
    (the model also checks what CEL cannot: each field's range, the zone's existence)."""
    obj = function("sched", schedule=schedule)
    out = apply(crds, namespace, obj, check=False)
    model_error = None
    try:
        models.FunctionSpec.model_validate(obj["spec"])
    except ValueError as exc:
        model_error = str(exc)
    if expected is None:
        assert out.returncode == 0, out.stderr
        assert model_error is None
    else:
        assert out.returncode != 0 and expected in out.stderr, out.stderr
        assert model_error is not None


def test_url_auth_types_are_lambdas_two(crds, namespace):
    out = apply(crds, namespace, function("iam", url={"authType": "AWS_IAM"}), check=False)
    assert out.returncode != 0 and 'supported values: "NONE", "KUBERNETES"' in out.stderr, out.stderr
    cors = {"allowOrigins": ["https://a.example"], "allowMethods": ["GET", "*"], "maxAge": 60}
    apply(crds, namespace, function("public", url={"authType": "NONE", "cors": cors}))
