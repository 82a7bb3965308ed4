"""Whether the async store can be used, as pure rules: what a SQLite error means, when the
router is ready, where a corrupt file is moved, and the Event that says so.

Why a store fault is not a router fault: only ``Event`` invocations (and the destination
queues) need the store. A full disk or a damaged file must not take synchronous invokes
down with it, and must not make the liveness probe restart a pod that a restart cannot
mend. So the router keeps running, async enqueues answer ``503 ServiceException``, and
*readiness* says the store is unusable until it is usable again.

Two kinds of trouble, kept apart because they heal differently:

- **unwritable** (``SQLITE_FULL``, an I/O error on write): the data is fine and reads
  still work; writes come back when space does. The dispatcher probes with a write as
  large as the largest event and clears the state by itself (``StoreHealth.wrote``).
- **unavailable** (a corrupt file, a state directory that cannot be opened): nothing is
  trusted until a restart; with ``quarantine_corrupt_store`` a corrupt file is renamed
  aside (kept for forensics) and a fresh store is started instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from lambdakube.formats import rfc3339
from lambdakube_router import kube_api

#: What a store error means (``classify``).
FULL = "full"  # no space: heals when space returns
IO = "io"  # an I/O error: may heal (a remount, a flaky volume)
CORRUPT = "corrupt"  # a damaged file: never heals by itself
OTHER = "other"


def classify(exc: BaseException) -> str:
    """The kind of a SQLite (or OS) error, from its error code name when it has one.

    Python's ``sqlite3`` raises ``OperationalError`` for a full disk and
    ``DatabaseError`` for a damaged file; the code name (``SQLITE_FULL``,
    ``SQLITE_IOERR_WRITE``, ``SQLITE_CORRUPT``, ...) is what tells them apart."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name.startswith("SQLITE_FULL"):
        return FULL
    if name.startswith("SQLITE_IOERR") or name.startswith("SQLITE_CANTOPEN") or name.startswith("SQLITE_READONLY"):
        return IO
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB":
        return CORRUPT
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) and not name:
        return CORRUPT  # "file is not a database", "database disk image is malformed"
    if isinstance(exc, OSError):
        return IO
    return OTHER


@dataclass(frozen=True)
class StoreHealth:
    """The store's state as readiness and the Invoke API see it."""

    #: Opened and trusted. False: corrupt or could not be opened (until a restart).
    available: bool = False
    #: Why it is unavailable, or why the last write failed (None: writes work).
    unavailable_reason: str | None = "not opened yet"
    write_error: str | None = None
    #: Corrupt files renamed aside since the router started.
    quarantined: int = 0

    @property
    def ready(self) -> bool:
        return self.available and self.write_error is None

    @property
    def reason(self) -> str | None:
        if not self.available:
            return self.unavailable_reason
        return self.write_error

    def opened(self) -> StoreHealth:
        return replace(self, available=True, unavailable_reason=None)

    def failed(self, kind: str, message: str, *, write: bool) -> StoreHealth:
        """After an operation failed with an error of ``kind``."""
        if kind == CORRUPT:
            return replace(self, available=False, unavailable_reason=f"the async store is corrupt: {message}")
        if write and kind in (FULL, IO):
            return replace(self, write_error=f"the async store cannot write: {message}")
        return self  # a read that failed for another reason says nothing about writes

    def wrote(self) -> StoreHealth:
        """After a write that changed the file succeeded: writes work again."""
        return self if self.write_error is None else replace(self, write_error=None)

    def as_json(self) -> dict:
        return {
            "available": self.available,
            "writable": self.ready,
            "reason": self.reason,
            "quarantined": self.quarantined,
        }


def integrity_problems(rows: list[tuple]) -> list[str]:
    """``PRAGMA integrity_check``'s answer: ``[("ok",)]`` or one row per problem."""
    found = [str(r[0]) for r in rows]
    return [] if found == ["ok"] else found


def quarantine_names(db: Path, wall_now: float) -> list[tuple[Path, Path]]:
    """(from, to) for the database file and its ``-wal``/``-shm`` companions:
    ``<name>.corrupt-<UTC timestamp>``, next to the original (same filesystem: a rename)."""
    stamp = rfc3339(wall_now).replace("-", "").replace(":", "")
    return [
        (db.with_name(db.name + suffix), db.with_name(f"{db.name}{suffix}.corrupt-{stamp}"))
        for suffix in ("", "-wal", "-shm")
    ]


REASON_QUARANTINED = "AsyncStoreQuarantined"


def quarantine_event(*, pod_namespace: str, pod_name: str, message: str, instance: str, wall_now: float) -> dict:
    """A Warning core/v1 Event about the router's own Pod: its async store was corrupt
    and moved aside, so events stored in it are not delivered (pure)."""
    involved = {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "namespace": pod_namespace}
    return kube_api.event_body(involved, "Warning", REASON_QUARANTINED, message, instance, wall_now)
