"""``names``: every FunctionName form, the account mapping, Lambda's refusals, and the ARN a
handler sees. Tables of named cases; the access each name asks for is in
tests/unit/test_router_access.py (``ACCOUNT_REQUIREMENTS``)."""

from __future__ import annotations

import pytest

from lambdakube_router.names import (
    LAMBDA_PATTERN,
    Accounts,
    AccountsError,
    BadFunctionName,
    UnknownAccount,
    invoked_function_arn,
    parse_accounts,
    parse_function_name,
)

ACCOUNTS = Accounts(namespaces={"123456789012": "team-a", "210987654321": "team-b"}, default="111111111111")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:hello"
N64 = "n" * 64

# (case, FunctionName, header namespace) -> (namespace, name, qualifier); default namespace "home"
PARSED = [
    ("plain name", "hello", None, ("home", "hello", None)),
    ("plain name + header", "hello", "b", ("b", "hello", None)),
    ("name:qualifier", "hello:live", None, ("home", "hello", "live")),
    ("name:$LATEST", "hello:$LATEST", None, ("home", "hello", "$LATEST")),
    ("name:version", "hello:7", None, ("home", "hello", "7")),
    ("a name of digits is a name, not an account", "123456789012:live", None, ("home", "123456789012", "live")),
    ("a name like a region is a name", "us-east-1:live", None, ("home", "us-east-1", "live")),
    ("dots, underscores, capitals (Lambda's characters)", "My_fn.v2", None, ("home", "My_fn.v2", None)),
    ("a 64-character name", N64, None, ("home", N64, None)),
    ("full ARN: the account's namespace", ARN, None, ("team-a", "hello", None)),
    ("full ARN: its namespace wins over the header", ARN, "b", ("team-a", "hello", None)),
    ("full ARN with an alias", ARN + ":live", None, ("team-a", "hello", "live")),
    ("full ARN with $LATEST", ARN + ":$LATEST", None, ("team-a", "hello", "$LATEST")),
    ("full ARN, another account", "arn:aws:lambda:eu-west-3:210987654321:function:x", None, ("team-b", "x", None)),
    ("full ARN, another partition, region ignored", "arn:aws-cn:lambda:cn-north-1:123456789012:function:hello",
     None, ("team-a", "hello", None)),
    ("full ARN, GovCloud region", "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:hello", None,
     ("team-a", "hello", None)),
    ("full ARN, the default account: like a plain name", "arn:aws:lambda:us-east-1:111111111111:function:hello",
     "b", ("b", "hello", None)),
    ("partial ARN", "123456789012:function:hello", None, ("team-a", "hello", None)),
    ("partial ARN with a qualifier", "123456789012:function:hello:live", None, ("team-a", "hello", "live")),
    ("partial ARN, the default account", "111111111111:function:hello", None, ("home", "hello", None)),
    ("lambdakube's ARN", "lambdakube:c:function:hello", "b", ("c", "hello", None)),
    ("lambdakube's ARN with a qualifier", "lambdakube:c:function:hello:live", None, ("c", "hello", "live")),
    ("lambdakube's ARN with $LATEST", "lambdakube:c:function:hello:$LATEST", None, ("c", "hello", "$LATEST")),
]  # fmt: skip


@pytest.mark.parametrize("raw,header,want", [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_parse(raw, header, want):
    assert parse_function_name(raw, header, "home", ACCOUNTS) == want


def pattern_message(raw: str) -> str:
    return (
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint:"
        f" Member must satisfy regular expression pattern: {LAMBDA_PATTERN}"
    )


def length_message(raw: str, limit: int) -> str:
    return (
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint:"
        f" Member must have length less than or equal to {limit}"
    )


LONG_ARN = "arn:aws:lambda:us-east-1:123456789012:function:" + "n" * 130  # 177 characters

# (case, FunctionName) -> Lambda's ValidationException message
REFUSED = [
    ("empty", "", pattern_message("")),
    ("a slash", "a/b", pattern_message("a/b")),
    ("a space", "hello world", pattern_message("hello world")),
    ("a bad character in the qualifier", "hello:li.ve", pattern_message("hello:li.ve")),
    ("an empty qualifier", "hello:", pattern_message("hello:")),
    ("two qualifiers", "hello:a:b:c:d", pattern_message("hello:a:b:c:d")),
    ("bad region", "arn:aws:lambda:useast1:123456789012:function:hello",
     pattern_message("arn:aws:lambda:useast1:123456789012:function:hello")),
    ("empty region", "arn:aws:lambda::123456789012:function:hello",
     pattern_message("arn:aws:lambda::123456789012:function:hello")),
    ("11-digit account", "arn:aws:lambda:us-east-1:12345678901:function:hello",
     pattern_message("arn:aws:lambda:us-east-1:12345678901:function:hello")),
    ("another service", "arn:aws:s3:us-east-1:123456789012:function:hello",
     pattern_message("arn:aws:s3:us-east-1:123456789012:function:hello")),
    ("a layer, not a function", "arn:aws:lambda:us-east-1:123456789012:layer:hello",
     pattern_message("arn:aws:lambda:us-east-1:123456789012:layer:hello")),
    ("partial ARN without function:", "123456789012:hello:live", pattern_message("123456789012:hello:live")),
    ("Lambda's pattern, none of its documented forms", "function:hello:live",
     pattern_message("function:hello:live")),
    ("lambdakube's ARN, too short", "lambdakube:bad", pattern_message("lambdakube:bad")),
    ("lambdakube's ARN, not a namespace", "lambdakube:Team_A:function:hello",
     pattern_message("lambdakube:Team_A:function:hello")),
    ("lambdakube's ARN, an empty name", "lambdakube:c:function:", pattern_message("lambdakube:c:function:")),
    ("a 65-character name", "n" * 65, length_message("n" * 65, 64)),
    ("an ARN's 65-character name", "123456789012:function:" + "n" * 65,
     length_message("123456789012:function:" + "n" * 65, 64)),
    ("over 170 characters in all", LONG_ARN, length_message(LONG_ARN, 170)),
]  # fmt: skip


@pytest.mark.parametrize("raw,message", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_as_lambda_refuses(raw, message):
    with pytest.raises(BadFunctionName) as exc:
        parse_function_name(raw, "b", "home", ACCOUNTS)
    assert str(exc.value) == message
    assert exc.value.error_type == "ValidationException"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("arn:aws:lambda:us-east-1:999999999999:function:hello", id="full ARN"),
        pytest.param("999999999999:function:hello:live", id="partial ARN"),
    ],
)
def test_an_unmapped_account_is_not_found_never_guessed(raw):
    with pytest.raises(UnknownAccount) as exc:
        parse_function_name(raw, "b", "home", ACCOUNTS)
    assert str(exc.value) == (
        f"Function not found: {raw} (account 999999999999 is mapped to no namespace;"
        " the router's --account-namespace ACCOUNT=NAMESPACE maps one)"
    )
    assert exc.value.error_type == "ResourceNotFoundException"


def test_without_a_mapping_every_account_is_unknown():
    with pytest.raises(UnknownAccount):
        parse_function_name(ARN, None, "home")
    assert parse_function_name("hello", None, "home") == ("home", "hello", None)


def test_the_pattern_is_lambdas():
    """The ValidationException quotes Lambda's pattern: botocore's model of the Invoke API
    is generated from the same definition as Lambda's validation."""
    botocore_session = pytest.importorskip("botocore.session")
    shape = botocore_session.get_session().get_service_model("lambda").operation_model("Invoke").input_shape
    member = shape.members["FunctionName"]
    assert member.metadata["pattern"] == LAMBDA_PATTERN, "Lambda's FunctionName pattern changed: update names.py"


# (case, FunctionName, resolved namespace, name, qualifier in effect) -> context.invoked_function_arn
INVOKED = [
    ("plain name: lambdakube's ARN", "hello", "home", "hello", None, "lambdakube:home:function:hello"),
    ("plain name + Qualifier", "hello", "home", "hello", "$LATEST", "lambdakube:home:function:hello:$LATEST"),
    ("name:qualifier", "hello:live", "home", "hello", "live", "lambdakube:home:function:hello:live"),
    ("partial ARN: no region to show", "123456789012:function:hello", "team-a", "hello", None,
     "lambdakube:team-a:function:hello"),
    ("full ARN: as the caller wrote it", ARN, "team-a", "hello", None, ARN),
    ("full ARN with a qualifier", ARN + ":live", "team-a", "hello", "live", ARN + ":live"),
    ("full ARN + Qualifier", ARN, "team-a", "hello", "live", ARN + ":live"),
    ("lambdakube's ARN", "lambdakube:c:function:hello", "c", "hello", None, "lambdakube:c:function:hello"),
    ("lambdakube's ARN + Qualifier", "lambdakube:c:function:hello", "c", "hello", "$LATEST",
     "lambdakube:c:function:hello:$LATEST"),
    ("lambdakube's ARN with a qualifier", "lambdakube:c:function:hello:x", "c", "hello", "x",
     "lambdakube:c:function:hello:x"),
]  # fmt: skip


@pytest.mark.parametrize("raw,ns,name,qualifier,want", [c[1:] for c in INVOKED], ids=[c[0] for c in INVOKED])
def test_invoked_function_arn(raw, ns, name, qualifier, want):
    assert invoked_function_arn(raw, ns, name, qualifier) == want


def test_parse_accounts():
    accounts = parse_accounts(["123456789012=team-a", " 210987654321 = team-b "], "111111111111")
    assert accounts == Accounts({"123456789012": "team-a", "210987654321": "team-b"}, "111111111111")
    assert parse_accounts([]) == Accounts()
    assert accounts.describe() == "123456789012=team-a, 210987654321=team-b, 111111111111=(the caller's namespace)"


@pytest.mark.parametrize(
    "pairs,default,message",
    [
        pytest.param(["123456789012"], None, "must be ACCOUNT=NAMESPACE", id="no namespace"),
        pytest.param(["12345=team-a"], None, "must be ACCOUNT=NAMESPACE", id="not 12 digits"),
        pytest.param(["123456789012=Team_A"], None, "must be ACCOUNT=NAMESPACE", id="not a namespace"),
        pytest.param(["123456789012=a", "123456789012=b"], None, "mapped twice", id="an account twice"),
        pytest.param([], "default", "must be a 12-digit account id", id="a bad default account"),
        pytest.param(["123456789012=a"], "123456789012", "both --default-account and", id="default and mapped"),
    ],
)
def test_parse_accounts_refusals(pairs, default, message):
    with pytest.raises(AccountsError, match=message):
        parse_accounts(pairs, default)
