"""The router's memory of reviews: tokens -> identities, and (identity, attributes) ->
decisions, each with a time to live. Pure: ``now`` is an argument, nothing sleeps.

Why the keys are what they are:

- a token is remembered by its SHA-256 (``access.token_digest``), never in clear;
- a decision is keyed by the *whole* identity (username, uid, groups, extra: every field
  a SubjectAccessReview is asked with) and the exact attributes (verb, resource,
  namespace, name). Two callers never share an entry unless the API server was asked the
  very same question about the very same subject, so identity B can never ride on a
  decision made for identity A.

Bounded: at most ``max_entries`` per cache. Beyond that the expired entries go, then the
oldest (insertion order), so a flood of random tokens costs memory once, not forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lambdakube_router.access import Attributes, Ttls, UserInfo

V = TypeVar("V")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires: float


class TtlCache(Generic[V]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now: float) -> V | _Missing:
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if now >= entry.expires:
            del self._entries[key]
            return MISSING
        return entry.value

    def put(self, key: Hashable, value: V, ttl: float, now: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries.pop(key, None)  # re-inserted last: the newest
        self._entries[key] = _Entry(value, now + ttl)
        if len(self._entries) > self.max_entries:
            for k in [k for k, e in self._entries.items() if now >= e.expires]:
                del self._entries[k]
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


DecisionKey = tuple[UserInfo, Attributes]


class ReviewCache:
    """Both caches, with the TTL rules: how long a result is kept depends on the result."""

    def __init__(self, ttls: Ttls, max_entries: int) -> None:
        self.ttls = ttls
        self.tokens: TtlCache[UserInfo | None] = TtlCache(max_entries)
        self.decisions: TtlCache[bool] = TtlCache(max_entries)

    def user(self, digest: bytes, now: float) -> UserInfo | None | _Missing:
        """The identity of a token (None: the token was refused), or MISSING: ask."""
        return self.tokens.get(digest, now)

    def remember_user(self, digest: bytes, user: UserInfo | None, now: float) -> None:
        ttl = self.ttls.authenticated if user is not None else self.ttls.unauthenticated
        self.tokens.put(digest, user, ttl, now)

    def decision(self, user: UserInfo, attrs: Attributes, now: float) -> bool | _Missing:
        return self.decisions.get((user, attrs), now)

    def remember_decision(self, user: UserInfo, attrs: Attributes, allowed: bool, now: float) -> None:
        self.decisions.put((user, attrs), allowed, self.ttls.allowed if allowed else self.ttls.denied, now)
