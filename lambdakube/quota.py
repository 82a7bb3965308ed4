"""Namespace reservation arithmetic (pure), shared by the operator and the router.

One rule, one implementation: on Kubernetes the operator runs it and publishes the result
in ``ConcurrencyQuota/default``'s status, which the router applies as is; in local mode
(a manifest directory, no operator) the router runs the very same function itself. So a
reservation is granted or rejected for the same reason, with the same message, wherever
it is decided.

Lambda keeps ``minimumUnreserved`` (100) of the account's concurrency for functions
without a reservation, and refuses a reservation that would eat into it. Kubernetes has
no synchronous refusal for a valid object, so reservations are admitted in a fixed order
- oldest Function first (``created``, then name) - and every reservation that does not
fit is *rejected*: ``granted[name] = 0`` and listed in ``rejected``. A later, smaller
reservation still fits if there is room for it (first fit in order, no early stop).

What "created" means is the caller's business: the operator passes the Function's
RFC 3339 ``creationTimestamp`` (sorts chronologically as a string); the router in local
mode passes the order in which it first saw each function (zero-padded, so it sorts).

Caveat of creation order: raising an *older* function's reservation can push a newer
function, granted until then, out of the quota.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reservation:
    name: str
    #: Sort key for "oldest first": an RFC 3339 creationTimestamp, or any string that
    #: sorts in creation order.
    created: str
    #: ``spec.reservedConcurrency``; None when the function has no reservation.
    reserved: int | None


@dataclass(frozen=True)
class Allocation:
    concurrent_executions: int
    minimum_unreserved: int
    #: Every function with a reservation: its reservation, or 0 when rejected.
    granted: dict[str, int] = field(default_factory=dict)
    #: Rejected functions, in admission order.
    rejected: list[str] = field(default_factory=list)
    #: Why each rejected function does not fit.
    messages: dict[str, str] = field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return sum(self.granted.values())

    @property
    def unreserved(self) -> int:
        return self.concurrent_executions - self.reserved

    def verdict(self, name: str) -> str | None:
        """None when ``name``'s reservation is granted (or it has none), else the reason."""
        return self.messages.get(name)


def rejection_message(reserved: int, limit: int, already: int, minimum_unreserved: int) -> str:
    return (
        f"reservedConcurrency {reserved} does not fit: namespace quota {limit}, "
        f"already reserved {already}, {minimum_unreserved} must stay unreserved"
    )


def allocate(concurrent_executions: int, minimum_unreserved: int, reservations: list[Reservation]) -> Allocation:
    """Grant reservations oldest-first while Σgranted ≤ concurrentExecutions − minimumUnreserved."""
    capacity = concurrent_executions - minimum_unreserved
    granted: dict[str, int] = {}
    rejected: list[str] = []
    messages: dict[str, str] = {}
    total = 0
    for r in sorted(reservations, key=lambda r: (r.created, r.name)):
        if r.reserved is None:
            continue
        if total + r.reserved <= capacity:
            granted[r.name] = r.reserved
            total += r.reserved
        else:
            granted[r.name] = 0
            rejected.append(r.name)
            messages[r.name] = rejection_message(r.reserved, concurrent_executions, total, minimum_unreserved)
    return Allocation(
        concurrent_executions=concurrent_executions,
        minimum_unreserved=minimum_unreserved,
        granted=granted,
        rejected=rejected,
        messages=messages,
    )
