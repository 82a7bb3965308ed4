"""Durable storage of async events and destination queues: SQLite in WAL mode.

Why SQLite: it is in the standard library, a single file in the router's ``--state-dir``,
and its transactions let "delete the event + append the destination record" happen
atomically, which is what at-least-once without silent drops needs. ``synchronous=FULL``
by default: a ``202 Accepted`` means the event is on disk.

All database work runs on one dedicated thread (the connection never crosses threads,
and an fsync never blocks the event loop). Only one router may own a state directory;
a lock file enforces it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

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
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (leased, next_attempt_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (namespace, queue, seq);
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


@dataclass(frozen=True)
class NewEvent:
    id: str
    namespace: str
    function: str
    payload: bytes
    client_context: str | None
    created_at: float


@dataclass(frozen=True)
class QueueMessage:
    namespace: str
    queue: str
    message_id: str
    body: bytes
    #: Wall-clock seconds, the dispatcher's clock (like ``NewEvent.created_at``): the
    #: store never reads a clock, so a test's fake clock decides every timestamp.
    created_at: float


class StateDirLocked(RuntimeError):
    pass


_COLUMNS = (
    "id, namespace, function, payload, client_context, created_at, next_attempt_at,"
    " function_errors, system_retries, invocations, last_status, last_function_error,"
    " last_response"
)


class AsyncStore:
    def __init__(self, state_dir: str | Path, *, synchronous: str = "FULL") -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "async.sqlite3"
        self._lock_file = open(self.dir / "router.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StateDirLocked(f"state directory {self.dir} is in use by another router") from None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asyncq-db")
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        #: events per namespace, kept in memory for the queue-depth gauge
        self.depth: collections.Counter[str] = collections.Counter()

    # -- plumbing ----------------------------------------------------------------------

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
        # We own the state dir: leases from a previous (crashed) router are void.
        db.execute("UPDATE events SET leased = 0 WHERE leased != 0")
        self.depth = collections.Counter(
            dict(db.execute("SELECT namespace, COUNT(*) FROM events GROUP BY namespace").fetchall())
        )
        self._db = db

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        def _close():
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(_close)
        self._executor.shutdown(wait=True)
        self._lock_file.close()

    # -- events ------------------------------------------------------------------------

    def _insert(self, ev: NewEvent, next_attempt_at: float) -> None:
        assert self._db is not None, "the store is not open"
        self._db.execute(
            "INSERT OR IGNORE INTO events (id, namespace, function, payload, client_context,"
            " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ev.id, ev.namespace, ev.function, ev.payload, ev.client_context, ev.created_at, next_attempt_at),
        )

    async def enqueue(self, ev: NewEvent) -> None:
        def _do():
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._insert(ev, ev.created_at)

        await self._run(_do)
        self.depth[ev.namespace] += 1

    async def lease_due(self, now: float, limit: int) -> list[StoredEvent]:
        """Due events, marked leased so they are not handed out twice."""

        def _do():
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE leased = 0 AND next_attempt_at <= ?"
                    " ORDER BY next_attempt_at LIMIT ?",
                    (now, limit),
                ).fetchall()
                self._db.executemany("UPDATE events SET leased = 1 WHERE id = ?", [(r[0],) for r in rows])
            return [StoredEvent(*r) for r in rows]

        return await self._run(_do) if limit > 0 else []

    async def next_due_at(self) -> float | None:
        def _do():
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM events WHERE leased = 0").fetchone()
            return row[0]

        return await self._run(_do)

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
        def _do():
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
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

        await self._run(_do)

    async def finish(self, ev: StoredEvent, *, messages: list[QueueMessage], events: list[NewEvent]) -> None:
        """Delete the event and write its destination records, in one transaction."""

        def _do():
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM events WHERE id = ?", (ev.id,))
                for m in messages:
                    self._db.execute(
                        "INSERT INTO messages (namespace, queue, message_id, body, created_at) VALUES (?, ?, ?, ?, ?)",
                        (m.namespace, m.queue, m.message_id, m.body, m.created_at),
                    )
                for new in events:
                    self._insert(new, new.created_at)

        await self._run(_do)
        self.depth[ev.namespace] -= 1
        for new in events:
            self.depth[new.namespace] += 1

    # -- destination queues ------------------------------------------------------------

    async def messages(self, namespace: str, queue: str, *, after: int = 0, limit: int = 100) -> list[dict]:
        def _do():
            return self._db.execute(
                "SELECT seq, message_id, body, created_at FROM messages"
                " WHERE namespace = ? AND queue = ? AND seq > ? ORDER BY seq LIMIT ?",
                (namespace, queue, after, limit),
            ).fetchall()

        rows = await self._run(_do)
        return [{"seq": r[0], "messageId": r[1], "body": bytes(r[2]), "createdAt": r[3]} for r in rows]

    async def delete_messages(self, namespace: str, queue: str, up_to: int) -> int:
        def _do():
            with self._db:
                cur = self._db.execute(
                    "DELETE FROM messages WHERE namespace = ? AND queue = ? AND seq <= ?",
                    (namespace, queue, up_to),
                )
            return cur.rowcount

        return await self._run(_do)

    async def pending(self, namespace: str | None = None) -> list[dict]:
        def _do():
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
        return [dict(zip(keys, r)) for r in await self._run(_do)]


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "lambdakube"
