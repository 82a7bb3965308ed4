"""How many provisioned environments each version of a function keeps.

Lambda configures provisioned concurrency on a version or on an alias, never on
``$LATEST``; an alias that routes to two versions splits its environments between
them by the routing weight ("Lambda allocates provisioned concurrency to the versions
in proportion to their weights"). lambdakube also keeps the Function's own
``spec.provisionedConcurrency`` for ``$LATEST`` (older than versions here; the Lambda
API never sets it). One pure function, shared by the operator (which keeps the pods on
a cluster) and the router (which keeps the processes on the local backend, and checks
a PutProvisionedConcurrencyConfig before it writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lambdakube.models import LATEST, FunctionAliasSpec


def alias_split(alias: FunctionAliasSpec) -> dict[str, int]:
    """An alias's provisioned environments per version: the additional version gets its
    weight's share, rounded half up, and the alias's version the rest (so the two always
    add up to what the alias asks)."""
    total = alias.provisioned_concurrency
    if total == 0:
        return {}
    out: dict[str, int] = {}
    rest = total
    for version, weight in alias.weights.items():
        share = int(total * weight + 0.5)
        if share:
            out[version] = share
        rest -= share
    if rest:
        out[alias.function_version] = rest
    return out


def by_version(
    latest: int,
    versions: Mapping[int, int],
    aliases: Iterable[FunctionAliasSpec],
) -> dict[str, int]:
    """Provisioned environments per version (``"$LATEST"``, ``"1"``, ...), zero counts
    left out. ``latest``: the Function's own ``provisionedConcurrency``; ``versions``:
    each published version's; ``aliases``: the function's aliases. A version named by
    an alias and configured itself keeps both (they add up). An alias's share of a
    version that is not published is left out: there is nothing to start."""
    out: dict[str, int] = {}

    def add(version: str, count: int) -> None:
        if count:
            out[version] = out.get(version, 0) + count

    add(LATEST, latest)
    for number, count in versions.items():
        add(str(number), count)
    for alias in aliases:
        for version, count in alias_split(alias).items():
            if version == LATEST or int(version) in versions:
                add(version, count)
    return out


def total(per_version: Mapping[str, int]) -> int:
    """All of a function's provisioned environments: they count against its reserved
    concurrency, or the namespace's unreserved pool when it reserves none."""
    return sum(per_version.values())
