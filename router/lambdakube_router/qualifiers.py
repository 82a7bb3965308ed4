"""Which version a qualified invocation runs: Lambda's qualifiers as pure rules.

A ``Qualifier`` is ``$LATEST`` (or none), a published version's number, or an alias
name. An alias names ``functionVersion`` and at most one additional version with a
weight ``w``: per invocation that version runs with probability ``w``, else
``functionVersion``. The draw is an argument (uniform in [0, 1)), so the rule is a table
test and the engine owns the randomness (``random.Random``, injectable).
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdakube.models import LATEST, FunctionAliasSpec


def pick_version(alias: FunctionAliasSpec, draw: float) -> str:
    """The version an invocation of ``alias`` runs, for a uniform ``draw`` in [0, 1)."""
    for version, weight in sorted(alias.weights.items()):
        if draw < weight:
            return version
    return alias.function_version


@dataclass(frozen=True)
class Resolved:
    """What a qualifier names: ``version`` (``$LATEST`` or digits), else ``missing``
    (the text of a 404: no such version or alias)."""

    version: str = LATEST
    missing: str | None = None


def resolve(
    qualifier: str | None,
    versions: set[int],
    aliases: dict[str, FunctionAliasSpec],
    draw: float,
) -> Resolved:
    """The version ``qualifier`` runs, given a function's published ``versions`` and its
    ``aliases``; an alias pointing at a version that does not exist is missing too."""
    if qualifier in (None, "", LATEST):
        return Resolved(LATEST)
    assert qualifier is not None
    if qualifier.isdigit():
        return Resolved(qualifier) if int(qualifier) in versions else Resolved(missing=qualifier)
    alias = aliases.get(qualifier)
    if alias is None:
        return Resolved(missing=qualifier)
    version = pick_version(alias, draw)
    if version != LATEST and int(version) not in versions:
        return Resolved(missing=f"{qualifier} (its version {version} is not published)")
    return Resolved(version)
