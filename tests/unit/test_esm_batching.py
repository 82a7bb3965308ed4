"""The batching window and partial batch responses (``pollers.batching``), as tables."""

import json

import pytest

from lambdakube_router.pollers.batching import MAX_BATCH_BYTES, ItemFailures, batch_item_failures, batch_wait

NOW = 1000.0

# (name, available, batch_size, oldest_since, window, batch_bytes, want)
WINDOW = [
    ("no-window-takes-what-is-there", 1, 10, NOW, 0, 0, None),
    ("full-batch-goes-at-once", 10, 10, NOW, 5, 0, None),
    ("partial-batch-waits-for-the-window", 3, 10, NOW - 1, 5, 0, NOW + 4),
    ("window-passed", 3, 10, NOW - 5, 5, 0, None),
    ("six-megabytes-go-at-once", 3, 10, NOW, 5, MAX_BATCH_BYTES, None),
    ("nothing-available", 0, 10, None, 5, 0, None),
]


@pytest.mark.parametrize(
    "available, batch_size, oldest_since, window, batch_bytes, want",
    [c[1:] for c in WINDOW],
    ids=[c[0] for c in WINDOW],
)
def test_batch_window(available, batch_size, oldest_since, window, batch_bytes, want):
    got = batch_wait(
        available=available,
        batch_size=batch_size,
        oldest_since=oldest_since,
        window=window,
        now=NOW,
        batch_bytes=batch_bytes,
    )
    assert got == want


IDS = ["a", "b", "c"]


def body(value) -> bytes:
    return json.dumps(value).encode()


# (name, response body, want)
RESPONSES = [
    ("empty-body-is-success", b"", ItemFailures()),
    ("null-is-success", b"null", ItemFailures()),
    ("no-key-is-success", body({"ok": True}), ItemFailures()),
    ("null-list-is-success", body({"batchItemFailures": None}), ItemFailures()),
    ("empty-list-is-success", body({"batchItemFailures": []}), ItemFailures()),
    ("a-string-response-is-success", body("done"), ItemFailures()),
    ("listed-items-failed", body({"batchItemFailures": [{"itemIdentifier": "b"}]}), ItemFailures(frozenset({"b"}))),
    ("not-json-fails-all", b"{oops", ItemFailures(all_failed=True, problem="the response is not JSON")),
    (
        "empty-identifier-fails-all",
        body({"batchItemFailures": [{"itemIdentifier": ""}]}),
        ItemFailures(all_failed=True, problem="an itemIdentifier is missing or empty"),
    ),
    (
        "null-identifier-fails-all",
        body({"batchItemFailures": [{"itemIdentifier": None}]}),
        ItemFailures(all_failed=True, problem="an itemIdentifier is missing or empty"),
    ),
    (
        "wrong-key-fails-all",
        body({"batchItemFailures": [{"id": "a"}]}),
        ItemFailures(all_failed=True, problem="an itemIdentifier is missing or empty"),
    ),
    (
        "unknown-identifier-fails-all",
        body({"batchItemFailures": [{"itemIdentifier": "z"}]}),
        ItemFailures(all_failed=True, problem="itemIdentifier 'z' is not in the batch"),
    ),
]


@pytest.mark.parametrize("response, want", [c[1:] for c in RESPONSES], ids=[c[0] for c in RESPONSES])
def test_partial_batch_response(response, want):
    assert batch_item_failures(response, IDS) == want
