"""The incremental manifest loader (``snapshot.ManifestDirectory``) and the directory
source's polls (``sources.DirectorySource.check``): table cases of edits to a directory,
each checked by what was re-parsed (an injected counting parser), never by timing."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lambdakube_router.snapshot import FileKey, ManifestDirectory, ManifestError, ParsedFile, parse_file
from lambdakube_router.sources import DirectorySource


def manifest(name: str, timeout: int = 3) -> str:
    return f"""apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  handler: index.handler
  timeoutSeconds: {timeout}
  code: {{inline: {{source: "def handler(e, c):\\n    return 1\\n"}}}}
"""


QUOTA = "apiVersion: lambdakube.dev/v1alpha1\nkind: ConcurrencyQuota\nmetadata: {name: default}\nspec: {}\n"


class CountingParser:
    def __init__(self) -> None:
        self.parsed: list[str] = []

    def __call__(self, path: str, key: FileKey, namespace: str) -> ParsedFile:
        self.parsed.append(os.path.basename(path))
        return parse_file(path, key, namespace)


def write(root: Path, name: str, text: str) -> None:
    """Write through a new file and a rename (a new inode: same-size same-tick edits
    are still seen)."""
    tmp = root / f".{name}.tmp"
    tmp.write_text(text)
    tmp.rename(root / name)


@dataclass
class Case:
    name: str
    before: dict[str, str]
    #: What happens to the directory: write these files (None: remove it), in order.
    edit: dict[str, str | None]
    #: Files re-parsed by the refresh after the edit.
    reparsed: list[str]
    #: Functions (name: timeout) in the Snapshot after the edit; None: no new Snapshot.
    functions: dict[str, int] | None
    #: A ManifestError mentioning this after the edit.
    error: str | None = None
    #: A second edit and its outcome (the fix of an invalid change).
    then: dict[str, str | None] = field(default_factory=dict)
    then_reparsed: list[str] = field(default_factory=list)
    then_functions: dict[str, int] | None = None


CASES = [
    Case("nothing changed", {"a.yaml": manifest("a")}, {}, [], None),
    Case("file added", {"a.yaml": manifest("a")}, {"b.yaml": manifest("b")}, ["b.yaml"], {"a": 3, "b": 3}),
    Case(
        "file changed",
        {"a.yaml": manifest("a"), "b.yaml": manifest("b")},
        {"a.yaml": manifest("a", 9)},
        ["a.yaml"],
        {"a": 9, "b": 3},
    ),
    Case("file removed", {"a.yaml": manifest("a"), "b.yaml": manifest("b")}, {"b.yaml": None}, [], {"a": 3}),
    Case(
        "file renamed",
        {"a.yaml": manifest("a"), "b.yaml": manifest("b")},
        {"b.yaml": None, "c.yml": manifest("b")},
        ["c.yml"],
        {"a": 3, "b": 3},
    ),
    Case("not a manifest file ignored", {"a.yaml": manifest("a")}, {"notes.txt": "hello"}, [], None),
    Case(
        "file in a subdirectory added",
        {"a.yaml": manifest("a")},
        {"sub/b.yaml": manifest("b")},
        ["b.yaml"],
        {"a": 3, "b": 3},
    ),
    Case(
        "made invalid then fixed",
        {"a.yaml": manifest("a"), "b.yaml": manifest("b")},
        {"b.yaml": manifest("b").replace("timeoutSeconds: 3", "timeoutSeconds: 0")},
        ["b.yaml"],
        None,
        error="b.yaml: Function 'b': spec.timeoutSeconds",
        then={"b.yaml": manifest("b", 5)},
        then_reparsed=["b.yaml"],
        then_functions={"a": 3, "b": 5},
    ),
    Case(
        "invalid YAML then fixed",
        {"a.yaml": manifest("a")},
        {"b.yaml": "key: [unclosed"},
        ["b.yaml"],
        None,
        error="b.yaml: invalid YAML",
        then={"b.yaml": manifest("b")},
        then_reparsed=["b.yaml"],
        then_functions={"a": 3, "b": 3},
    ),
    Case(
        "duplicate across files then removed",
        {"a.yaml": manifest("a"), "q.yaml": QUOTA},
        {"b.yaml": manifest("a")},
        ["b.yaml"],
        None,
        error="duplicate Function default/a",
        then={"b.yaml": None},
        then_reparsed=[],
        then_functions={"a": 3},
    ),
    Case(
        "duplicate quota across files",
        {"a.yaml": manifest("a"), "q.yaml": QUOTA},
        {"r.yaml": QUOTA},
        ["r.yaml"],
        None,
        error="duplicate ConcurrencyQuota for namespace default",
    ),
]


def apply_edit(root: Path, edit: dict[str, str | None]) -> None:
    for name, text in edit.items():
        path = root / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path.parent, path.name, text)


def functions_of(snap) -> dict[str, int]:
    return {name: entry.spec.timeout_seconds for (_, name), entry in snap.functions.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_refresh_reparses_only_what_changed(tmp_path, case):
    parser = CountingParser()
    manifests = ManifestDirectory(tmp_path, "default", parser)
    apply_edit(tmp_path, case.before)
    first = manifests.refresh()
    assert first is not None and sorted(parser.parsed) == sorted(case.before)

    steps = [(case.edit, case.reparsed, case.functions, case.error)]
    if case.then:
        steps.append((case.then, case.then_reparsed, case.then_functions, None))
    for edit, reparsed, functions, error in steps:
        parser.parsed.clear()
        apply_edit(tmp_path, edit)
        if error is not None:
            with pytest.raises(ManifestError, match=error):
                manifests.refresh()
            assert parser.parsed == reparsed
            assert manifests.refresh() is None  # unchanged since: not reported again
            continue
        snap = manifests.refresh()
        assert parser.parsed == reparsed
        if functions is None:
            assert snap is None
        else:
            assert snap is not None and functions_of(snap) == functions
            # a function's source names the file it now comes from
            assert all(Path(e.source).is_file() for e in snap.functions.values())


def test_forced_refresh_builds_without_reparsing(tmp_path):
    parser = CountingParser()
    write(tmp_path, "a.yaml", manifest("a"))
    manifests = ManifestDirectory(tmp_path, "default", parser)
    assert manifests.refresh() is not None
    assert manifests.refresh() is None
    snap = manifests.refresh(force=True)
    assert snap is not None and functions_of(snap) == {"a": 3}
    assert parser.parsed == ["a.yaml"]


def test_not_a_directory(tmp_path):
    with pytest.raises(ManifestError, match="not a directory"):
        ManifestDirectory(tmp_path / "missing").refresh()


async def test_source_refuses_an_invalid_directory_at_startup(tmp_path):
    write(tmp_path, "a.yaml", "key: [unclosed")
    with pytest.raises(ManifestError, match="invalid YAML"):
        await DirectorySource(tmp_path, "default", interval=None).initial()


async def test_source_keeps_the_previous_snapshot_on_an_invalid_change(tmp_path, caplog):
    parser = CountingParser()
    write(tmp_path, "a.yaml", manifest("a"))
    source = DirectorySource(tmp_path, "default", manifests=ManifestDirectory(tmp_path, "default", parser))
    assert functions_of(await source.initial()) == {"a": 3}
    assert await source.check() is None
    write(tmp_path, "a.yaml", manifest("a").replace("handler: index.handler", "handler: nope"))
    with caplog.at_level(logging.ERROR, logger="lambdakube_router.sources"):
        assert await source.check() is None
    assert "keeping the previous ones" in caplog.text
    write(tmp_path, "a.yaml", manifest("a", 7))
    snap = await source.check()
    assert snap is not None and functions_of(snap) == {"a": 7}
    assert parser.parsed == ["a.yaml"] * 3


async def test_source_run_applies_each_change_once(tmp_path):
    write(tmp_path, "a.yaml", manifest("a"))
    source = DirectorySource(tmp_path, "default", interval=0.01)
    await source.initial()
    applied: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(source.run(applied.put_nowait))
    try:
        write(tmp_path, "b.yaml", manifest("b"))
        snap = await asyncio.wait_for(applied.get(), 10)
        assert functions_of(snap) == {"a": 3, "b": 3}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
