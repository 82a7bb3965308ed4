"""Lambda's read API shapes (GetFunction, ListFunctions, GetAccountSettings, ...), pure.

Why: users come with boto3, the aws CLI and Terraform, whose readers expect Lambda's
JSON. Each shape is built here from what the router already holds (a Function's spec, the
namespace's quota and reservation plan), so the aiohttp handlers (``lambda_read_api``)
only pick the function and write the answer, and these are table-tested without a
server.

Mapping (documented in the README):

- a namespace is Lambda's account; ``FunctionArn`` is lambdakube's ARN
  (``formats.function_arn``; a published version's or an alias's qualified by it),
  ``Version`` is ``$LATEST`` or a published version's number;
- ``PackageType``: ``Zip`` for inline code (``CodeSha256``/``CodeSize`` of the source),
  ``Image`` for ``spec.image`` (``Code.ImageUri``); ``Runtime`` is the runtime image's
  Python for inline code;
- ``Role``: the Function's ServiceAccount (``system:serviceaccount:<ns>:<name>``), the
  identity its handler calls with, where Lambda names an IAM role;
- ``Environment.Variables``: the literal ``spec.env`` only, as anyone who may read the
  Function sees it; values from Secrets or ConfigMaps are never resolved here;
- ``State`` is ``Active``: the router only knows valid Functions (an invalid manifest
  never reaches it, and a Function's Init errors are per environment, in its status).
"""

from __future__ import annotations

import base64
import hashlib
import platform

from lambdakube.formats import function_arn
from lambdakube.models import ConcurrencyQuotaSpec, FunctionAliasSpec, FunctionSpec
from lambdakube.resources.code import LATEST
from lambdakube.resources.pods import TMP_SIZE_LIMIT

#: Lambda's defaults and limits for ListFunctions' MaxItems.
DEFAULT_MAX_ITEMS = 50
MAX_MAX_ITEMS = 10000
#: The Python of the default runtime image (runtime-image/Dockerfile: python:3.11).
RUNTIME = "python3.11"
EPHEMERAL_MB = int(TMP_SIZE_LIMIT.removesuffix("Mi"))
#: Lambda's account-wide code size limits (bytes), reported as they are.
TOTAL_CODE_SIZE = 80 * 1024**3
CODE_SIZE_UNZIPPED = 250 * 1024**2
CODE_SIZE_ZIPPED = 50 * 1024**2


class InvalidParameter(ValueError):
    """A 400 InvalidParameterValueException, as Lambda answers a bad paging argument."""


def architecture(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def _source(spec: FunctionSpec) -> bytes:
    return spec.code.inline.source.encode() if spec.code is not None else b""


def code_size(spec: FunctionSpec) -> int:
    return len(_source(spec))


def function_configuration(
    namespace: str,
    name: str,
    spec: FunctionSpec,
    *,
    version: str = LATEST,
    qualifier: str | None = None,
    description: str = "",
) -> dict:
    """FunctionConfiguration of ``version``; ``qualifier`` (a version's number or an
    alias, as the caller asked) qualifies ``FunctionArn``, as Lambda's does."""
    source = _source(spec)
    arn = function_arn(namespace, name)
    config: dict = {
        "FunctionName": name,
        "FunctionArn": f"{arn}:{qualifier}" if qualifier else arn,
        "Handler": spec.handler,
        "CodeSize": len(source),
        "CodeSha256": base64.b64encode(hashlib.sha256(source or (spec.image or "").encode()).digest()).decode(),
        "Description": description,
        "Timeout": spec.timeout_seconds,
        "MemorySize": spec.resources.memory_size,
        "Version": version,
        "Environment": {"Variables": dict(sorted(spec.env.items()))},
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip" if spec.code is not None else "Image",
        "Architectures": [architecture()],
        "EphemeralStorage": {"Size": EPHEMERAL_MB},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/lambdakube/{namespace}/{name}"},
    }
    if spec.code is not None:
        config["Runtime"] = RUNTIME
    if spec.service_account_name:
        config["Role"] = f"system:serviceaccount:{namespace}:{spec.service_account_name}"
    return config


def alias_configuration(namespace: str, name: str, alias: str, spec: FunctionAliasSpec, revision_id: str) -> dict:
    """Lambda's AliasConfiguration (ListAliases, GetAlias)."""
    out: dict = {
        "AliasArn": f"{function_arn(namespace, name)}:{alias}",
        "Name": alias,
        "FunctionVersion": spec.function_version,
        "Description": spec.description or "",
        "RevisionId": revision_id,
    }
    if spec.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(spec.weights)}
    return out


def concurrency(spec: FunctionSpec) -> dict:
    """GetFunctionConcurrency / GetFunction's ``Concurrency``: {} without a reservation."""
    if spec.reserved_concurrency is None:
        return {}
    return {"ReservedConcurrentExecutions": spec.reserved_concurrency}


def get_function(namespace: str, name: str, spec: FunctionSpec, **version) -> dict:
    """GetFunction; ``version``: ``function_configuration``'s keywords."""
    code = {"RepositoryType": "ECR", "ImageUri": spec.image} if spec.image else {"RepositoryType": "Inline"}
    out: dict = {"Configuration": function_configuration(namespace, name, spec, **version), "Code": code, "Tags": {}}
    reserved = concurrency(spec)
    if reserved:
        out["Concurrency"] = reserved
    return out


def max_items(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MAX_ITEMS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_MAX_ITEMS:
        raise InvalidParameter(f"MaxItems must be an integer from 1 to {MAX_MAX_ITEMS}, got {raw!r}")
    return value


def page(names: list[str], marker: str | None, limit: int) -> tuple[list[str], str | None]:
    """One page of sorted ``names`` after ``marker`` (the last name of the previous page,
    base64url so that it reads as opaque, as Lambda's does), and the next marker."""
    after = ""
    if marker:
        try:
            after = base64.urlsafe_b64decode(marker.encode() + b"=" * (-len(marker) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            raise InvalidParameter(f"invalid Marker {marker!r}") from None
    rest = [n for n in sorted(names) if n > after]
    chunk = rest[:limit]
    more = len(rest) > limit
    return chunk, base64.urlsafe_b64encode(chunk[-1].encode()).decode().rstrip("=") if more else None


def account_settings(quota: ConcurrencyQuotaSpec, unreserved: int, specs: list[FunctionSpec]) -> dict:
    """GetAccountSettings of a namespace: its quota, the unreserved pool, and usage."""
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
            "CodeSizeZipped": CODE_SIZE_ZIPPED,
            "ConcurrentExecutions": quota.concurrent_executions,
            "UnreservedConcurrentExecutions": unreserved,
        },
        "AccountUsage": {"TotalCodeSize": sum(code_size(s) for s in specs), "FunctionCount": len(specs)},
    }


#: Lambda's answer to a reservation that would leave too little unreserved.
UNRESERVED_BELOW_MINIMUM = (
    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution"
    " below its minimum value of [{minimum}]."
)


def count_value(body: object, member: str, minimum: int) -> int:
    """A Lambda write's integer member, e.g. PutFunctionConcurrency's
    ``ReservedConcurrentExecutions`` (0 or more) or PutProvisionedConcurrencyConfig's
    ``ProvisionedConcurrentExecutions`` (1 or more: removing it is the Delete call);
    InvalidParameter, as Lambda's validation error, when missing or out of range."""
    value = body.get(member) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameter(
            f"1 validation error detected: Value {value!r} at '{member[0].lower()}{member[1:]}' failed to satisfy"
            f" constraint: Member must be an integer greater than or equal to {minimum}"
        )
    return value


def reservation_problem(quota: ConcurrencyQuotaSpec, others: int, reserved: int, provisioned: int) -> str | None:
    """Why ``reserved`` is refused at the call, as Lambda refuses it (None: it fits).
    ``others``: what the namespace's other functions reserve (granted or still to be
    decided; not the rejected). Kubernetes would take any valid value and reject it later
    in the quota's status; Lambda answers at once, and so does this call."""
    if others + reserved > quota.concurrent_executions - quota.minimum_unreserved:
        return UNRESERVED_BELOW_MINIMUM.format(minimum=quota.minimum_unreserved)
    if reserved < provisioned:
        return (
            f"ReservedConcurrentExecutions {reserved} is less than the function's provisioned concurrency"
            f" ({provisioned})"
        )
    return None


# -- provisioned concurrency (Get/Put/Delete/ListProvisionedConcurrencyConfig(s)) ---------

#: Lambda's words for a qualifier without a configuration (404).
NO_PROVISIONED_CONFIG = "No Provisioned Concurrency Config found for this function"
#: Lambda's answer to provisioned concurrency beyond the function's reservation.
PROVISIONED_OVER_RESERVED = (
    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function"
)
#: ... and beyond what the namespace may take from its unreserved pool.
PROVISIONED_BELOW_MINIMUM = (
    "Specified ConcurrentExecutions for function decrease account's UnreservedConcurrentExecution"
    " below its minimum value of [{minimum}]."
)


def provisioned_problem(
    quota: ConcurrencyQuotaSpec, spec: FunctionSpec, others: int, function_total: int
) -> str | None:
    """Why a function with ``function_total`` provisioned environments in all (this
    request's included) is refused at the call (None: it fits). With a reservation the
    environments come out of it; without one, out of the namespace's unreserved pool,
    which must keep ``minimumUnreserved`` (``others``: what the other functions reserve,
    or provision where they reserve nothing)."""
    if spec.reserved_concurrency is not None:
        return PROVISIONED_OVER_RESERVED if function_total > spec.reserved_concurrency else None
    if spec.max_concurrency is not None and function_total > spec.max_concurrency:
        return (
            "Requested Provisioned Concurrency should not be greater than the function's"
            f" maxConcurrency ({spec.max_concurrency})"
        )
    if others + function_total > quota.concurrent_executions - quota.minimum_unreserved:
        return PROVISIONED_BELOW_MINIMUM.format(minimum=quota.minimum_unreserved)
    return None


def provisioned_config(
    requested: int, allocated: int, available: int, last_modified: str, arn: str | None = None
) -> dict:
    """Lambda's ProvisionedConcurrencyConfig (``arn``: the qualified FunctionArn, which
    only the List call shows). ``READY`` once every requested environment is initialised."""
    allocated, available = min(allocated, requested), min(available, requested)
    out: dict = {"FunctionArn": arn} if arn is not None else {}
    out |= {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": available,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "Status": "READY" if allocated >= requested else "IN_PROGRESS",
        "LastModified": last_modified,
    }
    return out
