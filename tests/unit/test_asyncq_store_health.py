"""The async store's health rules, leases that end in time and outcome-write retries
(pure, fake clock); the store's leases on a real SQLite file with the caller's clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lambdakube.backoff import Backoff
from lambdakube_router.asyncq import health as h
from lambdakube_router.asyncq import policy
from lambdakube_router.asyncq.store import AsyncStore, NewEvent, StoreUnavailable


def sqlite_error(cls, name: str | None):
    exc = cls("boom")
    if name is not None:
        exc.sqlite_errorname = name
    return exc


CLASSIFY = {
    "a full disk": (sqlite_error(sqlite3.OperationalError, "SQLITE_FULL"), h.FULL),
    "a write I/O error": (sqlite_error(sqlite3.OperationalError, "SQLITE_IOERR_WRITE"), h.IO),
    "a read-only volume": (sqlite_error(sqlite3.OperationalError, "SQLITE_READONLY"), h.IO),
    "a malformed page": (sqlite_error(sqlite3.DatabaseError, "SQLITE_CORRUPT"), h.CORRUPT),
    "a corrupt index": (sqlite_error(sqlite3.DatabaseError, "SQLITE_CORRUPT_INDEX"), h.CORRUPT),
    "not a database": (sqlite_error(sqlite3.DatabaseError, "SQLITE_NOTADB"), h.CORRUPT),
    "integrity_check found problems": (sqlite_error(sqlite3.DatabaseError, None), h.CORRUPT),
    "a busy database": (sqlite_error(sqlite3.OperationalError, "SQLITE_BUSY"), h.OTHER),
    "an OS error": (OSError(28, "No space left on device"), h.IO),
}


@pytest.mark.parametrize("case", CLASSIFY.values(), ids=CLASSIFY.keys())
def test_classify(case):
    exc, kind = case
    assert h.classify(exc) == kind


def test_classify_a_real_not_a_database_file(tmp_path):
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlite3.connect(path).execute("PRAGMA integrity_check").fetchall()
    assert h.classify(info.value) == h.CORRUPT


OPENED = h.StoreHealth().opened()

#: name: (start, step, ready after, reason contains)
HEALTH = {
    "not opened yet is not ready": (h.StoreHealth(), lambda s: s, False, "not opened"),
    "opened is ready": (h.StoreHealth(), lambda s: s.opened(), True, None),
    "a failed write makes it unwritable": (OPENED, lambda s: s.failed(h.FULL, "disk full", write=True), False, "full"),
    "a failed read of a full disk changes nothing": (OPENED, lambda s: s.failed(h.FULL, "x", write=False), True, None),
    "a busy database changes nothing": (OPENED, lambda s: s.failed(h.OTHER, "busy", write=True), True, None),
    "a write after a failed one heals it": (
        OPENED.failed(h.FULL, "disk full", write=True),
        lambda s: s.wrote(),
        True,
        None,
    ),
    "a corrupt read makes it unavailable": (
        OPENED,
        lambda s: s.failed(h.CORRUPT, "malformed", write=False),
        False,
        "corrupt",
    ),
    "a write does not heal corruption": (
        OPENED.failed(h.CORRUPT, "malformed", write=False),
        lambda s: s.wrote(),
        False,
        "corrupt",
    ),
}


@pytest.mark.parametrize("case", HEALTH.values(), ids=HEALTH.keys())
def test_store_health(case):
    start, step, ready, reason = case
    after = step(start)
    assert after.ready is ready
    assert (after.reason is None) if reason is None else (reason in after.reason)
    assert after.as_json()["writable"] is ready


B = Backoff(initial=1.0, maximum=4.0)

#: name: (now, lease_until, previous delay, expected next delay or None: give up)
WRITE_RETRY = {
    "the first retry waits the initial delay": (100.0, 200.0, 0.0, 1.0),
    "then doubles": (101.0, 200.0, 1.0, 2.0),
    "up to the cap": (110.0, 200.0, 4.0, 4.0),
    "gives up when the next try would pass the lease end": (197.0, 200.0, 4.0, None),
    "gives up at the lease end": (200.0, 200.0, 0.0, None),
}


@pytest.mark.parametrize("case", WRITE_RETRY.values(), ids=WRITE_RETRY.keys())
def test_write_retry_delay(case):
    now, until, previous, expected = case
    assert policy.write_retry_delay(now, until, previous, B) == expected


def test_lease_covers_the_slowest_attempt_plus_the_write_grace():
    # waiting for an environment (init 30 + timeout 3 + grace 2), running (3 + 2), writing (60)
    assert policy.lease_seconds(3, init_timeout=30, invoke_grace=2, lease_grace=60) == 30 + 5 + 5 + 60


def test_quarantine_names_keep_each_file_next_to_itself():
    db = Path("/state/async.sqlite3")
    names = h.quarantine_names(db, 1_800_000_000.0)  # 2027-01-15T08:00:00Z
    assert [(a.name, b.name) for a, b in names] == [
        ("async.sqlite3", "async.sqlite3.corrupt-20270115T080000Z"),
        ("async.sqlite3-wal", "async.sqlite3-wal.corrupt-20270115T080000Z"),
        ("async.sqlite3-shm", "async.sqlite3-shm.corrupt-20270115T080000Z"),
    ]
    assert all(b.parent == db.parent for _, b in names)


def test_quarantine_event_is_a_warning_on_the_router_pod():
    ev = h.quarantine_event(
        pod_namespace="lk", pod_name="router-abc", message="m" * 2000, instance="router-abc", wall_now=0.0
    )
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "router-abc", "namespace": "lk"}
    assert (ev["type"], ev["reason"]) == ("Warning", "AsyncStoreQuarantined")
    assert ev["metadata"] == {"generateName": "router-abc.", "namespace": "lk"}
    assert len(ev["message"]) == 1024 and ev["firstTimestamp"] == "1970-01-01T00:00:00Z"


# -- leases end in time (a real store, the caller's clock) -------------------------------------


@pytest.fixture
async def store(tmp_path):
    s = AsyncStore(tmp_path / "q")
    await s.open()
    yield s
    await s.close()


async def test_a_lease_ends_in_time_and_the_event_is_leased_again(store):
    await store.enqueue(NewEvent("e1", "ns", "fn", b"{}", None, created_at=1000.0))
    leases = {("ns", "fn"): 10.0}
    (ev,) = await store.lease_due(1000.0, 5, leases=leases)
    assert ev.leased_until == 1010.0
    assert await store.lease_due(1009.0, 5, leases=leases) == []  # still held
    assert await store.next_due_at() == 1010.0  # the loop wakes when the lease ends
    (again,) = await store.lease_due(1010.5, 5, leases=leases)  # ended: a later pass takes it
    assert (again.id, again.leased_until) == ("e1", 1020.5)
    assert await store.lease_due(1030.0, 5, leases=leases, exclude={"e1"}) == []  # still being delivered here


async def test_a_function_without_a_lease_duration_gets_the_default(store):
    await store.enqueue(NewEvent("e1", "ns", "gone", b"{}", None, created_at=0.0))
    (ev,) = await store.lease_due(0.0, 1)
    assert ev.leased_until == 900.0


async def test_an_unavailable_store_refuses_with_store_unavailable(tmp_path):
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "async.sqlite3").write_bytes(b"not a database " * 500)
    s = AsyncStore(tmp_path / "q")
    await s.open()  # does not raise: the router starts without async invocations
    try:
        assert not s.health.available and "corrupt" in s.health.reason
        with pytest.raises(StoreUnavailable):
            await s.enqueue(NewEvent("e1", "ns", "fn", b"{}", None, created_at=0.0))
    finally:
        await s.close()
