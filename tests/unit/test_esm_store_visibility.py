"""SQS's visibility rules in the durable store (``AsyncStore.receive`` and friends): a
real SQLite file, every time given by the test (the store reads no clock)."""

import sqlite3

import pytest

from lambdakube_router.asyncq.store import SCHEMA, AsyncStore, QueueMessage

T0 = 1_000.0


@pytest.fixture
async def store(tmp_path):
    s = AsyncStore(tmp_path, synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


def message(mid: str, at: float = T0, **kw) -> QueueMessage:
    return QueueMessage("ns", "q", mid, f"body-{mid}".encode(), at, **kw)


async def test_a_received_message_is_invisible_until_its_timeout(store):
    await store.send_messages([message("a"), message("b")])
    first = await store.receive("ns", "q", now=T0, limit=10, visibility=30)
    assert [(m.message_id, m.receive_count, m.first_receive_at) for m in first] == [("a", 1, T0), ("b", 1, T0)]
    assert await store.receive("ns", "q", now=T0 + 29.9, limit=10, visibility=30) == []
    stats = await store.queue_stats("ns", "q", T0 + 10)
    assert (stats.visible, stats.in_flight, stats.next_visible_at) == (0, 2, T0 + 30)
    again = await store.receive("ns", "q", now=T0 + 30, limit=10, visibility=30)
    assert [(m.message_id, m.receive_count, m.first_receive_at) for m in again] == [("a", 2, T0), ("b", 2, T0)]


async def test_delete_acts_only_on_the_current_receive(store):
    await store.send_messages([message("a")])
    (old,) = await store.receive("ns", "q", now=T0, limit=10, visibility=1)
    (new,) = await store.receive("ns", "q", now=T0 + 1, limit=10, visibility=30)  # the timeout passed
    assert await store.delete_received([old.handle]) == 0  # a late first consumer deletes nothing
    assert (await store.queue_stats("ns", "q", T0 + 2)).in_flight == 1
    assert await store.delete_received([new.handle]) == 1
    stats = await store.queue_stats("ns", "q", T0 + 100)
    assert (stats.visible, stats.in_flight) == (0, 0)


async def test_release_uncounted_makes_it_visible_with_its_count_restored(store):
    await store.send_messages([message("a")])
    (m,) = await store.receive("ns", "q", now=T0, limit=10, visibility=30)
    assert await store.release("ns", "q", [m.handle], visible_at=T0 + 0.5, uncount=True) == 1
    assert await store.receive("ns", "q", now=T0 + 0.4, limit=10, visibility=30) == []
    (again,) = await store.receive("ns", "q", now=T0 + 0.5, limit=10, visibility=30)
    assert again.receive_count == 1


async def test_batches_take_the_oldest_first_up_to_the_limit(store):
    await store.send_messages([message(str(i), T0 + i) for i in range(5)])
    batch = await store.receive("ns", "q", now=T0 + 10, limit=3, visibility=30)
    assert [m.message_id for m in batch] == ["0", "1", "2"]
    stats = await store.queue_stats("ns", "q", T0 + 10)
    assert (stats.visible, stats.in_flight, stats.oldest_visible_since) == (2, 3, T0 + 3)


async def test_delay_seconds_hide_a_new_message(store):
    await store.send_messages([message("late", visible_at=T0 + 5)])
    assert await store.receive("ns", "q", now=T0 + 4, limit=10, visibility=30) == []
    assert len(await store.receive("ns", "q", now=T0 + 5, limit=10, visibility=30)) == 1


async def test_move_received_deletes_and_writes_the_destination_at_once(store):
    await store.send_messages([message("a")])
    (m,) = await store.receive("ns", "q", now=T0, limit=10, visibility=30)
    dlq = QueueMessage("ns", "dlq", "a", b"record", T0)
    assert await store.move_received(m.handle, messages=[dlq], events=[]) is True
    assert await store.move_received(m.handle, messages=[dlq], events=[]) is False  # nothing written twice
    assert [r["body"] for r in await store.messages("ns", "dlq")] == [b"record"]
    assert (await store.queue_stats("ns", "q", T0 + 100)).visible == 0


async def test_a_write_wakes_the_queues_subscribers_only(store):
    mine, other = store.subscribe("ns", "q"), store.subscribe("ns", "other")
    await store.send_messages([message("a")])
    assert mine.is_set() and not other.is_set()
    store.unsubscribe("ns", "q", mine)
    store.unsubscribe("ns", "other", other)


async def test_messages_of_an_older_router_become_visible_messages(tmp_path):
    old = SCHEMA.replace(
        ",\n    visible_at REAL NOT NULL DEFAULT 0,\n    receive_count INTEGER NOT NULL DEFAULT 0,"
        "\n    first_receive_at REAL,\n    attributes TEXT\n",
        "\n",
    )
    assert old != SCHEMA
    db = sqlite3.connect(tmp_path / "async.sqlite3")
    db.executescript(old)
    db.execute(
        "INSERT INTO messages (namespace, queue, message_id, body, created_at) VALUES ('ns', 'q', 'old', X'78', 1.0)"
    )
    db.commit()
    db.close()
    store = AsyncStore(tmp_path)
    await store.open()
    try:
        (m,) = await store.receive("ns", "q", now=T0, limit=10, visibility=30)
        assert (m.message_id, m.receive_count, m.attributes) == ("old", 1, None)
    finally:
        await store.close()
