"""How a caller names a function: ``FunctionName`` of the Invoke API, parsed once.

Pure (no aiohttp), because two readers must agree on it: ``invoke_api`` finds the
function by it, and ``access`` asks for the right to invoke that same function. A name
read two ways would let a caller be authorized for one function and run another.

The forms (Lambda's documented ones, plus lambdakube's own ARN):

=====================================================================  =========================
``FunctionName``                                                       namespace
=====================================================================  =========================
``hello``, ``hello:live``                                              header, else the default
``123456789012:function:hello[:live]`` (partial ARN)                   the account's (below)
``arn:aws:lambda:us-east-1:123456789012:function:hello[:live]``        the account's (below)
``lambdakube:<namespace>:function:<name>[:live]``                      ``<namespace>``
=====================================================================  =========================

An AWS account id names a namespace only through the router's mapping (``Accounts``,
``--account-namespace ACCOUNT=NAMESPACE``); the ``--default-account`` resolves like a
plain name (the ``X-Lambdakube-Namespace`` header, else the default namespace). Any
other account is refused (``UnknownAccount``: not found), never guessed: a 12-digit id
that is not mapped must not run a function in a namespace its caller did not mean. The
region and partition of a full ARN are checked for shape and otherwise ignored (one
router serves one "region").

Anything else is refused as Lambda refuses it (``BadFunctionName``: 400
``ValidationException`` with Lambda's own message). Lambda's pattern lets through a few
shapes its documentation does not name (``function:hello``, ``us-east-1:hello:x``); they
are refused with the same message here, the one deliberate difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lambdakube.formats import function_arn

ARN_PREFIX = "lambdakube:"
#: The one version that exists: an unqualified name means it, as in Lambda.
LATEST = "$LATEST"

#: The router -> runtime header that carries the ARN the caller invoked (with its
#: qualifier): ``context.invoked_function_arn``. The runtime (stdlib only) spells it
#: itself; tests/runtime checks that the two agree.
INVOKED_ARN_HEADER = "X-Invoked-Function-Arn"
#: To the runtime: this environment is provisioned (its Init is no invocation's: the
#: Tail log's REPORT shows no Init Duration, as Lambda's provisioned concurrency).
PROVISIONED_HEADER = "X-Provisioned"

#: Lambda's pattern for the Invoke API's ``FunctionName`` (its ``NamespacedFunctionName``
#: shape, as botocore's service model has it; tests/unit checks the two agree), quoted
#: as is in the ValidationException.
LAMBDA_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
#: The longest ``FunctionName`` (the whole value) and the longest name in it.
MAX_LENGTH = 170
MAX_NAME_LENGTH = 64

_LAMBDA_RE = re.compile(LAMBDA_PATTERN)
_NAME_RE = re.compile(r"[a-zA-Z0-9\-_.]+")
_QUALIFIER_RE = re.compile(r"\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9\-_]+")
_ACCOUNT_RE = re.compile(r"\d{12}")
_REGION_RE = re.compile(r"(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d")
_PARTITION_RE = re.compile(r"(aws[a-zA-Z-]*)?")
#: A Kubernetes namespace (a DNS-1123 label).
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class BadFunctionName(ValueError):
    """Not a FunctionName Lambda accepts: 400 ValidationException with ``str(exc)``."""

    error_type = "ValidationException"


class UnknownAccount(LookupError):
    """An ARN's account maps to no namespace: 404 ResourceNotFoundException."""

    error_type = "ResourceNotFoundException"


class AccountsError(ValueError):
    """A refused ``--account-namespace`` / ``--default-account`` (the router does not start)."""


@dataclass(frozen=True)
class Accounts:
    """Which namespace an AWS account id names (``--account-namespace``)."""

    #: account id (12 digits) -> namespace.
    namespaces: Mapping[str, str] = field(default_factory=dict)
    #: An account that resolves like a plain name (header, else the default namespace);
    #: None: none does.
    default: str | None = None

    def describe(self) -> str:
        pairs = [f"{a}={ns}" for a, ns in sorted(self.namespaces.items())]
        if self.default:
            pairs.append(f"{self.default}=(the caller's namespace)")
        return ", ".join(pairs) or "none"


NO_ACCOUNTS = Accounts()


def parse_accounts(pairs: Iterable[str], default: str | None = None) -> Accounts:
    """``ACCOUNT=NAMESPACE`` strings (``--account-namespace``, repeatable) and the
    ``--default-account``; an account listed twice, or in both, is refused."""
    namespaces: dict[str, str] = {}
    for pair in pairs:
        account, sep, namespace = pair.partition("=")
        account, namespace = account.strip(), namespace.strip()
        if not sep or not _ACCOUNT_RE.fullmatch(account) or not _NAMESPACE_RE.fullmatch(namespace):
            raise AccountsError(
                f"--account-namespace must be ACCOUNT=NAMESPACE (a 12-digit account id, a namespace name), got {pair!r}"
            )
        if account in namespaces:
            raise AccountsError(f"--account-namespace: account {account} is mapped twice")
        namespaces[account] = namespace
    if default is not None:
        default = default.strip()
        if not _ACCOUNT_RE.fullmatch(default):
            raise AccountsError(f"--default-account must be a 12-digit account id, got {default!r}")
        if default in namespaces:
            raise AccountsError(f"account {default} is both --default-account and mapped by --account-namespace")
    return Accounts(namespaces=namespaces, default=default)


def _pattern_error(raw: str) -> BadFunctionName:
    return BadFunctionName(
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint:"
        f" Member must satisfy regular expression pattern: {LAMBDA_PATTERN}"
    )


def _length_error(raw: str, limit: int) -> BadFunctionName:
    return BadFunctionName(
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint:"
        f" Member must have length less than or equal to {limit}"
    )


def _split(raw: str) -> tuple[str, str | None, str, str | None]:
    """(kind, namespace or account, name, qualifier) of a well-formed ``raw``;
    ``BadFunctionName`` otherwise. kind: ``name``, ``account`` or ``namespace``."""
    parts = raw.split(":")
    n = len(parts)
    if raw.startswith(ARN_PREFIX):
        # lambdakube:<namespace>:function:<name>[:<qualifier>]
        if n in (4, 5) and parts[2] == "function" and _NAMESPACE_RE.fullmatch(parts[1]):
            return "namespace", parts[1], parts[3], parts[4] if n == 5 else None
        raise _pattern_error(raw)
    if not _LAMBDA_RE.fullmatch(raw):
        raise _pattern_error(raw)
    if len(raw) > MAX_LENGTH:
        raise _length_error(raw, MAX_LENGTH)
    if n <= 2:  # name[:qualifier]
        return "name", None, parts[0], parts[1] if n == 2 else None
    if n in (3, 4) and parts[1] == "function" and _ACCOUNT_RE.fullmatch(parts[0]):
        return "account", parts[0], parts[2], parts[3] if n == 4 else None
    if (
        n in (7, 8)
        and parts[0] == "arn"
        and _PARTITION_RE.fullmatch(parts[1])
        and parts[2] == "lambda"
        and _REGION_RE.fullmatch(parts[3])
        and _ACCOUNT_RE.fullmatch(parts[4])
        and parts[5] == "function"
    ):
        return "account", parts[4], parts[6], parts[7] if n == 8 else None
    raise _pattern_error(raw)  # matches Lambda's pattern, but is none of its documented forms


def parse_function_name(
    raw: str, header_namespace: str | None, default_namespace: str, accounts: Accounts = NO_ACCOUNTS
) -> tuple[str, str, str | None]:
    """Returns (namespace, name, qualifier from ``raw`` or None).

    ``BadFunctionName``: not a name Lambda accepts (400 ValidationException).
    ``UnknownAccount``: an ARN whose account ``accounts`` does not map (404).
    """
    kind, where, name, qualifier = _split(raw)
    if not _NAME_RE.fullmatch(name) or (qualifier is not None and not _QUALIFIER_RE.fullmatch(qualifier)):
        raise _pattern_error(raw)
    if len(name) > MAX_NAME_LENGTH:
        raise _length_error(raw, MAX_NAME_LENGTH)
    if kind == "namespace":
        assert where is not None
        return where, name, qualifier
    if kind == "account" and where != accounts.default:
        namespace = accounts.namespaces.get(where or "")
        if namespace is None:
            raise UnknownAccount(
                f"Function not found: {raw} (account {where} is mapped to no namespace;"
                " the router's --account-namespace ACCOUNT=NAMESPACE maps one)"
            )
        return namespace, name, qualifier
    return header_namespace or default_namespace, name, qualifier


def invoked_function_arn(raw: str, namespace: str, name: str, qualifier: str | None) -> str:
    """The ARN the handler sees as ``context.invoked_function_arn``: Lambda's is the ARN
    the function was invoked by, with the qualifier if one was given.

    A full ARN (AWS's or lambdakube's) is shown as the caller wrote it (with ``:<qualifier>``
    added when the qualifier came from the ``Qualifier`` parameter); a plain name, a
    ``name:qualifier`` or a partial ARN (which has no region to show) as lambdakube's
    ``lambdakube:<namespace>:function:<name>[:<qualifier>]``.
    """
    if raw.startswith(("arn:", ARN_PREFIX)):
        has_qualifier = raw.count(":") == (7 if raw.startswith("arn:") else 4)
        return raw if has_qualifier or not qualifier else f"{raw}:{qualifier}"
    arn = function_arn(namespace, name)
    return f"{arn}:{qualifier}" if qualifier else arn
