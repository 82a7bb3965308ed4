"""lambdakube's operator: keeps each Function's desired state (provisioned environments,
spec-hash rollouts, orphan hygiene, namespace reservations, status, events).

The router owns the hot path (leasing, cold starts, idle reaping, activity counters);
the operator owns everything that is a function of the spec alone. See README.md.
"""

__version__ = "0.1.0"
