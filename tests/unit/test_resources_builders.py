"""Pure builders of environment pods and the runtime's /init body, and the spec hash."""

from __future__ import annotations

import pytest

from lambdakube.models import DEFAULT_RUNTIME_IMAGE, FunctionSpec
from lambdakube.resources import environment_pod, fits_generic, identity, init_body, labels, new_env_id, spec_hash

INLINE = {"inline": {"source": "def handler(event, context):\n    return event\n"}}


def spec(**overrides) -> FunctionSpec:
    return FunctionSpec.model_validate({"handler": "index.handler", "code": INLINE, **overrides})


def pod(s: FunctionSpec | None = None, **kw) -> dict:
    args = dict(
        function_name="hello",
        namespace="ns",
        function_uid="uid-1",
        spec=s or spec(),
        env_id="hello-p00000000",
        role=labels.ROLE_PROVISIONED,
        runtime_image=DEFAULT_RUNTIME_IMAGE,
    )
    args.update(kw)
    return environment_pod(**args)


def env_of(p: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in p["spec"]["containers"][0]["env"]}


# -- spec hash ---------------------------------------------------------------------------


def test_hash_is_stable_and_label_safe():
    h = spec_hash(spec())
    assert h == spec_hash(spec()) and len(h) == 10 and h.isalnum() and h.islower()


def test_hash_ignores_server_defaults_and_key_order():
    explicit = spec(timeoutSeconds=3, resources={"memorySize": 128}, env={"B": "2", "A": "1"})
    implicit = spec(env={"A": "1", "B": "2"})
    assert spec_hash(explicit) == spec_hash(implicit)


@pytest.mark.parametrize(
    "change",
    [
        {"handler": "index.other"},
        {"image": "example/fn:2"},
        {"code": {"inline": {"source": "def handler(e, c):\n    return 1\n"}}},
        {"env": {"A": "1"}},
        {"resources": {"memorySize": 256}},
        {"resources": {"cpu": "500m"}},
        {"timeoutSeconds": 30},
        {"serviceAccountName": "orchestrator"},
        {"envValueFrom": {"DB": {"secretKeyRef": {"name": "db", "key": "password"}}}},
        {"envFrom": [{"secretRef": {"name": "db"}}]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_hash_changes_with_every_shaping_field(change):
    assert spec_hash(spec(**change)) != spec_hash(spec())


@pytest.mark.parametrize(
    "change",
    [
        {"provisionedConcurrency": 3, "reservedConcurrency": 5},
        {"maxConcurrency": 7},
        {"idleTimeoutSeconds": 10},
        {"async": {"maxRetryAttempts": 0}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_hash_ignores_scaling_fields(change):
    assert spec_hash(spec(**change)) == spec_hash(spec())


SECRET_REF = {"secretKeyRef": {"name": "db", "key": "password"}}


@pytest.mark.parametrize(
    "before, after",
    [
        (
            {"envValueFrom": {"DB": SECRET_REF}},
            {"envValueFrom": {"DB": {"secretKeyRef": {"name": "db2", "key": "password"}}}},
        ),
        (
            {"envValueFrom": {"DB": SECRET_REF}},
            {"envValueFrom": {"DB": {"configMapKeyRef": SECRET_REF["secretKeyRef"]}}},
        ),
        (
            {"envValueFrom": {"DB": SECRET_REF}},
            {"envValueFrom": {"DB": {"secretKeyRef": {**SECRET_REF["secretKeyRef"], "optional": True}}}},
        ),
        ({"envFrom": [{"secretRef": {"name": "db"}}]}, {"envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}]}),
    ],
    ids=["another secret", "another kind", "optional", "a prefix"],
)
def test_a_changed_reference_rolls_the_environments(before, after):
    """The reference is hashed; a Secret's content is not (the kubelet reads it when a
    container starts: a rollout, not a changed Secret, brings new values)."""
    assert spec_hash(spec(**before)) != spec_hash(spec(**after))


def test_hash_of_a_spec_without_references_is_what_it_was_before_they_existed():
    """Empty envValueFrom/envFrom are left out: an upgrade rolls no environment."""
    assert spec_hash(spec(env={"A": "1"}, code={"inline": {"source": "x"}})) == "6aafd3ad44"
    assert spec_hash(FunctionSpec.model_validate({"handler": "app.handler", "image": "img:1"})) == "f3b375cb06"


# -- pod ---------------------------------------------------------------------------------


def test_pod_identity_labels_and_owner():
    p = pod()
    meta = p["metadata"]
    assert meta["name"] == "hello-p00000000" and meta["namespace"] == "ns"
    assert meta["labels"] == {
        labels.FUNCTION: "hello",
        labels.ENVIRONMENT: "hello-p00000000",
        labels.ROLE: labels.ROLE_PROVISIONED,
        labels.SPEC_HASH: spec_hash(spec()),
        labels.MANAGED_BY: labels.OPERATOR_NAME,
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "lambdakube.dev/v1alpha1",
            "kind": "Function",
            "name": "hello",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert meta["annotations"][labels.TIMEOUT_SECONDS] == "3"


def test_pod_runs_the_runtime_once_with_lambda_semantics():
    p = pod()
    s = p["spec"]
    assert s["restartPolicy"] == "Never"
    assert s["automountServiceAccountToken"] is False
    c = s["containers"][0]
    assert c["command"] == ["python", "-m", "lambdakube_runtime", "--host", "0.0.0.0", "--port", "8080"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["image"] == DEFAULT_RUNTIME_IMAGE


def test_pod_security_context_is_locked_down():
    p = pod()
    sc = p["spec"]["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert p["spec"]["securityContext"]["runAsUser"] == 10001
    mounts = {m["mountPath"]: m["name"] for m in p["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}} in p["spec"]["volumes"]


def test_pod_resources_memory_is_request_and_limit_cpu_optional():
    assert pod()["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "128Mi"},
        "limits": {"memory": "128Mi"},
    }
    r = pod(spec(resources={"memorySize": 1024, "cpu": "500m"}))["spec"]["containers"][0]["resources"]
    assert r == {"requests": {"memory": "1024Mi", "cpu": "500m"}, "limits": {"memory": "1024Mi", "cpu": "500m"}}


IMAGE_SPEC = FunctionSpec.model_validate(
    {
        "handler": "app.main",
        "image": "example/fn:1",
        "timeoutSeconds": 9,
        "resources": {"memorySize": 512},
        "env": {"GREETING": "hi", "LAMBDAKUBE_HANDLER": "evil.x"},
    }
)


def test_image_function_pod_env_configures_the_runtime():
    env = env_of(pod(IMAGE_SPEC))
    assert env["LAMBDAKUBE_HANDLER"] == "app.main"  # user env cannot override ours
    assert env["LAMBDAKUBE_FUNCTION_NAME"] == "hello"
    assert env["LAMBDAKUBE_NAMESPACE"] == "ns"
    assert env["LAMBDAKUBE_MEMORY_MB"] == "512"
    assert env["LAMBDAKUBE_TIMEOUT_SECONDS"] == "9"
    assert env["LAMBDAKUBE_ENV_ID"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
    assert env["GREETING"] == "hi"
    names = [e["name"] for e in pod(IMAGE_SPEC)["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names))


def test_runtime_reads_an_image_function_pod_env_as_its_config():
    from lambdakube_runtime.config import from_environ

    p = pod(IMAGE_SPEC)
    environ = {e["name"]: e["value"] for e in p["spec"]["containers"][0]["env"] if "value" in e}
    cfg = from_environ(environ)
    assert (cfg.handler, cfg.code_dir, cfg.function_name, cfg.memory_mb, cfg.timeout_seconds, cfg.namespace) == (
        "app.main",
        None,
        "hello",
        512,
        9.0,
        "ns",
    )
    assert p["spec"]["containers"][0]["image"] == "example/fn:1"


def test_inline_code_pod_starts_generic_and_mounts_no_code():
    """No code volume (the Node authorizer races a burst's ConfigMap reads): the runtime
    starts without the function, with the function's own variables, and takes its code
    from POST /init; it turns Ready (/readyz) only after that Init."""
    from lambdakube_runtime.config import from_environ

    p = pod(spec(env={"GREETING": "hi", "LAMBDAKUBE_HANDLER": "evil.x"}))
    env = env_of(p)
    assert from_environ({k: v for k, v in env.items() if isinstance(v, str)}) is None  # generic
    assert env["GREETING"] == "hi" and env["LAMBDAKUBE_NAMESPACE"] == "ns"
    assert "LAMBDAKUBE_HANDLER" not in env and "LAMBDAKUBE_CODE_DIR" not in env
    assert [v["name"] for v in p["spec"]["volumes"]] == ["tmp"]
    assert [m["name"] for m in p["spec"]["containers"][0]["volumeMounts"]] == ["tmp"]
    assert p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_init_body_is_what_the_runtime_parses_and_carries_the_whole_source():
    from lambdakube_runtime.config import from_init_body

    source = "x = 1\n" + "# padding\n" * 20000 + "def main(e, c):\n    return x\n"  # > 128 KiB
    s = spec(code={"inline": {"source": source, "module": "app"}}, handler="app.main", env={"A": "1"}, timeoutSeconds=7)
    config, env = from_init_body(init_body("hello", "ns", s))
    assert (
        config.handler,
        config.inline_code,
        config.inline_module,
        config.function_name,
        config.namespace,
        config.timeout_seconds,
        config.memory_mb,
    ) == ("app.main", source, "app", "hello", "ns", 7.0, 128)
    assert env == {"A": "1"}
    with pytest.raises(ValueError, match="nothing to send"):
        init_body("hello", "ns", IMAGE_SPEC)


def test_env_ids_are_unique_label_safe_and_marked_by_role():
    long_name = "f" * 63
    ids = {new_env_id(long_name, labels.ROLE_PROVISIONED) for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) <= 63 and i.startswith("f" * 40 + "-p") for i in ids)
    assert new_env_id("hello", labels.ROLE_ON_DEMAND).startswith("hello-d")


def test_unknown_role_is_refused():
    with pytest.raises(ValueError):
        pod(role="spare")


# -- generic pods ------------------------------------------------------------------------


def test_generic_pod_runs_no_function_and_belongs_to_nobody():
    from lambdakube.resources import GENERIC_MEMORY_MB, generic_pod, runtime_image_hash

    p = generic_pod(namespace="ns", env_id="lk-generic-g00000000", runtime_image="me/rt:1")
    meta = p["metadata"]
    assert meta["labels"] == {
        labels.ENVIRONMENT: "lk-generic-g00000000",
        labels.ROLE: labels.ROLE_GENERIC,
        labels.RUNTIME_IMAGE_HASH: runtime_image_hash("me/rt:1"),
        labels.MANAGED_BY: labels.OPERATOR_NAME,
    }
    assert labels.FUNCTION not in meta["labels"] and "ownerReferences" not in meta
    env = env_of(p)
    assert "LAMBDAKUBE_HANDLER" not in env  # generic: the runtime waits for POST /init
    assert env["LAMBDAKUBE_ENV_ID"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
    c = p["spec"]["containers"][0]
    assert c["image"] == "me/rt:1"
    assert c["resources"]["limits"] == {"memory": f"{GENERIC_MEMORY_MB}Mi"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"  # /readyz is 503 until /init
    # the same hardening as a function's pod
    fn_pod = pod()
    assert c["securityContext"] == fn_pod["spec"]["containers"][0]["securityContext"]
    assert p["spec"]["securityContext"] == fn_pod["spec"]["securityContext"]
    assert [v["name"] for v in p["spec"]["volumes"]] == ["tmp"]


@pytest.mark.parametrize(
    "overrides, fits",
    [
        ({}, True),
        ({"resources": {"memorySize": 256}}, False),
        ({"resources": {"cpu": "500m"}}, False),
        ({"image": "me/fn:1", "code": None}, False),
        ({"serviceAccountName": "orchestrator"}, False),  # a generic pod has no identity
    ],
)
def test_fits_generic(overrides, fits):
    from lambdakube.resources import fits_generic

    body = {"handler": "index.handler", "code": INLINE, **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    assert fits_generic(FunctionSpec.model_validate(body)) is fits


def test_fits_generic_never_with_references():
    """A generic pod would get them only in ``POST /init``, which must not carry values."""
    from lambdakube.resources import fits_generic

    assert not fits_generic(spec(envValueFrom={"DB": SECRET_REF}))
    assert not fits_generic(spec(envFrom=[{"configMapRef": {"name": "c"}}]))


def test_pod_references_go_to_the_kubelet_as_the_pod_api_has_them():
    s = spec(
        env={"Z": "1", "A": "2"},
        envValueFrom={"DB": SECRET_REF, "M": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}}},
        envFrom=[{"secretRef": {"name": "s"}, "prefix": "S_"}, {"configMapRef": {"name": "c", "optional": True}}],
    )
    c = pod(s)["spec"]["containers"][0]
    own = [e for e in c["env"] if not e["name"].startswith("LAMBDAKUBE_")]
    assert own == [
        {"name": "A", "value": "2"},
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}}},
        {"name": "Z", "value": "1"},
    ]
    assert c["env"][: len(own)] == own  # the runtime's own variables come after (and win)
    assert c["envFrom"] == [
        {"secretRef": {"name": "s"}, "prefix": "S_"},
        {"configMapRef": {"name": "c", "optional": True}},
    ]
    assert "envFrom" not in pod()["spec"]["containers"][0]  # none without references


def test_init_body_never_carries_references_or_their_objects():
    s = spec(env={"A": "1"}, envValueFrom={"DB": SECRET_REF}, envFrom=[{"secretRef": {"name": "s"}}])
    body = init_body("hello", "ns", s)
    assert body["env"] == {"A": "1"}
    assert "password" not in str(body) and "secretKeyRef" not in str(body)


def test_generic_env_ids():
    assert new_env_id("lk-generic", labels.ROLE_GENERIC).startswith("lk-generic-g")


def test_every_environment_pod_gets_a_token_of_its_own():
    """The runtime serves /init and /invoke only with it (``env_token``): each pod's is
    new and random, a generic pod has one from its start (never sent in /init), and the
    one given is used (the router reads it back from the body it created)."""
    from lambdakube.resources import env_token, generic_pod

    a, b = pod(), pod()
    generic = generic_pod(namespace="ns", env_id="lk-generic-g1", runtime_image=DEFAULT_RUNTIME_IMAGE)
    tokens = [env_token.token_of(p) for p in (a, b, generic)]
    assert all(len(t) >= 32 for t in tokens) and len(set(tokens)) == 3
    assert env_token.token_of(pod(token="given")) == "given"
    assert env_token.VARIABLE not in str(init_body("fn", "ns", spec()))
    assert env_token.token_of({"spec": {"containers": [{"env": []}]}}) == ""


# -- a function's own identity (identity) --------------------------------------------


def test_a_function_without_a_service_account_has_no_token():
    p = pod(endpoint="http://router.lk.svc:9000")
    assert "serviceAccountName" not in p["spec"] and p["spec"]["automountServiceAccountToken"] is False
    assert [v["name"] for v in p["spec"]["volumes"]] == ["tmp"]
    assert identity.TOKEN_FILE_VARIABLE not in env_of(p)


def test_a_function_with_a_service_account_gets_only_its_audience_bound_token():
    p = pod(spec(serviceAccountName="orchestrator"), endpoint="http://router.lk.svc:9000")
    assert p["spec"]["serviceAccountName"] == "orchestrator"
    assert p["spec"]["automountServiceAccountToken"] is False  # never the API server's token
    volumes = {v["name"]: v for v in p["spec"]["volumes"]}
    assert volumes[identity.VOLUME]["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "lambdakube", "expirationSeconds": 3600, "path": "token"}}
    ]
    (mount,) = [m for m in p["spec"]["containers"][0]["volumeMounts"] if m["name"] == identity.VOLUME]
    assert mount == {"name": identity.VOLUME, "mountPath": identity.TOKEN_DIR, "readOnly": True}
    env = env_of(p)
    assert env[identity.TOKEN_FILE_VARIABLE] == f"{identity.TOKEN_DIR}/token"
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == "http://router.lk.svc:9000"


@pytest.mark.parametrize(
    "endpoint, own, want",
    [
        pytest.param(None, {}, {}, id="no endpoint: nothing"),
        pytest.param(
            "http://r:9000",
            {},
            {
                "AWS_ENDPOINT_URL_LAMBDA": "http://r:9000",
                "AWS_REGION": "lambdakube",
                "AWS_DEFAULT_REGION": "lambdakube",
                "AWS_EC2_METADATA_DISABLED": "true",
            },
            id="endpoint, region, no instance metadata",
        ),
        pytest.param(
            "http://r:9000",
            {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_LAMBDA": "http://elsewhere"},
            {
                "AWS_ENDPOINT_URL_LAMBDA": "http://elsewhere",
                "AWS_REGION": "eu-west-1",
                "AWS_DEFAULT_REGION": "lambdakube",
                "AWS_EC2_METADATA_DISABLED": "true",
            },
            id="the function's own settings win",
        ),
    ],
)
def test_every_environment_is_pointed_at_the_router(endpoint, own, want):
    """Pod env lists are read in order and the last of a name wins: a variable the
    function sets is not written a second time."""
    p = pod(spec(env=own), endpoint=endpoint)
    env = p["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names))
    got = {k: v for k, v in env_of(p).items() if k.startswith("AWS_")}
    assert got == want


def test_a_generic_pod_knows_the_router_but_has_no_identity():
    from lambdakube.resources import generic_pod

    p = generic_pod(namespace="ns", env_id="lk-generic-g1", runtime_image=DEFAULT_RUNTIME_IMAGE, endpoint="http://r:9")
    env = env_of(p)
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == "http://r:9" and identity.TOKEN_FILE_VARIABLE not in env
    assert "serviceAccountName" not in p["spec"]


# -- envFrom cannot set the runtime's own variables (runtime_env) ---------------------


def test_the_runtime_reads_exactly_the_variables_that_are_blanked():
    import re
    from pathlib import Path

    from lambdakube.resources import runtime_env

    sources = Path(__file__).resolve().parents[2] / "runtime-image" / "lambdakube_runtime"
    read = set()
    for path in sources.glob("*.py"):
        read |= set(re.findall(r"[\"'](LAMBDAKUBE_[A-Z_]+)[\"']", path.read_text()))
    assert read == runtime_env.VARIABLES


def test_a_pod_with_env_from_sets_every_runtime_variable_itself():
    """env wins over envFrom in a Pod: a Secret's LAMBDAKUBE_HANDLER key cannot turn
    an inline-code pod into one that starts without its /init."""
    from lambdakube.resources import runtime_env

    p = pod(spec(envFrom=[{"secretRef": {"name": "keys"}}]), token="t")
    container = p["spec"]["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert runtime_env.VARIABLES <= set(names) and len(names) == len(set(names))
    env = env_of(p)
    assert env["LAMBDAKUBE_HANDLER"] == "" and env["LAMBDAKUBE_IDENTITY_TOKEN_FILE"] == ""
    assert env["LAMBDAKUBE_ENV_TOKEN"] == "t"  # what the pod does set is kept
    assert container["envFrom"] == [{"secretRef": {"name": "keys"}}]
    plain = env_of(pod())
    assert "LAMBDAKUBE_HANDLER" not in plain  # without envFrom nothing is added


def test_a_version_pod_is_labelled_with_its_number_and_hashed_from_its_config():
    head = spec(env={"V": "2"})
    v1 = head.at_version(spec(env={"V": "1"}).config())
    p = pod(v1, version="1")
    assert p["metadata"]["labels"][labels.VERSION] == "1"
    assert p["metadata"]["labels"][labels.SPEC_HASH] == spec_hash(v1) != spec_hash(head)
    assert labels.VERSION not in pod(head)["metadata"]["labels"]  # $LATEST: no label
    # Inline code: the version goes in /init, where that runtime reads it.
    assert "LAMBDAKUBE_FUNCTION_VERSION" not in env_of(p)
    assert init_body("hello", "ns", v1, "1")["functionVersion"] == "1"


def test_an_image_version_pod_tells_its_runtime_the_version():
    from lambdakube_runtime.config import from_environ

    p = pod(IMAGE_SPEC, version="3")
    environ = {e["name"]: e["value"] for e in p["spec"]["containers"][0]["env"] if "value" in e}
    assert environ["LAMBDAKUBE_FUNCTION_VERSION"] == "3"
    assert from_environ(environ).function_version == "3"
    assert "LAMBDAKUBE_FUNCTION_VERSION" not in env_of(pod(IMAGE_SPEC))


def test_per_environment_concurrency_reaches_the_runtime_both_ways():
    """Inline code: ``maxConcurrency`` in ``POST /init`` (absent at 1, for older runtime
    images); code in an image: ``LAMBDAKUBE_MAX_CONCURRENCY`` in the pod. The runtime
    parses both, and refuses more than one for the built-in python path."""
    from lambdakube.models import MAX_PER_ENVIRONMENT_CONCURRENCY
    from lambdakube_runtime.config import MAX_CONCURRENCY, ConfigError, from_environ, from_init_body

    assert MAX_CONCURRENCY == MAX_PER_ENVIRONMENT_CONCURRENCY
    node = spec(runtime="nodejs20.x", perEnvironmentConcurrency=4)
    body = init_body("hello", "ns", node)
    assert body["maxConcurrency"] == 4 and from_init_body(body)[0].max_concurrency == 4
    assert "maxConcurrency" not in init_body("hello", "ns", spec(runtime="nodejs20.x"))
    image = IMAGE_SPEC.model_copy(update={"runtime": "provided.al2023", "per_environment_concurrency": 3})
    env = env_of(pod(image))
    assert env["LAMBDAKUBE_MAX_CONCURRENCY"] == "3"
    assert from_environ({k: v for k, v in env.items() if isinstance(v, str)}).max_concurrency == 3
    assert "LAMBDAKUBE_MAX_CONCURRENCY" not in env_of(pod(IMAGE_SPEC))
    with pytest.raises(ConfigError, match="needs a Runtime API runtime"):
        from_init_body({**init_body("hello", "ns", spec()), "maxConcurrency": 2})


@pytest.mark.parametrize(
    "fields, want",
    [
        pytest.param({}, "py:1", id="python3.x by default: the runtime image"),
        pytest.param({"runtime": "python3.12"}, "py:1", id="python3.12"),
        pytest.param({"runtime": "nodejs20.x"}, "node:1", id="nodejs: the Node.js runtime image"),
        pytest.param({"runtime": "nodejs22.x"}, "node:1", id="any nodejs major"),
        pytest.param({"runtime": "provided.al2023"}, "py:1", id="provided: a script for the runtime image's shell"),
    ],
)
def test_the_image_is_chosen_by_runtime(fields, want):
    from lambdakube.resources import RuntimeImages, image_for

    images = RuntimeImages(python="py:1", nodejs="node:1")
    s = spec(**fields)
    assert image_for(s, images) == want
    assert pod(s, runtime_image="py:1", nodejs_runtime_image="node:1")["spec"]["containers"][0]["image"] == want
    own = IMAGE_SPEC.model_copy(update=fields)
    assert image_for(own, images) == own.image  # spec.image always wins


def test_generic_pods_never_take_nodejs_functions():
    """A generic pod runs the runtime image, which has no node: a nodejs function gets a
    pod of its own (with the Node.js runtime image) instead of a failing Init."""
    assert fits_generic(spec())
    assert not fits_generic(spec(runtime="nodejs20.x"))
    assert fits_generic(spec(runtime="provided.al2023"))
