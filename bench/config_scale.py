"""Scale of configuration: a manifest directory of many functions (default 1,000).

    python bench/config_scale.py [--functions 1000] [--polls 5]

What it does, in one run, in this process, with bounded loops (no network, no runtimes):

(a) **baseline**: the old full load (read, YAML with the pure-Python loader, pydantic for
    every file, on the event loop, as ``DirectorySource`` did on startup and on every
    change) and the old fingerprint (``rglob`` and two ``stat`` per file, on the loop,
    every poll); and the old limits part of the engine's first apply (a reservation
    replan per function added, quadratic in the namespace's functions);
(b) **startup**: ``DirectorySource.initial()`` (the directory parsed on a worker thread)
    plus the engine's first ``apply`` of that Snapshot (on the loop: pools for every
    function, no environment started);
(c) **polls**: ``--polls`` unchanged checks, then one with one file edited, then one with
    one file added, while a probe on the same loop measures how late its 1 ms ticks come
    (the loop's worst stall during the checks); an idle probe first is the floor.

Printed: seconds per phase, files re-parsed per check, the worst loop lag, and ratios
against the baseline measured here. Nothing is asserted: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lambdakube_router import snapshot as snapshot_mod
from lambdakube_router.snapshot import ManifestDirectory, ParsedFile, Snapshot, parse_documents
from lambdakube_router.loop_lag import LoopLag
from lambdakube_router.sources import DirectorySource

#: The loop-lag probe's tick: how late a 1 ms timer comes is how long the loop was blocked.
PROBE_INTERVAL = 0.001

MANIFEST = """apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata:
  name: fn-{i}
spec:
  handler: index.handler
  timeoutSeconds: 30
  idleTimeoutSeconds: 60
  maxConcurrency: 10
  env: {{GREETING: "hello {i}"}}
  code:
    inline:
      source: |
        import json

        def handler(event, context):
            return {{"fn": {i}, "event": event}}
"""


def write_manifests(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"fn-{i:05d}.yaml").write_text(MANIFEST.format(i=i))


def old_load(root: Path, namespace: str) -> Snapshot:
    """What ``load_directory`` did before: ``rglob``, pure-Python YAML, every file."""
    merged = Snapshot()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        snap, errors = parse_documents(list(yaml.safe_load_all(path.read_text())), str(path), namespace)
        assert not errors, errors
        merged.functions.update(snap.functions)
    return merged


def old_fingerprint(root: Path) -> tuple:
    return tuple(
        sorted(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*")
            if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    )


def old_replans(snap: Snapshot) -> None:
    """The engine's old first apply, its limits part: one replan per function added."""
    from lambdakube_router.limits import NamespaceLimits

    limits = NamespaceLimits("default")
    for (_, name), entry in snap.functions.items():
        limits.set_function(name, entry.spec, 0.0)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"libyaml: {yaml.__with_libyaml__}")

    with tempfile.TemporaryDirectory(prefix="lk-config-scale-") as tmp:
        root = Path(tmp)
        write_manifests(root, args.functions)
        print(f"{args.functions} manifests in {root}")

        # (a) baseline: the old way, on this thread (it ran on the loop)
        old_load_s, old_snap = timed(old_load, root, "default")
        old_fp_s, _ = timed(old_fingerprint, root)
        assert len(old_snap.functions) == args.functions
        old_replan_s, _ = timed(old_replans, old_snap)

        # (b) startup: the source's initial load, then the engine's first apply
        parses = 0

        def counting_parse(path: str, key, namespace: str) -> ParsedFile:
            nonlocal parses
            parses += 1
            return snapshot_mod.parse_file(path, key, namespace)

        source = DirectorySource(
            root, "default", interval=None, manifests=ManifestDirectory(root, "default", counting_parse)
        )
        from lambdakube_router.backends.base import Backend
        from lambdakube_router.invocations import Engine, EngineSettings
        from lambdakube_router.metrics import Metrics

        start = time.perf_counter()
        with LoopLag(interval=PROBE_INTERVAL) as startup_probe:
            snap = await source.initial()
        load_s = time.perf_counter() - start
        engine = Engine(Backend(), Metrics(), EngineSettings())
        apply_s, _ = timed(engine.apply, snap)
        assert len(snap.functions) == args.functions

        # (c) polls
        with LoopLag(interval=PROBE_INTERVAL) as idle:
            await asyncio.sleep(0.3)
        lags = []
        for _ in range(args.polls):
            before = parses
            with LoopLag(interval=PROBE_INTERVAL) as probe:
                t, changed = await _timed_check(source)
            lags.append(probe.max_seconds)
            assert changed is None and parses == before
        unchanged_s = t
        edited = root / "fn-00007.yaml"
        edited.write_text(MANIFEST.format(i=7).replace("timeoutSeconds: 30", "timeoutSeconds: 31"))
        before = parses
        with LoopLag(interval=PROBE_INTERVAL) as probe_edit:
            edit_s, changed = await _timed_check(source)
        assert changed is not None and parses == before + 1
        reapply_s, _ = timed(engine.apply, changed)
        (root / "new.yaml").write_text(MANIFEST.format(i=args.functions))
        before = parses
        with LoopLag(interval=PROBE_INTERVAL) as probe_add:
            add_s, changed = await _timed_check(source)
        assert changed is not None and parses == before + 1 and len(changed.functions) == args.functions + 1
        await engine.close()

    ms = 1000
    print()
    print(f"baseline: full load on the loop              {old_load_s * ms:8.1f} ms")
    print(f"baseline: fingerprint on the loop, per poll  {old_fp_s * ms:8.1f} ms")
    print(f"baseline: one replan per function added      {old_replan_s * ms:8.1f} ms (of the old first apply)")
    print(f"startup: initial load (worker thread)        {load_s * ms:8.1f} ms  ({old_load_s / load_s:.1f}x faster)")
    print(f"startup: worst loop lag during the load      {startup_probe.max_seconds * ms:8.2f} ms")
    print(f"startup: engine's first apply (on the loop)  {apply_s * ms:8.1f} ms")
    now_total, old_total = load_s + apply_s, old_load_s + old_replan_s + apply_s
    print(
        f"startup total (load + apply)                 {now_total * ms:8.1f} ms  (before: >= {old_total * ms:.0f} ms,"
        f" {old_total / now_total:.1f}x)"
    )
    print(f"poll, unchanged: wall                        {unchanged_s * ms:8.1f} ms, 0 files re-parsed")
    print(f"poll, one file edited: wall                  {edit_s * ms:8.1f} ms, 1 file re-parsed")
    print(f"poll, one file added: wall                   {add_s * ms:8.1f} ms, 1 file re-parsed")
    print(f"engine re-apply after the edit (on the loop) {reapply_s * ms:8.1f} ms")
    print(f"loop lag, idle (floor)                       {idle.max_seconds * ms:8.2f} ms")
    print(f"loop lag, worst over {args.polls} unchanged polls       {max(lags) * ms:8.2f} ms")
    edit_lag, add_lag = probe_edit.max_seconds * ms, probe_add.max_seconds * ms
    print(f"loop lag, edit poll / add poll               {edit_lag:8.2f} / {add_lag:.2f} ms")
    print(f"loop blocked per poll: before {old_fp_s * ms:.1f} ms, now <= {max(lags) * ms:.2f} ms")


async def _timed_check(source: DirectorySource):
    start = time.perf_counter()
    result = await source.check()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    asyncio.run(main())
