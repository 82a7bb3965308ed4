"""The last tick each scheduled function fired, on disk: at most once per tick across
router restarts.

A table ``schedule_ticks`` in its own SQLite file under the router's state directory
(``schedules.sqlite3``, next to the async store, whose lock file already makes one
router the owner of the directory). The scheduler writes a tick *before* it enqueues
the tick's event: a router killed between the two loses that tick's invocation rather
than sending it twice (at most once, as the schedule promises; the async queue behind
it is at least once per event). Writes are ``synchronous=FULL`` by default, on one
dedicated thread, so an fsync never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from pathlib import Path
from typing import Any

from lambdakube_router.schedules.plan import Key, Last

FILENAME = "schedules.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule_ticks (
    namespace TEXT NOT NULL,
    function TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    tick REAL NOT NULL,
    PRIMARY KEY (namespace, function)
);
"""


class TickStore:
    def __init__(self, state_dir: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(state_dir) / FILENAME
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="schedule-ticks")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    async def open(self) -> None:
        await self._run(self._open)

    def _load(self) -> dict[Key, Last]:
        assert self._db is not None
        rows = self._db.execute("SELECT namespace, function, fingerprint, tick FROM schedule_ticks")
        return {(ns, fn): Last(fp, tick) for ns, fn, fp, tick in rows}

    async def load(self) -> dict[Key, Last]:
        return await self._run(self._load)

    def _record(self, key: Key, last: Last) -> None:
        assert self._db is not None
        self._db.execute(
            "INSERT INTO schedule_ticks (namespace, function, fingerprint, tick) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (namespace, function) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " tick = excluded.tick",
            (key[0], key[1], last.fingerprint, last.tick),
        )

    async def record(self, key: Key, last: Last) -> None:
        await self._run(self._record, key, last)

    def _forget(self, key: Key) -> None:
        assert self._db is not None
        self._db.execute("DELETE FROM schedule_ticks WHERE namespace = ? AND function = ?", key)

    async def forget(self, key: Key) -> None:
        await self._run(self._forget, key)

    async def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(_close)
        self._executor.shutdown(wait=True)
