"""The local backend keeps each environment's log file bounded (``local.rotate_log``):
real runtimes through a real router. Rotation is driven by the test
(``LocalBackend.rotate_logs``, the periodic check disabled) except in the last test,
which waits (bounded) for the periodic check to have rotated a file."""

from __future__ import annotations

import base64

from lambdakube_router.backends.local import LocalBackend, rotated_path
from tests.router.conftest import function

LIMIT = 4096

CHATTY = """
def handler(event, context):
    print(f"output of call {event['i']} " + "x" * 100)
    return event["i"]
"""


def only_env(backend: LocalBackend):
    (lp,) = backend._procs.values()
    return lp


async def test_log_file_stays_bounded_and_tail_log_keeps_the_latest_output(make_router, tmp_path):
    backend = LocalBackend(stop_grace=0.5, log_limit=LIMIT, log_check_interval=0, work_dir=tmp_path / "envs")
    router = await make_router(function("chatty", CHATTY), backend=backend)
    rotations = 0
    for i in range(120):
        status, h, body = await router.invoke_json("chatty", {"i": i}, headers={"X-Amz-Log-Type": "Tail"})
        assert status == 200 and body == i
        tail_log = base64.b64decode(h["X-Amz-Log-Result"]).decode()
        assert f"output of call {i} " in tail_log and "REPORT RequestId" in tail_log
        rotations += await backend.rotate_logs()
        lp = only_env(backend)
        assert lp.log_path.stat().st_size <= LIMIT
        previous = rotated_path(lp.log_path)
        if previous.exists():
            # what was cut off: at most the limit, plus what came during the copy
            assert previous.stat().st_size <= 2 * LIMIT
        # the exit diagnostics' tail still ends with the latest output, across a rotation
        assert f"output of call {i} " in lp.tail(1024)
    assert rotations >= 120 * 300 // LIMIT - 1  # it did rotate, many times

    # Right after a rotation the file is empty, and the tail comes from the .1 file.
    status, _, _ = await router.invoke_json("chatty", {"i": 1000})
    lp = only_env(backend)
    while lp.log_path.stat().st_size <= LIMIT:  # bounded: each call adds ~300 bytes
        status, _, _ = await router.invoke_json("chatty", {"i": 1000})
        assert status == 200
    assert await backend.rotate_logs() == 1
    assert lp.log_path.stat().st_size == 0
    assert "output of call 1000 " in lp.tail(1024)

    # O_APPEND: the runtime's next write lands at the start of the truncated file (no
    # hole the size of the old file).
    status, _, _ = await router.invoke_json("chatty", {"i": 1001})
    assert status == 200
    size = lp.log_path.stat().st_size
    assert 0 < size < LIMIT
    assert lp.log_path.read_bytes().count(b"\0") == 0
    assert "output of call 1001 " in lp.tail(1024)

    # A stopped environment leaves neither file behind.
    log_path = lp.log_path
    await backend.stop(router.pool("chatty").envs[lp.env_id].handle)
    assert not log_path.exists() and not rotated_path(log_path).exists()


async def test_periodic_check_rotates(make_router, tmp_path):
    backend = LocalBackend(stop_grace=0.5, log_limit=1024, log_check_interval=0.02, work_dir=tmp_path / "envs")
    router = await make_router(function("chatty", CHATTY), backend=backend)
    for i in range(6):  # > 1 KiB of output
        status, _, _ = await router.invoke_json("chatty", {"i": i})
        assert status == 200
    lp = only_env(backend)
    await router.eventually(lambda: rotated_path(lp.log_path).exists())
    assert lp.log_path.stat().st_size <= 1024
