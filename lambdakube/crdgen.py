"""Generate the CustomResourceDefinitions in `crds/` from the pydantic models.

Pydantic emits JSON Schema (with ``$ref``, ``anyOf: [X, null]``, titles); Kubernetes
wants a *structural* OpenAPI v3 schema (everything inlined, one type per node, no
``$ref``). This module translates one into the other, so the models stay the one
source of truth and `tests/unit/test_crds.py` fails whenever the YAML drifts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from lambdakube import models

REPO = Path(__file__).resolve().parent.parent
CRD_DIR = REPO / "crds"
#: Helm installs CRDs from the chart's own crds/ folder; it gets the same files.
CHART_CRD_DIR = REPO / "charts" / "lambdakube" / "crds"
CRD_DIRS = (CRD_DIR, CHART_CRD_DIR)

# Keys of JSON Schema that are valid in a structural schema and mean the same thing.
_KEEP = {
    "type",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "enum",
    "default",
    "description",
    "x-kubernetes-validations",
}


RULES = "x-kubernetes-validations"


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema as Kubernetes accepts it (by-alias, i.e. camelCase)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        rules = [*target.get(RULES, []), *node.get(RULES, [])]  # the model's and the field's
        if rules:
            merged[RULES] = rules
        return _convert(merged, defs)
    if "anyOf" in node:
        # Optional[X] is anyOf [X, null]: the CRD expresses "optional" by leaving the
        # field out of `required`, so only X remains.
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express union in a structural schema: {node}")
        outer = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        if node.get("default") is not None:
            outer["default"] = node["default"]
        return _convert({**variants[0], **outer}, defs)

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "const" in node:
        out["enum"] = [node["const"]]
    if node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {name: _convert(sub, defs) for name, sub in props.items()}
        if node.get("required"):
            out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        # dict keys with a pattern come out as patternProperties; the key rule itself is
        # a CEL rule on the model, since structural schemas cannot constrain map keys.
        if not isinstance(extra, dict) and len(node.get("patternProperties", {})) == 1:
            extra = next(iter(node["patternProperties"].values()))
        if isinstance(extra, dict):
            out["additionalProperties"] = _convert(extra, defs)
    if node.get("type") == "array":
        out["items"] = _convert(node.get("items", {}), defs)
    return out


def _status_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = structural_schema(model)
    conditions = schema["properties"]["conditions"]
    # Conditions are a map keyed by type, so server-side apply merges them properly.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status", "reason"]
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec_model: type[BaseModel],
    status_model: type[BaseModel] | None,
    columns: list[dict[str, Any]],
    root_rules: list[dict[str, str]] | None = None,
    description: str,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec_model),
        },
    }
    if status_model is not None:
        root["properties"]["status"] = _status_schema(status_model)
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["lambdakube"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    **({"subresources": {"status": {}}} if status_model is not None else {}),
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _column(name: str, path: str, type_: str = "integer", priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


def function_crd() -> dict[str, Any]:
    return _crd(
        kind="Function",
        plural="functions",
        short_names=["fn"],
        spec_model=models.FunctionSpec,
        status_model=models.FunctionStatus,
        description="A function run Lambda-style: one request per execution environment (pod).",
        columns=[
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status', "string"),
            _column("Provisioned", ".status.provisioned"),
            _column("Busy", ".status.busy"),
            _column("Idle", ".status.idle"),
            _column("ColdStarts", ".status.coldStarts"),
            _column("Reserved", ".spec.reservedConcurrency", priority=1),
            _column("Handler", ".spec.handler", "string", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def quota_crd() -> dict[str, Any]:
    return _crd(
        kind="ConcurrencyQuota",
        plural="concurrencyquotas",
        short_names=["cq"],
        spec_model=models.ConcurrencyQuotaSpec,
        status_model=models.ConcurrencyQuotaStatus,
        description=(
            "The namespace's concurrency quota (Lambda's account quota): total concurrent "
            "executions across all functions; reserved concurrency is carved out of it."
        ),
        root_rules=[
            models.cel(
                f"self.metadata.name == '{models.QUOTA_OBJECT_NAME}'",
                f"a namespace has one ConcurrencyQuota and it is named '{models.QUOTA_OBJECT_NAME}'",
            )
        ],
        columns=[
            _column("Limit", ".spec.concurrentExecutions"),
            _column("Reserved", ".status.reserved"),
            _column("Unreserved", ".status.unreserved"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def version_crd() -> dict[str, Any]:
    return _crd(
        kind="FunctionVersion",
        plural="functionversions",
        short_names=["fnv"],
        spec_model=models.FunctionVersionSpec,
        status_model=models.ProvisionedStatus,
        description=(
            "A published version of a Function (Lambda's PublishVersion): an immutable snapshot of "
            "its code and configuration, numbered 1, 2, ... per function; named <function>-v<N>."
        ),
        columns=[
            _column("Function", ".spec.function", "string"),
            _column("Version", ".spec.version"),
            _column("Provisioned", ".spec.provisionedConcurrency"),
            _column("Ready", ".status.allocated"),
            _column("Status", ".status.status", "string"),
            _column("Description", ".spec.description", "string", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def alias_crd() -> dict[str, Any]:
    return _crd(
        kind="FunctionAlias",
        plural="functionaliases",
        short_names=["fna"],
        spec_model=models.FunctionAliasSpec,
        status_model=models.ProvisionedStatus,
        description=(
            "A Lambda alias of a Function: its name (metadata.name) invokes functionVersion, or "
            "splits invocations with one additional version (routingConfig)."
        ),
        root_rules=[models.ALIAS_NAME_RULE],
        columns=[
            _column("Function", ".spec.function", "string"),
            _column("Version", ".spec.functionVersion", "string"),
            _column("Provisioned", ".spec.provisionedConcurrency"),
            _column("Ready", ".status.allocated"),
            _column("Status", ".status.status", "string"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def event_source_mapping_crd() -> dict[str, Any]:
    return _crd(
        kind=models.ESM_KIND,
        plural="eventsourcemappings",
        short_names=["esm"],
        spec_model=models.EventSourceMappingSpec,
        status_model=models.EventSourceMappingStatus,
        description=(
            "Lambda's event source mapping: the router polls a source (one of its durable queues, "
            "with SQS semantics, or a Kafka topic) and invokes functionName with batches of records."
        ),
        columns=[
            _column("Function", ".spec.functionName", "string"),
            _column("Queue", ".spec.queue.name", "string"),
            _column("Topic", ".spec.topics[0]", "string"),
            _column("State", ".status.state", "string"),
            _column("Lag", ".status.lag"),
            _column("Pollers", ".status.pollers"),
            _column("LastResult", ".status.lastProcessingResult", "string", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


ALL = {
    "functions.yaml": function_crd,
    "concurrencyquotas.yaml": quota_crd,
    "functionversions.yaml": version_crd,
    "functionaliases.yaml": alias_crd,
    "eventsourcemappings.yaml": event_source_mapping_crd,
}


class _NoAliasDumper(yaml.SafeDumper):
    """Shared sub-schemas must be written out in full: kubectl users read these files."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(builder) -> str:
    header = "# Generated by `lambdakube crds` from lambdakube/models.py. Do not edit.\n"
    return header + yaml.dump(builder(), Dumper=_NoAliasDumper, sort_keys=False, width=100)


def write(directories: tuple[Path, ...] = CRD_DIRS) -> list[Path]:
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for filename, builder in ALL.items():
            path = directory / filename
            path.write_text(render(builder))
            written.append(path)
    return written


def stale(directories: tuple[Path, ...] = CRD_DIRS) -> list[str]:
    """Paths of CRD files whose content differs from what the models generate."""
    return [
        str((directory / name).relative_to(REPO))
        for directory in directories
        for name, builder in ALL.items()
        if not (directory / name).exists() or (directory / name).read_text() != render(builder)
    ]
