"""The lambdakube API: one pydantic model per CRD spec, the single source of truth.

`crds/*.yaml` are generated from these models (`lambdakube crds`), and the router and
the operator both parse objects through them, so the server-side schema, the router's
local backend and the operator can never disagree about a field.

CEL rules (``x-kubernetes-validations``) live next to the fields they constrain; pydantic
validators repeat them so that the local backend (no API server) rejects the same input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "lambdakube.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: Lambda's default account quota of concurrent executions, applied per namespace.
DEFAULT_NAMESPACE_CONCURRENCY = 1000
#: Lambda keeps at least 100 concurrent executions unreserved for other functions.
DEFAULT_MINIMUM_UNRESERVED = 100
#: Lambda's scaling rate: 1,000 new environments per function per 10 seconds.
DEFAULT_SCALE_BURST = 1000
DEFAULT_SCALE_PERIOD_SECONDS = 10

HANDLER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
#: Lambda's runtime identifiers that lambdakube runs: ``python3.x`` in-process (the
#: default), ``nodejs<N>.x`` and ``provided[.al2|.al2023]`` through the Runtime API.
RUNTIME_PATTERN = r"^(python3\.[0-9]+|nodejs[0-9]+\.x|provided(\.al2|\.al2023)?)$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Kubernetes object names (DNS-1123 subdomain, kept to a label's length so the name
# fits in pod labels).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Names of the Secrets, ConfigMaps and ServiceAccounts an environment uses (DNS-1123
#: subdomains, as Kubernetes names them).
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A key of a Secret's or ConfigMap's data (Kubernetes' IsConfigMapKey; "." and names
#: starting with ".." are refused by a rule: on the local backend a key is a file name).
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
#: Variables of this prefix configure the runtime; a function cannot set them.
RESERVED_ENV_PREFIX = "LAMBDAKUBE_"
DEFAULT_RUNTIME_IMAGE = "lambdakube/runtime-python:0.1.0"


#: Schema default for nested objects: the API server fills in a nested field's default
#: only when its parent object exists, so `default: {}` makes every default visible.
MATERIALISE: dict[str, Any] = {"default": {}}


def cel(rule: str, message: str, field_path: str | None = None) -> dict:
    rule_obj = {"rule": rule, "message": message}
    if field_path:
        rule_obj["fieldPath"] = field_path
    return rule_obj


class _Spec(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (as the strict CRD does)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Destination(_Spec):
    """Where async records go: another function, or a durable queue read back via the API."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.function) != has(self.queue)",
                    "a destination names exactly one of function or queue",
                )
            ]
        }
    )

    function: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)] | None = None
    queue: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        if (self.function is None) == (self.queue is None):
            raise ValueError("a destination names exactly one of function or queue")
        return self


class InlineCode(_Spec):
    """Handler source shipped in the manifest, like Lambda's in-console editor."""

    source: Annotated[str, Field(min_length=1, max_length=262144)]
    #: Module file name the source is saved as; the handler's module part must match.
    module: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)] = "index"
    #: The file the source is saved as, when not the runtime's default (``<module>.py``,
    #: ``<module>.mjs`` for Node.js, ``bootstrap`` for ``provided``): ``index.js`` for a
    #: CommonJS Node.js module, say.
    filename: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128)] | None = None


class AsyncConfig(_Spec):
    """Lambda's EventInvokeConfig plus its dead-letter queue."""

    max_retry_attempts: Annotated[int, Field(ge=0, le=2)] = 2
    maximum_event_age_seconds: Annotated[int, Field(ge=60, le=21600)] = 21600
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter: Destination | None = None


class Resources(_Spec):
    """Compute size. Lambda sizes by memory; CPU is optional here (Kubernetes quantity)."""

    #: Megabytes, as Lambda's MemorySize; becomes the pod's memory request and limit.
    memory_size: Annotated[int, Field(ge=128, le=10240)] = 128
    cpu: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$", max_length=16)] | None = None


class KeySelector(_Spec):
    """One key of a Secret or ConfigMap (a Pod's ``secretKeyRef``/``configMapKeyRef``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.key != '.' && !self.key.startsWith('..')",
                    "key must not be '.' or start with '..'",
                    ".key",
                )
            ]
        }
    )

    name: Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, max_length=253)]
    key: Annotated[str, Field(pattern=DATA_KEY_PATTERN, max_length=253)]
    #: True: a missing object or key leaves the variable unset instead of failing the start.
    optional: bool | None = None

    @model_validator(mode="after")
    def _key_is_not_a_path(self) -> KeySelector:
        if self.key == "." or self.key.startswith(".."):
            raise ValueError("key must not be '.' or start with '..'")
        return self


class EnvVarSource(_Spec):
    """Where one variable's value comes from: a Pod's ``env[].valueFrom``, objects only."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                    "a variable source names exactly one of secretKeyRef or configMapKeyRef",
                )
            ]
        }
    )

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("a variable source names exactly one of secretKeyRef or configMapKeyRef")
        return self


class ObjectSelector(_Spec):
    """A whole Secret or ConfigMap (a Pod's ``envFrom[].secretRef``/``configMapRef``)."""

    name: Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, max_length=253)]
    #: True: a missing object adds no variables instead of failing the start.
    optional: bool | None = None


class EnvFromSource(_Spec):
    """Every key of a Secret or ConfigMap as a variable (a Pod's ``envFrom``; invalid names are skipped)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.secretRef) != has(self.configMapRef)",
                    "an envFrom source names exactly one of secretRef or configMapRef",
                ),
                cel(
                    "!has(self.prefix) || !self.prefix.startsWith('LAMBDAKUBE_')",
                    "prefix must not start with LAMBDAKUBE_ (the runtime's own variables)",
                    ".prefix",
                ),
            ]
        }
    )

    #: Put before each key's name.
    prefix: Annotated[str, Field(pattern=ENV_NAME_PATTERN, max_length=128)] | None = None
    secret_ref: ObjectSelector | None = None
    config_map_ref: ObjectSelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvFromSource:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError("an envFrom source names exactly one of secretRef or configMapRef")
        if self.prefix is not None and self.prefix.startswith(RESERVED_ENV_PREFIX):
            raise ValueError("prefix must not start with LAMBDAKUBE_ (the runtime's own variables)")
        return self


#: CEL rules of the environment-shaping fields (``EnvironmentConfig``): a Function's
#: spec and a published version's ``config`` are judged by the same rules.
_CONFIG_RULES: list[Any] = [
    cel(
        "has(self.image) || has(self.code)",
        "set image (handler inside the image) or code.inline (handler source)",
    ),
    cel(
        "!has(self.env) || self.env.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
        "env names must be valid environment variable names ([A-Za-z_][A-Za-z0-9_]*)",
        ".env",
    ),
    cel(
        "!has(self.envValueFrom) || self.envValueFrom.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
        "envValueFrom names must be valid environment variable names ([A-Za-z_][A-Za-z0-9_]*)",
        ".envValueFrom",
    ),
    cel(
        "!has(self.envValueFrom) || self.envValueFrom.all(k, !k.startsWith('LAMBDAKUBE_'))",
        "envValueFrom names must not start with LAMBDAKUBE_ (the runtime's own variables)",
        ".envValueFrom",
    ),
    cel(
        "!has(self.envValueFrom) || !has(self.env) || self.envValueFrom.all(k, !(k in self.env))",
        "a variable is set in env or in envValueFrom, not in both",
        ".envValueFrom",
    ),
    cel(
        "!has(self.code) || self.handler.startsWith(self.code.inline.module + '.')",
        "handler must be <code.inline.module>.<function> for inline code",
        ".handler",
    ),
]

#: CEL rules of the scaling fields, a Function's only (a version shares its Function's).
_SCALING_RULES: list[Any] = [
    cel(
        "!has(self.reservedConcurrency) || self.provisionedConcurrency <= self.reservedConcurrency",
        "provisionedConcurrency must not exceed reservedConcurrency",
        ".provisionedConcurrency",
    ),
    cel(
        "!has(self.maxConcurrency) || self.provisionedConcurrency <= self.maxConcurrency",
        "provisionedConcurrency must not exceed maxConcurrency",
        ".provisionedConcurrency",
    ),
]


class EnvironmentConfig(_Spec):
    """The fields that shape what runs inside an environment: what a published version
    snapshots (``FunctionVersionSpec.config``) and what the spec hash covers
    (``resources.spec_hash``). One list of fields: ``FunctionSpec`` extends it."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _CONFIG_RULES})

    handler: Annotated[str, Field(pattern=HANDLER_PATTERN, max_length=128)]
    #: Lambda's ``Runtime``: unset or ``python3.x`` runs the handler in the environment's
    #: own process (the fast path); ``nodejs20.x`` or ``provided`` (a ``bootstrap``
    #: executable) run the function's runtime as a child speaking Lambda's Runtime API.
    runtime: Annotated[str, Field(pattern=RUNTIME_PATTERN, max_length=32)] | None = None
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    code: CodeSource | None = None
    #: Literal variables (Lambda's ``Environment.Variables``). A map of strings, not a
    #: Pod's list of ``{name, value | valueFrom}``: a CRD's structural schema cannot let
    #: a map's values be either a string or an object, so references have fields of
    #: their own (``env_value_from``, ``env_from``) rather than living here.
    env: dict[
        Annotated[str, Field(pattern=ENV_NAME_PATTERN, max_length=128)],
        Annotated[str, Field(max_length=4096)],
    ] = Field(default_factory=dict, max_length=64)
    #: Variables whose values come from a Secret's or ConfigMap's key, resolved where
    #: the environment starts (the kubelet; the local backend's ``--secrets-dir``), so
    #: the value is never in the Function, its status or ``POST /init``.
    env_value_from: dict[
        Annotated[str, Field(pattern=ENV_NAME_PATTERN, max_length=128)],
        EnvVarSource,
    ] = Field(default_factory=dict, max_length=64)
    #: Whole Secrets or ConfigMaps as variables, as a Pod's ``envFrom``; ``env`` and
    #: ``envValueFrom`` win over them, and a later source over an earlier one.
    env_from: list[EnvFromSource] = Field(default_factory=list, max_length=16)
    resources: Resources = Field(default_factory=Resources, json_schema_extra=MATERIALISE)
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 3
    #: The ServiceAccount the function's environments run as, for calls its handler makes
    #: to the Invoke API (``resources.identity``): unset, an environment has no token.
    service_account_name: Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, max_length=253)] | None = None

    @model_validator(mode="after")
    def _config_rules_as_cel(self) -> EnvironmentConfig:
        if self.image is None and self.code is None:
            raise ValueError("set image (handler inside the image) or code.inline (handler source)")
        if self.code is not None and not self.handler.startswith(self.code.inline.module + "."):
            raise ValueError("handler must be <code.inline.module>.<function> for inline code")
        reserved = sorted(k for k in self.env_value_from if k.startswith(RESERVED_ENV_PREFIX))
        if reserved:
            names = ", ".join(reserved)
            raise ValueError(
                f"envValueFrom names must not start with LAMBDAKUBE_ (the runtime's own variables): {names}"
            )
        both = sorted(set(self.env) & set(self.env_value_from))
        if both:
            raise ValueError(f"a variable is set in env or in envValueFrom, not in both: {', '.join(both)}")
        return self

    @property
    def has_env_refs(self) -> bool:
        """True when some variable comes from a Secret or ConfigMap (``env_value_from``,
        ``env_from``): its value exists only where the environment starts."""
        return bool(self.env_value_from or self.env_from)


#: ``EnvironmentConfig``'s fields (python names): a version replaces these of its
#: Function's spec, and the spec hash covers exactly these.
CONFIG_FIELDS = frozenset(EnvironmentConfig.model_fields)


class FunctionSpec(EnvironmentConfig):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _CONFIG_RULES + _SCALING_RULES})

    provisioned_concurrency: Annotated[int, Field(ge=0, le=100000)] = 0
    reserved_concurrency: Annotated[int, Field(ge=0, le=100000)] | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=100000)] | None = None
    idle_timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = 300
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async", json_schema_extra=MATERIALISE)
    #: Publish a version whenever the environment-shaping fields change (Terraform's
    #: ``publish = true``, Lambda's ``Publish`` on UpdateFunctionCode): the operator
    #: creates ``FunctionVersion`` N+1 from them.
    publish: bool = False

    @model_validator(mode="after")
    def _scaling_rules_as_cel(self) -> FunctionSpec:
        if self.reserved_concurrency is not None and self.provisioned_concurrency > self.reserved_concurrency:
            raise ValueError("provisionedConcurrency must not exceed reservedConcurrency")
        if self.max_concurrency is not None and self.provisioned_concurrency > self.max_concurrency:
            raise ValueError("provisionedConcurrency must not exceed maxConcurrency")
        return self

    @property
    def concurrency_cap(self) -> int | None:
        """The most environments this function may run at once (None: only the pool's limit)."""
        caps = [c for c in (self.reserved_concurrency, self.max_concurrency) if c is not None]
        return min(caps) if caps else None

    def config(self) -> EnvironmentConfig:
        """The environment-shaping part: what publishing a version snapshots."""
        return EnvironmentConfig.model_validate(self.model_dump(include=set(CONFIG_FIELDS), by_alias=True))

    def at_version(self, config: EnvironmentConfig, provisioned: int = 0) -> FunctionSpec:
        """This spec with a version's snapshot in place of its shaping fields: what the
        version's environments run. Scaling stays the Function's (reserved concurrency
        and the quota are per function, shared by its versions); provisioned
        concurrency is the version's own (``provisioning.by_version``: its own and its
        aliases' share), never the Function's ``$LATEST`` count."""
        update = {name: getattr(config, name) for name in CONFIG_FIELDS}
        return self.model_copy(update={**update, "provisioned_concurrency": provisioned})


class CodeSource(_Spec):
    inline: InlineCode


class Condition(BaseModel):
    """A Kubernetes-style status condition (metav1.Condition)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class FunctionStatus(BaseModel):
    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    ready: Annotated[int, Field(ge=0)] = 0
    starting: Annotated[int, Field(ge=0)] = 0
    busy: Annotated[int, Field(ge=0)] = 0
    idle: Annotated[int, Field(ge=0)] = 0
    provisioned: Annotated[int, Field(ge=0)] = 0
    cold_starts: Annotated[int, Field(ge=0)] = 0
    #: Hash of the parts of the spec that shape an environment; pods of an older hash drain.
    spec_hash: str | None = None
    init_error: str | None = None
    #: The highest version number published so far (``spec.publish``): never reused,
    #: even after that version is deleted (Lambda's numbering).
    latest_version: Annotated[int, Field(ge=1)] | None = None
    #: The spec hash of that version's config: a newest version the operator's index
    #: does not show yet is judged by it (no second publish of the same config).
    latest_version_spec_hash: str | None = None


class ScalingRate(_Spec):
    """Token bucket for new environments per function (Lambda: 1,000 per 10 s)."""

    burst: Annotated[int, Field(ge=1, le=100000)] = DEFAULT_SCALE_BURST
    period_seconds: Annotated[int, Field(ge=1, le=3600)] = DEFAULT_SCALE_PERIOD_SECONDS


class ConcurrencyQuotaSpec(_Spec):
    """The namespace's "account" limits. One object per namespace, named ``default``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minimumUnreserved <= self.concurrentExecutions",
                    "minimumUnreserved must not exceed concurrentExecutions",
                    ".minimumUnreserved",
                )
            ]
        }
    )

    concurrent_executions: Annotated[int, Field(ge=1, le=1000000)] = DEFAULT_NAMESPACE_CONCURRENCY
    minimum_unreserved: Annotated[int, Field(ge=0, le=1000000)] = DEFAULT_MINIMUM_UNRESERVED
    scaling_rate: ScalingRate = Field(default_factory=ScalingRate, json_schema_extra=MATERIALISE)

    @model_validator(mode="after")
    def _unreserved_fits(self) -> ConcurrencyQuotaSpec:
        if self.minimum_unreserved > self.concurrent_executions:
            raise ValueError("minimumUnreserved must not exceed concurrentExecutions")
        return self


class ConcurrencyQuotaStatus(BaseModel):
    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    reserved: Annotated[int, Field(ge=0)] = 0
    unreserved: Annotated[int, Field(ge=0)] = 0
    #: Reserved concurrency actually granted, per function name.
    granted: dict[str, int] = Field(default_factory=dict)
    rejected: list[str] = Field(default_factory=list)
    #: Why each rejected reservation was rejected, per function name: the router shows
    #: it in 429s and introspection. A field of its own, not parsed back out of the
    #: ReservationsFit condition's message (a reason may itself contain "; ").
    rejected_reasons: dict[str, str] = Field(default_factory=dict)


#: The mutable head of every function, as Lambda names it.
LATEST = "$LATEST"
#: A published version's number as a qualifier says it (canonical: no leading zero, so
#: "01" cannot pass for another version than "1").
VERSION_NUMBER_PATTERN = r"^[1-9][0-9]*$"
#: What an alias may point at: ``$LATEST`` or a version number.
ALIAS_TARGET_PATTERN = r"^(\$LATEST|[1-9][0-9]*)$"


#: Lambda's words when provisioned concurrency is asked of the unpublished head.
PROVISIONED_ON_LATEST = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."


class ProvisionedStatus(BaseModel):
    """A version's or an alias's provisioned concurrency as it stands (Lambda's
    ProvisionedConcurrencyConfig): written by whoever keeps the environments (the
    operator on a cluster), read by ``kubectl get`` and GetProvisionedConcurrencyConfig."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    #: What the spec asks (for an alias: of all its versions together).
    requested: Annotated[int, Field(ge=0)] = 0
    #: Environments initialised and kept (Lambda's Allocated).
    allocated: Annotated[int, Field(ge=0)] = 0
    #: Of those, how many are idle right now (Lambda's Available).
    available: Annotated[int, Field(ge=0)] = 0
    #: ``IN_PROGRESS`` until allocated reaches requested, then ``READY``; ``FAILED``
    #: when the environments cannot start (``status_reason`` says why).
    status: Literal["IN_PROGRESS", "READY", "FAILED"] = "READY"
    status_reason: str | None = None
    last_modified: str | None = None


VERSION_IMMUTABLE = "a published version is immutable (only provisionedConcurrency may change): publish a new one"
_IMMUTABLE: dict[str, Any] = {"x-kubernetes-validations": [cel("self == oldSelf", VERSION_IMMUTABLE)]}


class FunctionVersionSpec(_Spec):
    """A published version: an immutable snapshot of a Function's environment-shaping
    fields (Lambda's PublishVersion), numbered 1, 2, ... per function. Its scaling
    (reserved concurrency, idle timeout, async) stays the Function's."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.description) == has(oldSelf.description)",
                    VERSION_IMMUTABLE,
                    ".description",
                ),
            ]
        }
    )

    # Each field its own ``self == oldSelf`` (one rule over the whole spec but
    # provisionedConcurrency would compare ``config`` at a cost the API server refuses).
    function: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63, json_schema_extra=_IMMUTABLE)]
    version: Annotated[int, Field(ge=1, le=1000000000, json_schema_extra=_IMMUTABLE)]
    description: Annotated[str, Field(max_length=256, json_schema_extra=_IMMUTABLE)] | None = None
    config: Annotated[EnvironmentConfig, Field(json_schema_extra=_IMMUTABLE)]
    #: Environments kept initialised for this version (Lambda's
    #: PutProvisionedConcurrencyConfig on a version): the one mutable field.
    provisioned_concurrency: Annotated[int, Field(ge=0, le=100000)] = 0


class AliasRoutingConfig(_Spec):
    """Lambda's AliasRoutingConfiguration: the one additional version and its share."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.additionalVersionWeights)"
                    " || self.additionalVersionWeights.all(k, k.matches('^[1-9][0-9]*$'))",
                    "additionalVersionWeights keys must be version numbers (1, 2, ...)",
                    ".additionalVersionWeights",
                ),
            ]
        }
    )

    #: Version number -> the share of invocations it gets (0.0 to 1.0, Lambda's range);
    #: the rest run ``functionVersion``. Lambda routes to at most two versions.
    additional_version_weights: dict[
        Annotated[str, Field(pattern=VERSION_NUMBER_PATTERN, max_length=1024)],
        Annotated[float, Field(ge=0.0, le=1.0)],
    ] = Field(default_factory=dict, max_length=1)


class FunctionAliasSpec(_Spec):
    """Lambda's alias: a name (``metadata.name``) for a version, optionally splitting
    invocations with a second one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.routingConfig) || !has(self.routingConfig.additionalVersionWeights)"
                    " || self.routingConfig.additionalVersionWeights.size() == 0"
                    " || self.functionVersion != '$LATEST'",
                    "an alias that routes to two versions cannot point to $LATEST",
                    ".functionVersion",
                ),
                cel(
                    "!has(self.routingConfig) || !has(self.routingConfig.additionalVersionWeights)"
                    " || self.routingConfig.additionalVersionWeights.all(k, k != self.functionVersion)",
                    "the additional version must differ from functionVersion",
                    ".routingConfig.additionalVersionWeights",
                ),
                cel(
                    "!has(self.provisionedConcurrency) || self.provisionedConcurrency == 0"
                    " || self.functionVersion != '$LATEST'",
                    PROVISIONED_ON_LATEST,
                    ".provisionedConcurrency",
                ),
            ]
        }
    )

    function: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
    function_version: Annotated[str, Field(pattern=ALIAS_TARGET_PATTERN, max_length=1024)]
    description: Annotated[str, Field(max_length=256)] | None = None
    routing_config: AliasRoutingConfig | None = None
    #: Environments kept initialised for the alias's version(s), split by the routing
    #: weights (Lambda's PutProvisionedConcurrencyConfig on an alias).
    provisioned_concurrency: Annotated[int, Field(ge=0, le=100000)] = 0

    @model_validator(mode="after")
    def _same_rules_as_cel(self) -> FunctionAliasSpec:
        weights = self.weights
        if weights and self.function_version == LATEST:
            raise ValueError("an alias that routes to two versions cannot point to $LATEST")
        if self.function_version in weights:
            raise ValueError("the additional version must differ from functionVersion")
        if self.provisioned_concurrency and self.function_version == LATEST:
            raise ValueError(PROVISIONED_ON_LATEST)
        return self

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.routing_config.additional_version_weights) if self.routing_config else {}


#: Lambda's alias names may not be all digits (that would be a version).
ALIAS_NAME_RULE = cel(
    "!self.metadata.name.matches('^[0-9]+$')",
    "an alias name must not be all digits (that names a version)",
)


def valid_alias_name(name: str) -> bool:
    return valid_name(name) and not name.isdigit()


EnvironmentConfig.model_rebuild()
FunctionSpec.model_rebuild()

QUOTA_OBJECT_NAME = "default"


def valid_name(name: str) -> bool:
    return len(name) <= 63 and re.match(NAME_PATTERN, name) is not None


# -- EventSourceMapping: Lambda's pollers (a queue, or a Kafka topic, into a function) ---------

ESM_KIND = "EventSourceMapping"
#: ``functionName``: a Function's name, optionally with Lambda's qualifier (``fn:prod``,
#: ``fn:3``, ``fn:$LATEST``), as Lambda's CreateEventSourceMapping accepts it.
ESM_FUNCTION_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
#: The source kinds, by the spec field that names them (``EventSourceMappingSpec.source_kind``).
QUEUE_SOURCE = "queue"
KAFKA_SOURCE = "kafka"
#: Lambda's batch size defaults: 10 for SQS, 100 for Kafka.
DEFAULT_BATCH_SIZE = {QUEUE_SOURCE: 10, KAFKA_SOURCE: 100}
#: SQS's default visibility timeout, seconds.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
#: Lambda's SQS pollers: a mapping without ``scalingConfig`` may reach 1,000 at once
#: (then the function's own limits), and ``maximumConcurrency`` is 2 to 1,000.
DEFAULT_MAXIMUM_CONCURRENCY = 1000


class QueueSource(_Spec):
    """A durable destination queue of this router (``{queue: name}`` destinations, the
    ``.../queues/{q}/messages`` API), in the mapping's own namespace, read as an SQS
    queue: a received message is invisible for ``visibilityTimeoutSeconds`` (SQS's
    per-receive ``VisibilityTimeout``: two mappings on one queue may differ)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
    visibility_timeout_seconds: Annotated[int, Field(ge=0, le=43200)] = DEFAULT_VISIBILITY_TIMEOUT_SECONDS


class KafkaEndpoints(_Spec):
    """Lambda's ``SelfManagedEventSource.Endpoints``: the one key Lambda has."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="forbid", frozen=True)

    KAFKA_BOOTSTRAP_SERVERS: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$", max_length=300)]],
        Field(min_length=1, max_length=10),
    ]


class SelfManagedEventSource(_Spec):
    endpoints: KafkaEndpoints


class SelfManagedKafkaEventSourceConfig(_Spec):
    consumer_group_id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9-\/*:_+=.@-]*$", min_length=1, max_length=200)]


class EventFilter(_Spec):
    """One of Lambda's filter patterns: a JSON object (a string, as Lambda has it)."""

    pattern: Annotated[str, Field(min_length=2, max_length=4096)]


class FilterCriteria(_Spec):
    """Lambda's ``FilterCriteria``: a record is processed when any filter matches it
    (OR); records no filter matches are dropped (deleted from a queue), as Lambda does."""

    filters: list[EventFilter] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _patterns_are_json_objects(self) -> FilterCriteria:
        import json  # noqa: PLC0415 - only here

        for i, f in enumerate(self.filters):
            try:
                value = json.loads(f.pattern)
            except ValueError as exc:
                raise ValueError(f"filters[{i}].pattern is not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ValueError(f"filters[{i}].pattern must be a JSON object")
        return self


class OnFailureDestination(_Spec):
    """``destinationConfig``: where a record goes when its retries are spent."""

    on_failure: Destination | None = None


class ScalingConfig(_Spec):
    maximum_concurrency: Annotated[int, Field(ge=2, le=1000)] | None = None


STARTING_POSITIONS = ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
_QUEUE_NOT_KAFKA = (
    "startingPosition, parallelizationFactor and selfManagedKafkaEventSourceConfig are Kafka's, not a queue's"
)

_ESM_RULES: list[Any] = [
    cel(
        "(has(self.queue) ? 1 : 0) + (has(self.selfManagedEventSource) ? 1 : 0) == 1",
        "an EventSourceMapping reads exactly one source: queue or selfManagedEventSource (Kafka)",
    ),
    cel(
        "has(self.selfManagedEventSource) == has(self.topics)",
        "topics go with selfManagedEventSource (Kafka), and Kafka needs them",
        ".topics",
    ),
    cel(
        "!has(self.queue) || (!has(self.startingPosition) && !has(self.parallelizationFactor)"
        " && !has(self.selfManagedKafkaEventSourceConfig))",
        _QUEUE_NOT_KAFKA,
    ),
    cel(
        "!has(self.selfManagedEventSource) || has(self.startingPosition)",
        "a Kafka mapping needs startingPosition (LATEST, TRIM_HORIZON or AT_TIMESTAMP)",
        ".startingPosition",
    ),
    cel(
        "has(self.startingPositionTimestamp)"
        " == (has(self.startingPosition) && self.startingPosition == 'AT_TIMESTAMP')",
        "startingPositionTimestamp is set exactly when startingPosition is AT_TIMESTAMP",
        ".startingPositionTimestamp",
    ),
    cel(
        "!has(self.queue) || !has(self.batchSize) || self.batchSize <= 10"
        " || (has(self.maximumBatchingWindowInSeconds) && self.maximumBatchingWindowInSeconds >= 1)",
        "a queue's batchSize above 10 needs maximumBatchingWindowInSeconds of at least 1 (Lambda's SQS rule)",
        ".batchSize",
    ),
    cel(
        "!has(self.scalingConfig) || has(self.queue)",
        "scalingConfig.maximumConcurrency is a queue mapping's (Lambda: SQS only)",
        ".scalingConfig",
    ),
    cel(
        "!has(self.queue) || !has(self.bisectBatchOnFunctionError) || !self.bisectBatchOnFunctionError",
        "bisectBatchOnFunctionError is Kafka's (Lambda: streams only); a queue retries each message by itself",
        ".bisectBatchOnFunctionError",
    ),
    cel(
        "!has(self.maximumRecordAgeInSeconds) || self.maximumRecordAgeInSeconds == -1"
        " || self.maximumRecordAgeInSeconds >= 60",
        "maximumRecordAgeInSeconds is -1 (no limit) or 60 to 604800",
        ".maximumRecordAgeInSeconds",
    ),
]


class EventSourceMappingSpec(_Spec):
    """Lambda's CreateEventSourceMapping, for the sources this router polls: exactly one
    of ``queue`` (this router's durable queues, SQS semantics) or
    ``selfManagedEventSource`` + ``topics`` (a Kafka cluster). Field names and ranges
    are Lambda's."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _ESM_RULES})

    function_name: Annotated[str, Field(pattern=ESM_FUNCTION_PATTERN, max_length=192)]
    enabled: bool = True
    #: Records per invocation; unset: Lambda's default for the source (10 queue, 100 Kafka).
    batch_size: Annotated[int, Field(ge=1, le=10000)] | None = None
    maximum_batching_window_in_seconds: Annotated[int, Field(ge=0, le=300)] | None = None
    # -- the source (exactly one) --
    queue: QueueSource | None = None
    self_managed_event_source: SelfManagedEventSource | None = None
    topics: (
        Annotated[
            list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]+$", max_length=249)]],
            Field(min_length=1, max_length=1),
        ]
        | None
    ) = None
    self_managed_kafka_event_source_config: SelfManagedKafkaEventSourceConfig | None = None
    starting_position: Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"] | None = None
    #: RFC 3339 (``2026-12-04T18:00:00Z``).
    starting_position_timestamp: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None
    ) = None
    parallelization_factor: Annotated[int, Field(ge=1, le=10)] | None = None
    # -- failures --
    #: -1: retry until the record expires (Lambda's default for streams); a queue
    #: message goes to ``onFailure`` when received more than this many times again.
    maximum_retry_attempts: Annotated[int, Field(ge=-1, le=10000)] | None = None
    #: -1: no age limit; else 60 to 604,800 (Lambda's range; checked below).
    maximum_record_age_in_seconds: Annotated[int, Field(ge=-1, le=604800)] | None = None
    bisect_batch_on_function_error: bool = False
    function_response_types: Annotated[list[Literal["ReportBatchItemFailures"]], Field(max_length=1)] = Field(
        default_factory=list
    )
    destination_config: OnFailureDestination | None = None
    scaling_config: ScalingConfig | None = None
    filter_criteria: FilterCriteria | None = None

    @model_validator(mode="after")
    def _esm_rules_as_cel(self) -> EventSourceMappingSpec:
        kafka = self.self_managed_event_source is not None
        if (self.queue is not None) + kafka != 1:
            raise ValueError("an EventSourceMapping reads exactly one source: queue or selfManagedEventSource (Kafka)")
        if kafka != (self.topics is not None):
            raise ValueError("topics go with selfManagedEventSource (Kafka), and Kafka needs them")
        if self.queue is not None and (
            self.starting_position is not None
            or self.parallelization_factor is not None
            or self.self_managed_kafka_event_source_config is not None
        ):
            raise ValueError(_QUEUE_NOT_KAFKA)
        if kafka and self.starting_position is None:
            raise ValueError("a Kafka mapping needs startingPosition (LATEST, TRIM_HORIZON or AT_TIMESTAMP)")
        if (self.starting_position_timestamp is not None) != (self.starting_position == "AT_TIMESTAMP"):
            raise ValueError("startingPositionTimestamp is set exactly when startingPosition is AT_TIMESTAMP")
        if (
            self.queue is not None
            and self.batch_size is not None
            and self.batch_size > 10
            and (self.maximum_batching_window_in_seconds or 0) < 1
        ):
            raise ValueError(
                "a queue's batchSize above 10 needs maximumBatchingWindowInSeconds of at least 1 (Lambda's SQS rule)"
            )
        if self.scaling_config is not None and self.queue is None:
            raise ValueError("scalingConfig.maximumConcurrency is a queue mapping's (Lambda: SQS only)")
        if self.queue is not None and self.bisect_batch_on_function_error:
            raise ValueError(
                "bisectBatchOnFunctionError is Kafka's (Lambda: streams only); a queue retries each message by itself"
            )
        age = self.maximum_record_age_in_seconds
        if age is not None and age != -1 and age < 60:
            raise ValueError("maximumRecordAgeInSeconds is -1 (no limit) or 60 to 604800")
        return self

    @property
    def source_kind(self) -> str:
        """``queue`` or ``kafka``: which poller reads this mapping (``pollers.source``)."""
        return QUEUE_SOURCE if self.queue is not None else KAFKA_SOURCE

    @property
    def function(self) -> str:
        return self.function_name.split(":", 1)[0]

    @property
    def qualifier(self) -> str | None:
        """The version or alias invoked (None: ``$LATEST``)."""
        parts = self.function_name.split(":", 1)
        return parts[1] if len(parts) == 2 else None

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH_SIZE[self.source_kind]

    @property
    def batching_window_seconds(self) -> float:
        return float(self.maximum_batching_window_in_seconds or 0)

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types

    @property
    def maximum_concurrency(self) -> int:
        sc = self.scaling_config
        return sc.maximum_concurrency if sc is not None and sc.maximum_concurrency else DEFAULT_MAXIMUM_CONCURRENCY

    @property
    def on_failure(self) -> Destination | None:
        return self.destination_config.on_failure if self.destination_config is not None else None


#: ``status.state``: Lambda's words (its transitional Enabling/Updating are ``Creating``).
ESM_STATES = ("Creating", "Enabled", "Disabled", "Failed")


class EventSourceMappingStatus(BaseModel):
    """What the router's pollers report (Lambda's GetEventSourceMapping fields)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    state: Literal["Creating", "Enabled", "Disabled", "Failed"] | None = None
    #: Why the state is what it is (Lambda's ``StateTransitionReason``).
    state_transition_reason: str | None = None
    #: Lambda's words: ``No records processed``, ``OK``, ``PROBLEM: ...``.
    last_processing_result: str | None = None
    #: Records waiting in the source (a queue's visible messages; Kafka's offset lag).
    lag: Annotated[int, Field(ge=0)] | None = None
    #: Pollers (concurrent batches) running now.
    pollers: Annotated[int, Field(ge=0)] = 0
    last_modified: str | None = None
