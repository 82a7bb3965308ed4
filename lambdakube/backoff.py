"""Exponential backoff, written once: every retry loop of the router and the operator
(refilling provisioned or generic environments, polling a starting environment, sending
a pod its code) uses ``Backoff.next``, so a cap or a floor is never forgotten in one
copy. Pure: callers sleep; tests check the sequence without waiting it out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    #: The first delay (and the floor after a reset to 0).
    initial: float
    #: No delay exceeds this.
    maximum: float
    factor: float = 2.0

    def next(self, previous: float) -> float:
        """The delay after ``previous`` (0 or less: the first one)."""
        if previous <= 0:
            return min(self.maximum, self.initial)
        return min(self.maximum, max(self.initial, previous * self.factor))
