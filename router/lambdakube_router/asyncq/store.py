"""Durable storage of async events and destination queues: SQLite in WAL mode.

Why SQLite: it is in the standard library, a single file in the router's ``--state-dir``,
and its transactions let "delete the event + append the destination record" happen
atomically, which is what at-least-once without silent drops needs. ``synchronous=FULL``
by default: a ``202 Accepted`` means the event is on disk.

All database work runs on one dedicated thread (the connection never crosses threads,
and an fsync never blocks the event loop). Only one router may own a state directory;
a lock file enforces it.

Why a store that cannot be used is not an exception at open: a full disk or a damaged
file must stop async invocations only (``health``). ``open`` runs ``PRAGMA
integrity_check`` first, because a damaged page is otherwise found only when a read
happens to touch it (about 10 ms for 10,000 events; it also checks that the indexes
match the table, which ``quick_check``, half the cost, does not). A corrupt file leaves
the store unavailable, or with ``quarantine_corrupt`` is renamed aside and replaced by a
fresh one. Every operation afterwards raises ``StoreUnavailable`` instead of a bare
``sqlite3`` error and updates ``health``: a failed write (``SQLITE_FULL``) makes the store
unwritable until a write succeeds again (``probe``), a corrupt read makes it unavailable.

A lease is a time (``events.leased``: the wall-clock second it ends, 0 for none): a
delivery that never writes its outcome releases the event when its lease ends, and a
later ``lease_due`` takes it again.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from lambdakube_router.asyncq import health as h

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a lease lasts for a function the caller gives no duration for.
DEFAULT_LEASE = 900.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    function TEXT NOT NULL,
    payload BLOB NOT NULL,
    client_context TEXT,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    function_errors INTEGER NOT NULL DEFAULT 0,
    system_retries INTEGER NOT NULL DEFAULT 0,
    invocations INTEGER NOT NULL DEFAULT 0,
    leased INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_function_error TEXT,
    last_response BLOB,
    last_error TEXT,
    qualifier TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (leased, next_attempt_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    visible_at REAL NOT NULL DEFAULT 0,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_at REAL,
    attributes TEXT
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (namespace, queue, seq);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
"""


@dataclass(frozen=True)
class StoredEvent:
    id: str
    namespace: str
    function: str
    payload: bytes
    client_context: str | None
    created_at: float
    next_attempt_at: float
    function_errors: int
    system_retries: int
    invocations: int
    last_status: int | None
    last_function_error: str | None
    last_response: bytes | None
    #: The version or alias the caller invoked (None: ``$LATEST``); resolved at each
    #: attempt, as a synchronous invoke of it would be.
    qualifier: str | None = None
    #: Wall-clock second this delivery's lease ends (set by ``lease_due``).
    leased_until: float = 0.0


@dataclass(frozen=True)
class NewEvent:
    id: str
    namespace: str
    function: str
    payload: bytes
    client_context: str | None
    created_at: float
    qualifier: str | None = None


@dataclass(frozen=True)
class QueueMessage:
    namespace: str
    queue: str
    message_id: str
    body: bytes
    #: Wall-clock seconds, the dispatcher's clock (like ``NewEvent.created_at``): the
    #: store never reads a clock, so a test's fake clock decides every timestamp.
    created_at: float
    #: SQS's ``MessageAttributes`` as JSON text (SendMessage's), or None.
    attributes: str | None = None
    #: When a receive may first take it (SendMessage's ``DelaySeconds``); None: at once.
    visible_at: float | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A queue message as a receive returned it (SQS's ReceiveMessage): invisible to
    other receives until ``visible_at`` or until deleted."""

    seq: int
    message_id: str
    body: bytes
    created_at: float
    #: This receive included (SQS's ApproximateReceiveCount).
    receive_count: int
    first_receive_at: float
    visible_at: float
    attributes: str | None = None

    @property
    def handle(self) -> tuple[int, int]:
        """What deletes or releases this receive: a later receive of the message (its
        timeout passed) has another count, and this one no longer acts on it."""
        return (self.seq, self.receive_count)

    @property
    def receipt_handle(self) -> str:
        return f"lk1.{self.seq}.{self.receive_count}"


@dataclass(frozen=True)
class QueueStats:
    """A queue at ``now``: messages a receive would get (``visible``) and those received
    and not yet deleted (``in_flight``); when the oldest visible one became visible (the
    batching window's start) and when the next invisible one reappears."""

    visible: int
    in_flight: int
    oldest_visible_since: float | None
    next_visible_at: float | None


class StateDirLocked(RuntimeError):
    pass


#: ``Retry-After`` of the 503 answered while the store is unavailable (async invokes,
#: the queue API): its own recovery probe runs every dispatcher pass.
RETRY_AFTER_SECONDS = 5


class StoreUnavailable(Exception):
    """The store could not do what was asked: it is unavailable (``kind`` corrupt, or
    not open), or this operation failed (``kind`` full, io, ...). ``health`` says which."""

    def __init__(self, message: str, kind: str = h.OTHER) -> None:
        super().__init__(message)
        self.kind = kind


class CorruptStore(sqlite3.DatabaseError):
    """``PRAGMA integrity_check`` found problems (classified as corrupt)."""


_COLUMNS = (
    "id, namespace, function, payload, client_context, created_at, next_attempt_at,"
    " function_errors, system_retries, invocations, last_status, last_function_error,"
    " last_response, qualifier"
)


def _migrate(db: sqlite3.Connection) -> None:
    """Columns added since a store was created (``CREATE TABLE IF NOT EXISTS`` leaves an
    existing table as it is): the events of a router before the change keep their rows,
    with the new column empty (``$LATEST``, as they were sent)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(events)").fetchall()}
    if "qualifier" not in have:
        db.execute("ALTER TABLE events ADD COLUMN qualifier TEXT")
    have = {row[1] for row in db.execute("PRAGMA table_info(messages)").fetchall()}
    for column, decl in (
        ("visible_at", "REAL NOT NULL DEFAULT 0"),
        ("receive_count", "INTEGER NOT NULL DEFAULT 0"),
        ("first_receive_at", "REAL"),
        ("attributes", "TEXT"),
    ):
        if column not in have:
            db.execute(f"ALTER TABLE messages ADD COLUMN {column} {decl}")
    db.execute("CREATE INDEX IF NOT EXISTS messages_visible ON messages (namespace, queue, visible_at, seq)")


class AsyncStore:
    def __init__(self, state_dir: str | Path, *, synchronous: str = "FULL") -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / "async.sqlite3"
        self._lock_file: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asyncq-db")
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        #: events per namespace, kept in memory for the queue-depth gauge
        self.depth: collections.Counter[str] = collections.Counter()
        self.health = h.StoreHealth()
        #: (from, to) of the files the last quarantine renamed, for the log and the Event
        self.quarantined_files: list[tuple[Path, Path]] = []
        #: Who waits for messages of a queue (``subscribe``): set when one is written.
        self._listeners: dict[tuple[str, str], set[asyncio.Event]] = {}

    # -- plumbing ----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args, write: bool, proves_write: bool = True) -> T:
        """Run ``fn`` on the database thread. A SQLite error becomes ``StoreUnavailable``
        and updates ``health`` (``write``: a failure means writes fail); a success of a
        write (``proves_write``) says writes work again."""
        if self._db is None or not self.health.available:
            raise StoreUnavailable(self.health.reason or "the async store is not open", h.OTHER)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            kind = h.classify(exc)
            before = self.health
            self.health = before.failed(kind, str(exc), write=write)
            if self.health != before:
                log.error("async store: %s", self.health.reason)
            raise StoreUnavailable(f"the async store failed: {exc}", kind) from exc
        if write and proves_write and self.health.write_error is not None:
            self.health = self.health.wrote()
            log.warning("async store: writes work again")
        return result

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One write transaction; rolled back if anything in it (the COMMIT too) fails."""
        db = self._db
        assert db is not None, "the store is not open"
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return result

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            problems = h.integrity_problems(db.execute("PRAGMA integrity_check").fetchall())
            if problems:
                raise CorruptStore("integrity_check: " + "; ".join(problems[:5]))
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(SCHEMA)
            _migrate(db)
            depth = collections.Counter(
                dict(db.execute("SELECT namespace, COUNT(*) FROM events GROUP BY namespace").fetchall())
            )
        except BaseException:
            db.close()
            raise
        self._db = db
        self.depth = depth
        self.health = self.health.opened()
        try:
            # We own the state dir: leases from a previous (crashed) router are void.
            self._tx(lambda d: d.execute("UPDATE events SET leased = 0 WHERE leased != 0"))
        except sqlite3.Error as exc:  # a full disk: those leases end by time instead
            self.health = self.health.failed(h.classify(exc), str(exc), write=True)

    def _quarantine(self, wall_now: float) -> list[tuple[Path, Path]]:
        moved = []
        for src, dst in h.quarantine_names(self.path, wall_now):
            if src.exists():
                os.rename(src, dst)
                moved.append((src, dst))
        return moved

    def _open(self, quarantine_corrupt: bool, wall_now: float) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.dir / "router.lock", "a")  # noqa: SIM115
        except OSError as exc:
            self.health = h.StoreHealth(unavailable_reason=f"the async store cannot be opened: {exc}")
            return
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise StateDirLocked(f"state directory {self.dir} is in use by another router") from None
        try:
            self._connect()
            return
        except (sqlite3.Error, OSError) as exc:
            kind, problem = h.classify(exc), str(exc)
        if kind != h.CORRUPT:
            self.health = h.StoreHealth(unavailable_reason=f"the async store cannot be opened: {problem}")
            return
        if not quarantine_corrupt:
            self.health = h.StoreHealth(
                unavailable_reason=f"the async store {self.path} is corrupt ({problem}); async invocations are"
                " refused until it is repaired or moved aside (--quarantine-corrupt-store)"
            )
            return
        try:
            self.quarantined_files = self._quarantine(wall_now)
            self.health = replace(self.health, quarantined=self.health.quarantined + 1)
            self._connect()
        except (sqlite3.Error, OSError) as exc:
            self.health = replace(
                self.health, available=False, unavailable_reason=f"the async store cannot be opened: {exc}"
            )
            return
        finally:
            if self.quarantined_files:
                log.error(
                    "async store %s was corrupt (%s): moved aside to %s and started empty; the events and"
                    " queue messages in it are not delivered",
                    self.path,
                    problem,
                    ", ".join(str(dst) for _, dst in self.quarantined_files),
                )

    async def open(self, *, quarantine_corrupt: bool = False, wall_now: float = 0.0) -> None:
        """Open (and check) the store. Raises only ``StateDirLocked``: any other trouble
        leaves ``health`` unavailable with the reason. ``wall_now`` stamps a quarantine."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open, quarantine_corrupt, wall_now)
        if not self.health.available:
            log.error("%s", self.health.reason)

    async def close(self) -> None:
        def _close():
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def probe(self, size: int) -> None:
        """Write (and then delete) a row of ``size`` bytes: succeeds once an event that
        large can be stored again, which ends the unwritable state. Two transactions, as
        SQLite skips writing pages that are freed in the transaction that used them."""

        def _do():
            self._tx(lambda d: d.execute("INSERT OR REPLACE INTO probe (id, body) VALUES (1, zeroblob(?))", (size,)))
            self._tx(lambda d: d.execute("DELETE FROM probe"))

        await self._call(_do, write=True)

    # -- events ------------------------------------------------------------------------

    @staticmethod
    def _insert(db: sqlite3.Connection, ev: NewEvent, next_attempt_at: float) -> None:
        db.execute(
            "INSERT OR IGNORE INTO events (id, namespace, function, payload, client_context,"
            " created_at, next_attempt_at, qualifier) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ev.id,
                ev.namespace,
                ev.function,
                ev.payload,
                ev.client_context,
                ev.created_at,
                next_attempt_at,
                ev.qualifier,
            ),
        )

    async def enqueue(self, ev: NewEvent) -> None:
        await self._call(self._tx, lambda d: self._insert(d, ev, ev.created_at), write=True)
        self.depth[ev.namespace] += 1

    async def lease_due(
        self,
        now: float,
        limit: int,
        *,
        leases: Mapping[tuple[str, str], float] | None = None,
        exclude: Collection[str] = (),
    ) -> list[StoredEvent]:
        """Due events (never leased, or their lease has ended), leased until ``now`` plus
        their function's lease seconds (``leases``, else ``DEFAULT_LEASE``); ``exclude``:
        ids the caller is still delivering."""
        if limit <= 0:
            return []
        durations = dict(leases or {})

        def _lease(db: sqlite3.Connection) -> list[StoredEvent]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE next_attempt_at <= ? AND leased <= ?"
                " ORDER BY next_attempt_at LIMIT ?",
                (now, now, limit + len(exclude)),
            ).fetchall()
            out = []
            for r in rows:
                if r[0] in exclude:
                    continue
                ev = StoredEvent(*r)
                out.append(replace(ev, leased_until=now + durations.get((ev.namespace, ev.function), DEFAULT_LEASE)))
                if len(out) == limit:
                    break
            db.executemany("UPDATE events SET leased = ? WHERE id = ?", [(ev.leased_until, ev.id) for ev in out])
            return out

        leased = await self._call(self._tx, _lease, write=True, proves_write=False)
        if leased and self.health.write_error is not None:
            self.health = self.health.wrote()  # it did write
        return leased

    async def next_due_at(self) -> float | None:
        """The earliest time an event is due: its next attempt, or the end of its lease."""

        def _do():
            assert self._db is not None
            return self._db.execute("SELECT MIN(MAX(next_attempt_at, leased)) FROM events").fetchone()[0]

        return await self._call(_do, write=False)

    async def reschedule(
        self,
        ev: StoredEvent,
        *,
        next_attempt_at: float,
        function_errors: int,
        system_retries: int,
        invocations: int,
        last_status: int | None,
        last_function_error: str | None,
        last_response: bytes | None,
        last_error: str | None,
    ) -> None:
        def _do(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE events SET leased = 0, next_attempt_at = ?, function_errors = ?,"
                " system_retries = ?, invocations = ?, last_status = ?,"
                " last_function_error = ?, last_response = ?, last_error = ? WHERE id = ?",
                (
                    next_attempt_at,
                    function_errors,
                    system_retries,
                    invocations,
                    last_status,
                    last_function_error,
                    last_response,
                    last_error,
                    ev.id,
                ),
            )

        await self._call(self._tx, _do, write=True)

    async def finish(self, ev: StoredEvent, *, messages: list[QueueMessage], events: list[NewEvent]) -> None:
        """Delete the event and write its destination records, in one transaction."""

        def _do(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM events WHERE id = ?", (ev.id,))
            self._insert_messages(db, messages)
            for new in events:
                self._insert(db, new, new.created_at)

        await self._call(self._tx, _do, write=True)
        self.depth[ev.namespace] -= 1
        for new in events:
            self.depth[new.namespace] += 1
        self._notify(messages)

    # -- destination queues ------------------------------------------------------------

    @staticmethod
    def _insert_messages(db: sqlite3.Connection, messages: list[QueueMessage]) -> None:
        db.executemany(
            "INSERT INTO messages (namespace, queue, message_id, body, created_at, visible_at, attributes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (m.namespace, m.queue, m.message_id, m.body, m.created_at, m.visible_at or m.created_at, m.attributes)
                for m in messages
            ],
        )

    def subscribe(self, namespace: str, queue: str) -> asyncio.Event:
        """An event set whenever a message is written to the queue (the poller clears
        it before it looks, so a write in between wakes it): no busy polling."""
        event = asyncio.Event()
        self._listeners.setdefault((namespace, queue), set()).add(event)
        return event

    def unsubscribe(self, namespace: str, queue: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get((namespace, queue))
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[(namespace, queue)]

    def _notify(self, messages: Collection[QueueMessage]) -> None:
        for key in {(m.namespace, m.queue) for m in messages}:
            for event in self._listeners.get(key, ()):
                event.set()

    async def send_messages(self, messages: list[QueueMessage]) -> None:
        """Append messages (SQS's SendMessage), in one transaction, and wake the queue's pollers."""
        await self._call(self._tx, lambda d: self._insert_messages(d, messages), write=True)
        self._notify(messages)

    async def receive(
        self, namespace: str, queue: str, *, now: float, limit: int, visibility: float
    ) -> list[ReceivedMessage]:
        """SQS's ReceiveMessage: up to ``limit`` visible messages, oldest first, each now
        invisible until ``now + visibility`` and its receive counted."""
        if limit <= 0:
            return []

        def _do(db: sqlite3.Connection) -> list[ReceivedMessage]:
            rows = db.execute(
                "SELECT seq, message_id, body, created_at, receive_count, first_receive_at, attributes FROM messages"
                " WHERE namespace = ? AND queue = ? AND visible_at <= ? ORDER BY seq LIMIT ?",
                (namespace, queue, now, limit),
            ).fetchall()
            out = [
                ReceivedMessage(
                    seq=r[0],
                    message_id=r[1],
                    body=bytes(r[2]),
                    created_at=r[3],
                    receive_count=r[4] + 1,
                    first_receive_at=r[5] if r[5] is not None else now,
                    visible_at=now + visibility,
                    attributes=r[6],
                )
                for r in rows
            ]
            db.executemany(
                "UPDATE messages SET visible_at = ?, receive_count = ?, first_receive_at = ? WHERE seq = ?",
                [(m.visible_at, m.receive_count, m.first_receive_at, m.seq) for m in out],
            )
            return out

        return await self._call(self._tx, _do, write=True)

    async def delete_received(self, handles: Collection[tuple[int, int]]) -> int:
        """SQS's DeleteMessage(Batch): the messages of these receives (``ReceivedMessage.handle``)."""
        if not handles:
            return 0

        def _do(db: sqlite3.Connection) -> int:
            cur = db.executemany("DELETE FROM messages WHERE seq = ? AND receive_count = ?", list(handles))
            return cur.rowcount

        return await self._call(self._tx, _do, write=True)

    async def release(
        self, namespace: str, queue: str, handles: Collection[tuple[int, int]], *, visible_at: float, uncount: bool
    ) -> int:
        """SQS's ChangeMessageVisibility: visible again at ``visible_at``; ``uncount``:
        the receive did not reach the function (a throttle), so it is not counted."""
        if not handles:
            return 0
        step = 1 if uncount else 0

        def _do(db: sqlite3.Connection) -> int:
            cur = db.executemany(
                "UPDATE messages SET visible_at = ?, receive_count = receive_count - ?"
                " WHERE seq = ? AND receive_count = ?",
                [(visible_at, step, seq, count) for seq, count in handles],
            )
            return cur.rowcount

        changed = await self._call(self._tx, _do, write=True)
        for event in self._listeners.get((namespace, queue), ()):
            event.set()
        return changed

    async def move_received(
        self, handle: tuple[int, int], *, messages: list[QueueMessage], events: list[NewEvent]
    ) -> bool:
        """Delete a received message and write its destination records (``onFailure``),
        in one transaction; False (nothing written) when a newer receive owns it."""

        def _do(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM messages WHERE seq = ? AND receive_count = ?", handle)
            if cur.rowcount == 0:
                return False
            self._insert_messages(db, messages)
            for new in events:
                self._insert(db, new, new.created_at)
            return True

        moved = await self._call(self._tx, _do, write=True)
        if moved:
            for new in events:
                self.depth[new.namespace] += 1
            self._notify(messages)
        return moved

    async def queue_stats(self, namespace: str, queue: str, now: float) -> QueueStats:
        def _do():
            assert self._db is not None
            return self._db.execute(
                "SELECT SUM(visible_at <= ?), SUM(visible_at > ?),"
                " MIN(CASE WHEN visible_at <= ? THEN MAX(created_at, visible_at) END),"
                " MIN(CASE WHEN visible_at > ? THEN visible_at END)"
                " FROM messages WHERE namespace = ? AND queue = ?",
                (now, now, now, now, namespace, queue),
            ).fetchone()

        visible, in_flight, since, next_at = await self._call(_do, write=False)
        return QueueStats(int(visible or 0), int(in_flight or 0), since, next_at)

    async def messages(self, namespace: str, queue: str, *, after: int = 0, limit: int = 100) -> list[dict]:
        def _do():
            assert self._db is not None
            return self._db.execute(
                "SELECT seq, message_id, body, created_at FROM messages"
                " WHERE namespace = ? AND queue = ? AND seq > ? ORDER BY seq LIMIT ?",
                (namespace, queue, after, limit),
            ).fetchall()

        rows = await self._call(_do, write=False)
        return [{"seq": r[0], "messageId": r[1], "body": bytes(r[2]), "createdAt": r[3]} for r in rows]

    async def delete_messages(self, namespace: str, queue: str, up_to: int) -> int:
        def _do(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "DELETE FROM messages WHERE namespace = ? AND queue = ? AND seq <= ?",
                (namespace, queue, up_to),
            )
            return cur.rowcount

        return await self._call(self._tx, _do, write=True)

    async def oldest(self) -> dict[str, float]:
        """Per namespace, when its oldest unfinished event was created (wall seconds): the
        queue-age gauge (``gauges.QueueAge``), one aggregate query however long the queue."""

        def _do():
            assert self._db is not None
            return self._db.execute("SELECT namespace, MIN(created_at) FROM events GROUP BY namespace").fetchall()

        return {ns: float(at) for ns, at in await self._call(_do, write=False)}

    async def pending(self, namespace: str | None = None) -> list[dict]:
        def _do():
            assert self._db is not None
            q = (
                "SELECT id, namespace, function, created_at, next_attempt_at, function_errors,"
                " system_retries, invocations, last_error FROM events"
            )
            args: tuple = ()
            if namespace is not None:
                q += " WHERE namespace = ?"
                args = (namespace,)
            return self._db.execute(q + " ORDER BY next_attempt_at", args).fetchall()

        keys = (
            "id",
            "namespace",
            "function",
            "createdAt",
            "nextAttemptAt",
            "functionErrors",
            "systemRetries",
            "invocations",
            "lastError",
        )
        return [dict(zip(keys, r)) for r in await self._call(_do, write=False)]


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "lambdakube"
