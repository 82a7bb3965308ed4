"""Concurrency arithmetic with Lambda's semantics. Pure: no I/O, no clock of its own.

Why it is separate from the pool: *concurrency* is the number of admitted, in-flight
executions, not the number of environments. A request is admitted (or throttled) here
before it ever looks for an environment, so the quota holds even while environments are
still starting, and the pool never needs to know about namespaces.

The rules, as AWS Lambda applies them per account (here: per namespace):

- The namespace quota (``ConcurrencyQuota.concurrentExecutions``, default 1000) caps
  the sum of in-flight executions of all its functions.
- ``reservedConcurrency`` is both a guarantee and a cap. It is carved out of the quota:
  a reservation is granted only if ``Σgranted ≤ quota - minimumUnreserved`` still holds
  with it. A reservation that does not fit is *rejected* (with a reason, shown by the
  introspection API): like a failed PutFunctionConcurrency, the function then gets no
  guarantee, draws from the unreserved pool, and its requested value still caps it —
  we never let a function exceed what its owner asked for. Its throttles say
  ``ConcurrentInvocationLimitExceeded``.
- Who decides which reservations are granted:

  * On Kubernetes, the **operator** (one authority). It publishes its decision in
    ``ConcurrencyQuota/default``'s status (``granted``, ``rejected``) and the router
    applies exactly that (``plan_from_status``). A reservation the status does not
    (yet) grant *for the current spec value* - a function just created, a reservation
    just changed, no quota status at all - is *pending*: treated like a rejected one
    (unreserved pool, capped at the requested value) until the operator has decided.
    That is the safe side: the router never reserves capacity the operator has not
    granted, and never lets a function exceed its request.
  * In local mode (a manifest directory, no operator) the router allocates itself with
    the operator's own arithmetic (``lambdakube.quota.allocate``: same order rule, same
    messages). "Creation order" there is the order in which the router first saw each
    function: manifest order at startup (files sorted by path, documents in file order),
    then later additions after them. An existing grant is therefore never taken away by
    a newcomer - only by an older function raising its reservation, exactly as on
    Kubernetes.
- The unreserved pool (``quota - sum of grants``) is shared by every function without
  a granted reservation. ``maxConcurrency`` is an extra per-function cap.
- Reserved 0 throttles every invocation.
- A token bucket per function limits *new environments* (cold starts): ``burst`` per
  ``period`` seconds, refilled continuously, capped at ``burst``.

Every method that depends on time takes ``now`` (seconds, any monotonic origin), so
tests drive it with a fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from lambdakube.models import ConcurrencyQuotaSpec, ConcurrencyQuotaStatus, FunctionSpec
from lambdakube.quota import Reservation, allocate

RESERVED_EXCEEDED = "ReservedFunctionConcurrentInvocationLimitExceeded"
CONCURRENT_EXCEEDED = "ConcurrentInvocationLimitExceeded"
RATE_EXCEEDED = "FunctionInvocationRateLimitExceeded"


@dataclass(frozen=True)
class Throttle:
    """Why an invocation was refused, and when retrying makes sense."""

    reason: str
    retry_after_seconds: int = 1


class TokenBucket:
    """``burst`` tokens per ``period`` seconds, refilled continuously, capped at ``burst``."""

    __slots__ = ("burst", "period", "tokens", "updated")

    def __init__(self, burst: int, period: float, now: float) -> None:
        self.burst = burst
        self.period = period
        self.tokens = float(burst)
        self.updated = now

    @property
    def rate(self) -> float:
        return self.burst / self.period

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> int:
        """Whole seconds until one token is available (at least 1)."""
        self._refill(now)
        missing = max(0.0, 1.0 - self.tokens)
        return max(1, math.ceil(missing / self.rate))

    def reconfigure(self, burst: int, period: float, now: float) -> None:
        self._refill(now)
        self.burst, self.period = burst, period
        self.tokens = min(self.tokens, float(burst))


@dataclass(frozen=True)
class ReservationPlan:
    """Outcome of carving reservations out of a namespace quota."""

    granted: dict[str, int]
    rejected: dict[str, str]  # function -> reason
    unreserved: int
    #: Kubernetes only: requested reservations the operator has not decided on yet.
    pending: dict[str, str] = field(default_factory=dict)  # function -> explanation


def plan_reservations(quota: ConcurrencyQuotaSpec, requested: dict[str, int | None]) -> ReservationPlan:
    """Local mode: allocate in the order of ``requested`` (the order functions were first
    seen), with the operator's arithmetic and wording (``lambdakube.quota.allocate``)."""
    width = len(str(len(requested)))
    alloc = allocate(
        quota.concurrent_executions,
        quota.minimum_unreserved,
        [Reservation(name, f"{i:0{width}d}", value) for i, (name, value) in enumerate(requested.items())],
    )
    granted = {n: v for n, v in alloc.granted.items() if n not in alloc.messages}
    return ReservationPlan(granted, dict(alloc.messages), alloc.unreserved)


def published_reasons(status: ConcurrencyQuotaStatus) -> dict[str, str]:
    """The operator's per-function rejection messages (``status.rejectedReasons``)."""
    return dict(status.rejected_reasons)


def plan_from_status(
    quota: ConcurrencyQuotaSpec,
    requested: Mapping[str, int | None],
    status: ConcurrencyQuotaStatus | None,
) -> ReservationPlan:
    """Kubernetes: apply the operator's published decision, never one of our own.

    A reservation is granted only when the status grants exactly the value the spec
    requests now; anything else (rejected, not mentioned yet, granted for an older value,
    no status at all) leaves the function without a reservation - unreserved pool,
    capped at its request. The unreserved pool is ``quota - Σ(what we apply)``.

    A status whose grants do not fit the *current* quota spec (the quota was just
    lowered and the operator has not re-published) is stale as a whole: every
    reservation is pending until it does, so the namespace total never exceeds the quota.
    """
    granted: dict[str, int] = {}
    rejected: dict[str, str] = {}
    pending: dict[str, str] = {}
    reasons = published_reasons(status) if status is not None else {}
    stale = status is not None and (
        sum(v for n, v in status.granted.items() if requested.get(n) == v and n not in status.rejected)
        > quota.concurrent_executions - quota.minimum_unreserved
    )
    for name, value in requested.items():
        if value is None:
            continue
        if status is None:
            pending[name] = (
                f"reservedConcurrency {value} not granted yet: ConcurrencyQuota default has no"
                " status (is the operator running?)"
            )
        elif stale:
            pending[name] = (
                f"reservedConcurrency {value} not granted yet: the published grants exceed"
                f" the quota ({quota.concurrent_executions}, {quota.minimum_unreserved} unreserved);"
                " waiting for the operator"
            )
        elif name in status.rejected:
            rejected[name] = reasons.get(name) or (
                f"reservedConcurrency {value} rejected by the operator (see ConcurrencyQuota default status)"
            )
        elif status.granted.get(name) == value:
            granted[name] = value
        elif name in status.granted:
            pending[name] = (
                f"reservedConcurrency {value} not granted yet: the operator granted"
                f" {status.granted[name]} for an earlier spec"
            )
        else:
            pending[name] = f"reservedConcurrency {value} not granted yet by the operator"
    return ReservationPlan(granted, rejected, quota.concurrent_executions - sum(granted.values()), pending)


@dataclass
class FunctionLimits:
    """One function's admission state inside its namespace."""

    name: str
    spec: FunctionSpec
    bucket: TokenBucket
    granted: int | None = None  # reserved concurrency actually granted
    rejected_reason: str | None = None
    pending_reason: str | None = None  # Kubernetes: the operator has not granted it (yet)
    in_flight: int = 0

    @property
    def cap(self) -> int | None:
        """The most this function may have in flight (None: only the pool limits it)."""
        caps = [c for c in (self.granted, self.spec.max_concurrency) if c is not None]
        if self.granted is None and self.spec.reserved_concurrency is not None:
            caps.append(self.spec.reserved_concurrency)  # rejected reservation still caps
        return min(caps) if caps else None


@dataclass
class NamespaceLimits:
    """Admission control for one namespace: quota, reservations, unreserved pool, buckets."""

    namespace: str
    quota: ConcurrencyQuotaSpec = field(default_factory=ConcurrencyQuotaSpec)
    functions: dict[str, FunctionLimits] = field(default_factory=dict)
    unreserved_in_flight: int = 0
    plan: ReservationPlan = field(
        default_factory=lambda: ReservationPlan({}, {}, ConcurrencyQuotaSpec().concurrent_executions)
    )
    #: False: local mode, the router allocates. True: apply ``published`` (the operator's).
    operator_decides: bool = False
    published: ConcurrencyQuotaStatus | None = None

    # -- configuration -----------------------------------------------------------------

    def set_quota(self, quota: ConcurrencyQuotaSpec, now: float) -> None:
        self.quota = quota
        for fl in self.functions.values():
            fl.bucket.reconfigure(quota.scaling_rate.burst, quota.scaling_rate.period_seconds, now)
        self.replan()

    def set_function(self, name: str, spec: FunctionSpec, now: float, *, replan: bool = True) -> FunctionLimits:
        """Add or update a function; ``replan=False``: the caller calls ``replan`` once
        after a batch (each replan is linear in the namespace's functions, so a snapshot
        of 1,000 functions replanned per function took seconds)."""
        fl = self.functions.get(name)
        rate = self.quota.scaling_rate
        if fl is None:
            fl = FunctionLimits(name, spec, TokenBucket(rate.burst, rate.period_seconds, now))
            self.functions[name] = fl
        else:
            fl.spec = spec
        if replan:
            self.replan()
        return fl

    def set_published(self, statuses: Mapping[str, ConcurrencyQuotaStatus] | None) -> None:
        """``Snapshot.quota_status``: None in local mode (the router allocates), else every
        namespace's published ConcurrencyQuota status (this namespace's may be missing)."""
        operator_decides = statuses is not None
        published = statuses.get(self.namespace) if statuses is not None else None
        if (operator_decides, published) != (self.operator_decides, self.published):
            self.operator_decides, self.published = operator_decides, published
            self.replan()

    def remove_function(self, name: str, *, replan: bool = True) -> None:
        fl = self.functions.pop(name, None)
        if fl is not None and fl.granted is None:
            self.unreserved_in_flight -= fl.in_flight
        if replan:
            self.replan()

    def replan(self) -> None:
        requested = {n: f.spec.reserved_concurrency for n, f in self.functions.items()}
        if self.operator_decides:
            self.plan = plan_from_status(self.quota, requested, self.published)
        else:
            self.plan = plan_reservations(self.quota, requested)
        self.unreserved_in_flight = 0
        for name, fl in self.functions.items():
            fl.granted = self.plan.granted.get(name)
            fl.rejected_reason = self.plan.rejected.get(name)
            fl.pending_reason = self.plan.pending.get(name)
            if fl.granted is None:
                self.unreserved_in_flight += fl.in_flight

    # -- admission ---------------------------------------------------------------------

    def try_acquire(self, name: str) -> Throttle | None:
        """Admit one execution of ``name`` (returns None) or say why not."""
        fl = self.functions[name]
        if fl.granted is not None:
            if fl.in_flight >= fl.granted:
                return Throttle(RESERVED_EXCEEDED)
            if fl.spec.max_concurrency is not None and fl.in_flight >= fl.spec.max_concurrency:
                return Throttle(CONCURRENT_EXCEEDED)
            fl.in_flight += 1
            return None
        cap = fl.cap
        if cap is not None and fl.in_flight >= cap:
            return Throttle(CONCURRENT_EXCEEDED)
        if self.unreserved_in_flight >= self.plan.unreserved:
            return Throttle(CONCURRENT_EXCEEDED)
        fl.in_flight += 1
        self.unreserved_in_flight += 1
        return None

    def release(self, name: str) -> None:
        fl = self.functions.get(name)
        if fl is None:
            return
        assert fl.in_flight > 0, f"release without acquire for {self.namespace}/{name}"
        fl.in_flight -= 1
        if fl.granted is None:
            self.unreserved_in_flight -= 1

    def take_scaling_token(self, name: str, now: float) -> Throttle | None:
        """One token per new environment; None when granted."""
        bucket = self.functions[name].bucket
        if bucket.take(now):
            return None
        return Throttle(RATE_EXCEEDED, bucket.retry_after(now))

    @property
    def in_flight(self) -> int:
        return sum(f.in_flight for f in self.functions.values())

    def describe(self, name: str) -> dict:
        fl = self.functions[name]
        return {
            "inFlight": fl.in_flight,
            "reservedConcurrency": fl.spec.reserved_concurrency,
            "reservedGranted": fl.granted,
            "reservationRejected": fl.rejected_reason,
            "reservationPending": fl.pending_reason,
            "maxConcurrency": fl.spec.max_concurrency,
            "cap": fl.cap,
            "namespaceInFlight": self.in_flight,
            "namespaceQuota": self.quota.concurrent_executions,
            "unreservedPool": self.plan.unreserved,
            "unreservedInFlight": self.unreserved_in_flight,
            "scalingTokens": round(fl.bucket.tokens, 3),
        }
