"""What happens to an async event after an attempt: Lambda's retry rules, as a pure function.

- A **function error** (the handler raised, or timed out) uses one of
  ``maxRetryAttempts`` (0-2) retries, the first after ~60 s and the second after ~120 s.
- A **throttle** or a router/environment failure (5xx, no environment, function
  momentarily unknown) does *not* use a retry: the event goes back with a backoff that
  starts at 1 s and doubles up to 5 min, until ``maximumEventAgeSeconds`` runs out.
- Before each attempt, and whenever the next one would fall after the event's maximum
  age, the event is finished with ``EventAgeExceeded``.

All delays come from ``RetryPolicy`` so tests use milliseconds; ``now`` is passed in.

A delivery holds its event by a **lease that ends in time** (``lease_seconds``): long
enough for the slowest attempt the engine allows (waiting for an environment, Init,
the handler's timeout, the grace after it) plus time to write the outcome. Writing the
outcome (``finish``/``reschedule``) is retried with backoff while the lease lasts
(``write_retry_delay``); after it, the delivery gives up and a later pass leases the event
again (at-least-once), so a write that failed once (a full disk) never leaves an event
leased until a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdakube.backoff import Backoff

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True)
class RetryPolicy:
    #: Waits before the 1st and 2nd retry after a function error (Lambda: ~1 min, ~2 min).
    function_error_delays: tuple[float, ...] = (60.0, 120.0)
    #: Backoff for throttles and system errors: base * 2**n, capped.
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    #: Overrides spec.async.maximumEventAgeSeconds (tests); None: use the spec.
    max_event_age: float | None = None
    #: Retries of a failed outcome write (finish/reschedule), while the lease lasts.
    write_backoff: Backoff = Backoff(initial=0.5, maximum=10.0)
    #: Lease time beyond the slowest attempt: for writing its outcome.
    lease_grace: float = 60.0


@dataclass(frozen=True)
class Attempts:
    created_at: float
    function_errors: int = 0  # attempts that ended in a function error
    system_retries: int = 0  # throttles / system errors so far
    invocations: int = 0  # attempts that reached an environment


@dataclass(frozen=True)
class Decision:
    finished: bool
    condition: str | None = None  # Success | RetriesExhausted | EventAgeExceeded
    next_attempt_at: float | None = None
    attempts: Attempts | None = None


def expired(a: Attempts, now: float, max_age: float) -> bool:
    return now - a.created_at > max_age


def after_attempt(
    a: Attempts,
    outcome: str,
    now: float,
    *,
    max_retry_attempts: int,
    max_age: float,
    policy: RetryPolicy,
) -> Decision:
    """``outcome`` is "success", "function_error" or "retryable"."""
    if outcome == "success":
        return Decision(True, SUCCESS, attempts=_replace(a, invocations=a.invocations + 1))
    if outcome == "function_error":
        a = _replace(a, function_errors=a.function_errors + 1, invocations=a.invocations + 1)
        if a.function_errors > max_retry_attempts:
            return Decision(True, RETRIES_EXHAUSTED, attempts=a)
        delays = policy.function_error_delays or (0.0,)
        delay = delays[min(a.function_errors - 1, len(delays) - 1)]
    else:
        delay = min(policy.backoff_max, policy.backoff_base * (2**a.system_retries))
        a = _replace(a, system_retries=a.system_retries + 1)
    at = now + delay
    if at - a.created_at > max_age:
        return Decision(True, EVENT_AGE_EXCEEDED, attempts=a)
    return Decision(False, next_attempt_at=at, attempts=a)


def lease_seconds(timeout_seconds: float, *, init_timeout: float, invoke_grace: float, lease_grace: float) -> float:
    """How long one delivery holds its event: the engine waits up to ``init_timeout +
    timeout + grace`` for an environment, then up to ``timeout + grace`` for the answer;
    ``lease_grace`` is left for writing the outcome."""
    return init_timeout + 2 * (timeout_seconds + invoke_grace) + lease_grace


def write_retry_delay(now: float, lease_until: float, previous: float, backoff: Backoff) -> float | None:
    """The wait before retrying a failed outcome write, or None: give up, the lease ends
    first (a later pass leases the event again)."""
    delay = backoff.next(previous)
    return delay if now + delay < lease_until else None


def _replace(a: Attempts, **kw) -> Attempts:
    return Attempts(**{**a.__dict__, **kw})
