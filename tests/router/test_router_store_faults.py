"""The async store's real faults under a running router: a full disk (a small tmpfs this
test mounts, filled with a file) and a corrupt SQLite file (a real store, its middle pages
overwritten or the file cut short). Nothing is mocked: SQLite itself answers
``SQLITE_FULL`` and ``SQLITE_CORRUPT``.

What must hold through both: sync invokes keep working, async invokes answer Lambda's
``503 ServiceException`` (with ``Retry-After``), ``/readyz`` fails while ``/healthz``
(liveness) stays 200, and a full disk heals by itself once space returns.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from lambdakube_router.asyncq.store import AsyncStore, NewEvent
from lambdakube_router.schedules.ticks import FILENAME as TICKS_FILE
from tests.router.conftest import Router, function

EVENT = {"X-Amz-Invocation-Type": "Event"}

HELLO = """
def handler(event, context):
    return {"hello": event.get("name", "world")}
"""

#: Counts its runs in a file and waits (bounded) for a barrier file when asked.
COUNTED = """
import os, time

def handler(event, context):
    with open(os.environ["RUNS"], "a") as f:
        f.write(context.aws_request_id + "\\n")
    if event.get("hold"):
        deadline = time.monotonic() + 10
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"ran": True}
"""

#: Larger than any free space left in the WAL file: the enqueue must grow a file.
BIG_EVENT = {"pad": "x" * 200_000}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs of the test's own; unmounted whatever happens. Ask for it before
    ``make_router``: fixtures end in reverse order, so the router (and its open store)
    is gone before the unmount."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mnt)], check=True)  # still busy: detach it anyway
            pytest.fail(f"{mnt} was still in use at teardown (detached lazily)")


def fill(disk: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; delete it to recover."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    assert os.statvfs(disk).f_bavail == 0
    return filler


async def status_of(router: Router, path: str) -> tuple[int, dict]:
    async with router.client.session.get(router.url(path)) as resp:
        return resp.status, await resp.json()


async def metric(router: Router, name: str) -> float | None:
    async with router.client.session.get(router.url("/metrics")) as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


async def queue(router: Router, name: str) -> list[dict]:
    data = await router.get_json(f"/lambdakube/v1/namespaces/default/queues/{name}/messages")
    return data["messages"]


def assert_service_exception(status: int, headers, body: bytes) -> None:
    assert status == 503, (status, body)
    assert headers["x-amzn-ErrorType"] == "ServiceException"
    assert int(headers["Retry-After"]) > 0
    err = json.loads(body)
    assert err["errorType"] == "ServiceException"
    assert err["errorMessage"] == err["message"] and err["message"]


# -- a full disk -----------------------------------------------------------------------------


@needs_root
async def test_full_disk_refuses_async_with_503_fails_readiness_and_recovers_by_itself(
    small_disk, make_router, tmp_path
):
    runs = tmp_path / "runs"
    router = await make_router(
        function("hello", HELLO),
        function("counted", COUNTED, env={"RUNS": str(runs)}, **{"async": {"onSuccess": {"queue": "ok"}}}),
        state_dir=small_disk / "state",
    )
    assert (await router.invoke("counted", BIG_EVENT, headers=EVENT))[0] == 202  # the store works
    await router.eventually(lambda: _queue_with(router, "ok", 1), timeout=15)
    filler = fill(small_disk)

    status, headers, body = await router.invoke("counted", BIG_EVENT, headers=EVENT)
    assert_service_exception(status, headers, body)  # was: 500 "Server got itself in trouble"
    assert "full" in json.loads(body)["message"]
    code, ready = await status_of(router, "/readyz")
    assert code == 503 and ready["asyncStore"]["writable"] is False, ready
    code, live = await status_of(router, "/healthz")
    assert code == 200 and live["status"] == "ok"  # liveness must not restart the pod for it
    assert await metric(router, "lambdakube_async_store_available") == 0
    status, _, answer = await router.invoke_json("hello", {"name": "full disk"})
    assert (status, answer) == (200, {"hello": "full disk"})  # sync invokes don't need the store

    filler.unlink()
    t0 = time.monotonic()
    await router.eventually(lambda: _ready(router), timeout=10)
    recovery = time.monotonic() - t0
    print(f"readiness green {recovery * 1000:.0f} ms after space returned")
    assert await metric(router, "lambdakube_async_store_available") == 1
    status, headers, _ = await router.invoke("counted", BIG_EVENT, headers=EVENT)
    assert status == 202
    [_, msg] = await router.eventually(lambda: _queue_with(router, "ok", 2), timeout=15)
    assert msg["body"]["requestContext"]["requestId"] == headers["X-Amz-Request-Id"]


async def _ready(router: Router) -> bool:
    return (await status_of(router, "/readyz"))[0] == 200


async def _queue_with(router: Router, name: str, n: int):
    msgs = await queue(router, name)
    return msgs if len(msgs) >= n else None


@needs_root
async def test_an_outcome_that_cannot_be_written_is_retried_until_space_returns(
    small_disk, make_router, tmp_path, caplog
):
    """The disk fills while the event runs: its finish (delete + destination record) fails
    with SQLITE_FULL and is retried with backoff; once space returns it is written. The
    function ran once, the event is not left leased."""
    runs, barrier = tmp_path / "runs", tmp_path / "go"
    router = await make_router(
        function("counted", COUNTED, env={"RUNS": str(runs)}, **{"async": {"onSuccess": {"queue": "ok"}}}),
        state_dir=small_disk / "state",
    )
    status, headers, _ = await router.invoke("counted", {"hold": str(barrier)}, headers=EVENT)
    assert status == 202
    await router.eventually(lambda: runs.exists())  # running, its lease written
    filler = fill(small_disk)
    request_id = headers["X-Amz-Request-Id"]
    with caplog.at_level(logging.WARNING, logger="lambdakube_router.asyncq.dispatcher"):
        barrier.touch()
        # the finish failed (SQLITE_FULL): the dispatcher says so, the event is still stored
        await router.eventually(lambda: any(request_id in r.getMessage() for r in caplog.records), timeout=10)
    pending = (await router.get_json("/lambdakube/v1/namespaces/default/async-events"))["events"]
    assert [e["id"] for e in pending] == [request_id]
    assert await queue(router, "ok") == []
    assert (await status_of(router, "/readyz"))[0] == 503

    filler.unlink()
    [msg] = await router.eventually(lambda: _queue_with(router, "ok", 1), timeout=15)  # was: leased until a restart
    assert msg["body"]["requestContext"]["condition"] == "Success"
    assert (await router.get_json("/lambdakube/v1/namespaces/default/async-events"))["events"] == []
    assert runs.read_text().split() == [request_id]  # ran once
    await router.eventually(lambda: _ready(router), timeout=10)


# -- a corrupt file --------------------------------------------------------------------------


async def write_store(state_dir: Path, n: int = 300) -> Path:
    """A real store with ``n`` events of 1 KiB, closed (its WAL checkpointed into the file)."""
    store = AsyncStore(state_dir, synchronous="NORMAL")
    await store.open()
    try:
        for i in range(n):
            await store.enqueue(NewEvent(f"e{i}", "default", "hello", b'"' + b"p" * 1022 + b'"', None, 1000.0 + i))
    finally:
        await store.close()
    assert not (state_dir / "async.sqlite3-wal").exists()
    return state_dir / "async.sqlite3"


def overwrite_middle_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    pages = len(data) // page
    rng = random.Random(13)
    for p in range(pages // 3, 2 * pages // 3):
        data[p * page : (p + 1) * page] = rng.randbytes(page)
    db.write_bytes(bytes(data))


def truncate_to_half(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)


DAMAGE = {"middle pages overwritten": overwrite_middle_pages, "cut to half its size": truncate_to_half}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
async def test_a_corrupt_store_leaves_sync_serving_and_async_refused(make_router, tmp_path, damage):
    state = tmp_path / "state"
    db = await write_store(state)
    damage(db)
    damaged = hashlib.sha256(db.read_bytes()).hexdigest()

    router = await make_router(function("hello", HELLO), state_dir=state)
    status, _, answer = await router.invoke_json("hello", {"name": "corrupt"})
    assert (status, answer) == (200, {"hello": "corrupt"})
    status, headers, body = await router.invoke("hello", {}, headers=EVENT)
    assert_service_exception(status, headers, body)
    assert "corrupt" in json.loads(body)["message"]
    code, ready = await status_of(router, "/readyz")
    assert code == 503 and ready["asyncStore"]["available"] is False and "corrupt" in ready["asyncStore"]["reason"]
    for path in (
        "/lambdakube/v1/namespaces/default/queues/done/messages",
        "/lambdakube/v1/namespaces/default/async-events",
    ):
        code, answer = await status_of(router, path)
        assert code == 503 and answer["errorType"] == "ServiceException", (path, answer)
    assert (await status_of(router, "/healthz"))[0] == 200
    assert await metric(router, "lambdakube_async_store_available") == 0
    assert await metric(router, "lambdakube_async_store_quarantined_total") == 0
    # without the flag nothing is moved or changed
    # the corrupt file is left as it is (its WAL and the environments' files aside)
    # (and the schedules' ticks, a file of their own: schedules.sqlite3)
    kept = [p.name for p in state.iterdir() if p.name != "environments" and not p.name.startswith(TICKS_FILE)]
    assert sorted(kept) == ["async.sqlite3", "router.lock"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == damaged


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
async def test_quarantine_moves_a_corrupt_store_aside_and_starts_fresh(make_router, tmp_path, damage, caplog):
    state = tmp_path / "state"
    db = await write_store(state)
    damage(db)
    damaged = hashlib.sha256(db.read_bytes()).hexdigest()

    with caplog.at_level(logging.WARNING, logger="lambdakube_router.asyncq.store"):
        router = await make_router(
            function("hello", HELLO, **{"async": {"onSuccess": {"queue": "ok"}}}),
            state_dir=state,
            quarantine_corrupt_store=True,
        )
    [moved] = [p for p in state.iterdir() if ".corrupt-" in p.name]
    assert moved.name.startswith("async.sqlite3.corrupt-")
    assert hashlib.sha256(moved.read_bytes()).hexdigest() == damaged  # kept for forensics
    assert any(r.levelno >= logging.WARNING and moved.name in r.getMessage() for r in caplog.records)
    assert await metric(router, "lambdakube_async_store_quarantined_total") == 1
    assert await metric(router, "lambdakube_async_store_available") == 1
    assert (await status_of(router, "/readyz"))[0] == 200

    status, headers, _ = await router.invoke("hello", {"name": "fresh"}, headers=EVENT)
    assert status == 202
    [msg] = await router.eventually(lambda: _queue_with(router, "ok", 1), timeout=15)
    assert msg["body"]["requestContext"]["requestId"] == headers["X-Amz-Request-Id"]
