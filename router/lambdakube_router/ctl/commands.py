"""The subcommands' drivers: parse, call the router (``http``), print (``render``), exit (``exits``)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lambdakube_router.ctl import config, exits, kubeconfig, render, stats, tail
from lambdakube_router.ctl.http import Answer, Connection, quoted

INVOKE = "/2015-03-31/functions/{}/invocations"
OVERVIEW = "/lambdakube/v1/namespaces/{}/overview"
LOGS = "/lambdakube/v1/namespaces/{}/functions/{}/logs"
#: ``bench`` never runs longer than this unless told (``--max-seconds``).
BENCH_MAX_SECONDS = 300.0
BENCH_MAX_REQUESTS = 1_000_000


#: The client subcommands (``lambdakube_router.cli`` keeps their start light).
NAMES = ("invoke", "get", "describe", "logs", "bench")


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


def _selection(args: argparse.Namespace) -> kubeconfig.Selection:
    return kubeconfig.Selection(kubectl=args.kubectl, kubeconfig=args.kubeconfig, context=args.context)


def _from_kubeconfig(args: argparse.Namespace) -> config.FromKubeconfig | None:
    selection = _selection(args)
    try:
        found = kubeconfig.lookup(selection)
    except kubeconfig.KubeconfigError as exc:
        raise Usage(str(exc)) from None
    if found is None or found.router is None:
        if selection.explicit:
            raise Usage(
                f"kubeconfig context {found.context if found else '?'!r} names no router:"
                f" add the {kubeconfig.EXTENSION} extension (README, Day one) or pass --router-url"
            )
        return None

    def token() -> str | None:
        try:
            return kubeconfig.token(selection, found)
        except kubeconfig.KubeconfigError as exc:
            raise Usage(str(exc)) from None

    return config.FromKubeconfig(router=found.router, namespace=found.namespace, token=token)


def _target(args: argparse.Namespace) -> config.Target:
    """Resolved once per run (the kubeconfig's token is a TokenRequest)."""
    cached = getattr(args, "_resolved_target", None)
    if cached is None:
        cached = config.resolve(
            url=args.router_url,
            token=args.token,
            namespace=args.namespace,
            environ=os.environ,
            kubeconfig=lambda: _from_kubeconfig(args),
        )
        args._resolved_target = cached
    return cached


def _connect(args: argparse.Namespace) -> Connection:
    try:
        return Connection(_target(args))
    except ValueError as exc:
        raise Usage(str(exc)) from None


def _fail(answer: Answer) -> int:
    print(f"error: {answer.error_text()}", file=sys.stderr)
    return exits.of_answer(answer.status, answer.headers) or exits.ERROR


def payload_bytes(value: str) -> bytes:
    """``--payload``: JSON text, or ``@file`` (``@-``: stdin); it must be JSON."""
    if value.startswith("@"):
        path = value[1:]
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise Usage(f"--payload {value}: {exc.strerror or exc}") from None
    else:
        raw = value.encode()
    try:
        json.loads(raw)
    except ValueError as exc:
        raise Usage(f"--payload is not JSON: {exc}") from None
    return raw


def invoke_meta(answer: Answer) -> dict[str, Any]:
    """What the router said about a run, from its headers (and a throttle's body)."""
    h = answer.header
    log = h("X-Amz-Log-Result")
    log_text = base64.b64decode(log).decode(errors="replace") if log else None
    report = next((line for line in (log_text or "").splitlines() if line.startswith("REPORT ")), None)
    cold = h("X-Cold-Start")
    meta: dict[str, Any] = {
        "statusCode": answer.status,
        "requestId": h("X-Amz-Request-Id"),
        "executedVersion": h("X-Amz-Executed-Version"),
        "coldStart": None if cold is None else cold == "true",
        "environmentId": h("X-Environment-Id"),
        "environmentSource": h("X-Environment-Source"),
        "initDurationMs": _number(h("X-Init-Duration-Ms")),
        "runDurationMs": _number(h("X-Run-Duration-Ms")),
        "functionError": h("X-Amz-Function-Error"),
        "report": report,
        "logTail": log_text,
    }
    if answer.status == 429:
        body = _json_or_none(answer.body)
        meta["throttle"] = (body or {}).get("Reason") or "TooManyRequestsException"
        meta["retryAfter"] = h("Retry-After")
    return meta


def _number(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def cmd_invoke(args: argparse.Namespace) -> int:
    if args.async_ and args.dry_run:
        raise Usage("--async and --dry-run exclude each other")
    body = payload_bytes(args.payload)
    conn = _connect(args)
    kind = "Event" if args.async_ else "DryRun" if args.dry_run else "RequestResponse"
    headers = {"X-Amz-Invocation-Type": kind}
    if kind == "RequestResponse":
        headers["X-Amz-Log-Type"] = "Tail"
    query = {"Qualifier": args.qualifier} if args.qualifier else None
    answer = conn.request("POST", INVOKE.format(quoted(args.name)), body=body, headers=headers, query=query)
    conn.close()
    code = exits.of_answer(answer.status, answer.headers)
    if answer.status is None or (answer.status >= 400 and answer.status != 429):
        return _fail(answer)
    meta = invoke_meta(answer)
    result = _json_or_none(answer.body)
    if args.output in ("json", "yaml"):
        doc = {**meta, "result": result if result is not None or not answer.body else answer.body.decode("replace")}
        if not args.log_tail:
            doc.pop("logTail")
        print(render.data(doc, args.output))
        return code
    if answer.status == 202:
        print(f"accepted: event {meta['requestId']}")
    elif answer.status == 204:
        print(f"dry run: {args.name} exists and may be invoked")
    elif answer.status == 429:
        pass
    else:
        text = answer.body.decode(errors="replace")
        print(json.dumps(result, indent=2) if result is not None else text)
    if args.log_tail and meta.get("logTail"):
        print(meta["logTail"].rstrip("\n"), file=sys.stderr)
        meta = {**meta, "report": None}  # already in the tail
    for line in render.invoke_summary(meta):
        print(line, file=sys.stderr)
    return code


def _overview(args: argparse.Namespace) -> tuple[Answer, dict | None]:
    conn = _connect(args)
    answer = conn.request("GET", OVERVIEW.format(quoted(conn.target.namespace)))
    conn.close()
    if answer.status != 200:
        return answer, None
    return answer, answer.json()


RESOURCES = {"functions": "functions", "function": "functions", "fn": "functions", "quota": "quota"}


def cmd_get(args: argparse.Namespace) -> int:
    resource = RESOURCES.get(args.resource)
    if resource is None:
        raise Usage(f"unknown resource {args.resource!r}: functions or quota")
    answer, view = _overview(args)
    if view is None:
        return _fail(answer)
    fmt = args.output
    if resource == "functions":
        functions = view["functions"]
        if fmt in ("json", "yaml"):
            print(render.data({"namespace": view["namespace"], "functions": functions}, fmt))
        elif fmt == "name":
            for f in functions:
                print(f["name"])
        elif not functions:
            print(f"No functions found in {view['namespace']} namespace.", file=sys.stderr)
        else:
            print(render.table(*render.function_rows(functions, wide=fmt == "wide")))
        return exits.OK
    quota = view["quota"]
    if fmt in ("json", "yaml"):
        print(render.data({"namespace": view["namespace"], "quota": quota}, fmt))
    elif fmt == "name":
        print(view["namespace"])
    elif quota is None:
        print(f"No quota in {view['namespace']} namespace (no functions there).", file=sys.stderr)
    else:
        print(render.table(*render.quota_rows(view["namespace"], quota, wide=fmt == "wide")))
    return exits.OK


def cmd_describe(args: argparse.Namespace) -> int:
    answer, view = _overview(args)
    if view is None:
        return _fail(answer)
    found = next((f for f in view["functions"] if f["name"] == args.name), None)
    if found is None:
        print(f"error: function {args.name!r} not found in namespace {view['namespace']}", file=sys.stderr)
        return exits.ERROR
    if args.output in ("json", "yaml"):
        print(render.data(found, args.output))
    else:
        print(render.describe(found))
    return exits.OK


def cmd_logs(args: argparse.Namespace) -> int:
    conn = _connect(args)
    path = LOGS.format(quoted(conn.target.namespace), quoted(args.name))
    seen: dict[str, str] = {}
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    try:
        while True:
            answer = conn.request("GET", path, query={"limit": str(args.limit)})
            if answer.status != 200:
                return _fail(answer)
            body = answer.json()
            if not body["supported"]:  # a cluster: the pods' logs, with the caller's own rights
                return _kubectl_logs(args, conn.target.namespace)
            for env in body["environments"]:
                text = env["log"] or ""
                fresh = tail.new_text(seen.get(env["id"], ""), text)
                seen[env["id"]] = text
                for line in tail.prefixed(env["id"], fresh):
                    print(line)
            sys.stdout.flush()
            if not args.follow or (deadline is not None and time.monotonic() >= deadline):
                return exits.OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return exits.OK
    finally:
        conn.close()


def kubectl_logs_argv(
    selection: kubeconfig.Selection, namespace: str, name: str, follow: bool, limit: int
) -> list[str]:
    """On a cluster the environments' output is in their pods' logs, which the router may
    not read: ``kubectl logs`` of the function's pods, prefixed by pod (= environment),
    with the same kubeconfig and context as the rest of the command."""
    argv = selection.argv("logs", "-n", namespace, "-l", f"lambdakube.dev/function={name}", "--prefix")
    # A pod still starting (ContainerCreating) or just gone must not hide the others'
    # output: kubectl prints its error in line and goes on.
    argv += ["--max-log-requests=50", "--ignore-errors"]
    return argv + (["--follow"] if follow else [f"--limit-bytes={limit}"])


def _kubectl_logs(args: argparse.Namespace, namespace: str) -> int:
    argv = kubectl_logs_argv(_selection(args), namespace, args.name, args.follow, args.limit)
    try:
        done = subprocess.run(argv, timeout=args.max_seconds, check=False)  # the caller's kubeconfig
    except FileNotFoundError:
        print(f"error: this router's environments are pods: {args.kubectl!r} is needed (--kubectl)", file=sys.stderr)
        return exits.ERROR
    except subprocess.TimeoutExpired:
        return exits.OK  # --follow for --max-seconds
    return exits.OK if done.returncode == 0 else exits.ERROR


def cmd_bench(args: argparse.Namespace) -> int:
    body = payload_bytes(args.payload)
    target = _target(args)
    path = INVOKE.format(quoted(args.name))
    query = {"Qualifier": args.qualifier} if args.qualifier else None
    total, workers = args.requests, min(args.concurrency, args.requests)
    samples: list[stats.Sample] = []
    lock = threading.Lock()
    next_index = iter(range(total))
    deadline = time.monotonic() + args.max_seconds
    show = args.progress if args.progress is not None else sys.stderr.isatty()

    def work() -> None:
        conn = Connection(target, timeout=max(1.0, args.max_seconds))
        try:
            while time.monotonic() < deadline:
                with lock:
                    if next(next_index, None) is None:
                        return
                t0 = time.perf_counter()
                answer = conn.request("POST", path, body=body, query=query)
                elapsed = time.perf_counter() - t0
                cold = answer.header("X-Cold-Start")
                sample = stats.Sample(
                    elapsed,
                    answer.status,
                    exits.of_answer(answer.status, answer.headers),
                    None if cold is None else cold == "true",
                )
                with lock:
                    samples.append(sample)
        finally:
            conn.close()

    try:
        _connect(args).close()  # the URL's shape, before any thread starts
    except Usage:
        raise
    started = time.monotonic()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
        if show:
            print("\r" + stats.progress_bar(len(samples), total), end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    summary = stats.summarize(samples, time.monotonic() - started, concurrency=workers, asked=total)
    if args.output in ("json", "yaml"):
        print(render.data(summary, args.output))
    else:
        print(render.bench(args.name, summary))
    return exits.worst(s.code for s in samples) if len(samples) == total else exits.ERROR


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _seconds(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 < n <= 86400:
        raise argparse.ArgumentTypeError(f"must be in (0, 86400], got {value}")
    return n


def _common(*, namespace_short: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("router")
    g.add_argument(
        "--router-url",
        metavar="URL",
        help=f"the router (default: ${config.URL_ENV}, else {config.DEFAULT_URL}, i.e. make dev)",
    )
    g.add_argument("--token", metavar="TOKEN", help=f"bearer token (default: ${config.TOKEN_ENV}; none for make dev)")
    flags = ("-n", "--namespace") if namespace_short else ("--namespace",)
    g.add_argument(
        *flags,
        dest="namespace",
        help=f"namespace (default: ${config.NAMESPACE_ENV}, else the kubeconfig context's, else default)",
    )
    k = p.add_argument_group("kubeconfig (used when neither --router-url nor $" + config.URL_ENV + " is set)")
    k.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: kubectl's, $KUBECONFIG)")
    k.add_argument("--context", metavar="NAME", help="kubeconfig context (default: its current context)")
    k.add_argument(
        "--kubectl",
        default="kubectl",
        help="kubectl, to read the kubeconfig, ask for a token and, on a cluster, read pods' logs (default kubectl)",
    )
    return p


def add_parsers(sub: Any) -> None:
    """Register the subcommands on ``lambdakube``'s subparsers."""
    common = _common(namespace_short=True)
    out = {"choices": ("table", "json", "yaml"), "default": "table", "help": "output format"}

    p = sub.add_parser("invoke", parents=[common], help="invoke a function; print its result and how it ran")
    p.add_argument("name", metavar="NAME", help="function name, name:qualifier or an ARN")
    p.add_argument("--payload", default="{}", help="the event: JSON, or @file (@- for stdin); default {}")
    p.add_argument("--async", dest="async_", action="store_true", help="asynchronous (Event): 202, queued")
    p.add_argument("--dry-run", action="store_true", help="DryRun: check it exists and may be invoked")
    p.add_argument("--qualifier", metavar="Q", help="a version number or an alias")
    p.add_argument("--log-tail", action="store_true", help="print the invocation's log tail (stderr)")
    p.add_argument("-o", "--output", **out)
    p.set_defaults(run=cmd_invoke)

    p = sub.add_parser("get", parents=[common], help="list functions (pools, limits) or the namespace quota")
    p.add_argument("resource", nargs="?", default="functions", metavar="functions|quota")
    p.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml", "name"), default="table")
    p.set_defaults(run=cmd_get)

    p = sub.add_parser("describe", parents=[common], help="a function's environments and recent throttles")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", **out)
    p.set_defaults(run=cmd_describe)

    p = sub.add_parser("logs", parents=[common], help="the output of a function's live environments")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output (Ctrl-C stops)")
    p.add_argument("--interval", type=_seconds, default=1.0, help="--follow: seconds between looks (default 1)")
    p.add_argument("--max-seconds", type=_seconds, help="--follow: stop after this long")
    p.add_argument(
        "--limit", type=_positive, default=16384, help="bytes of each environment's output end (default 16384)"
    )
    p.set_defaults(run=cmd_logs)

    p = sub.add_parser(
        "bench", parents=[_common(namespace_short=False)], help="invoke N at a time, M in all: latency, cold/warm"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("-c", "--concurrency", type=_positive, default=1, help="in flight at once (default 1)")
    p.add_argument(
        "-n",
        "--requests",
        type=lambda v: min(_positive(v), BENCH_MAX_REQUESTS),
        default=100,
        help=f"invocations in all (default 100, at most {BENCH_MAX_REQUESTS})",
    )
    p.add_argument("--payload", default="{}", help="the event: JSON, or @file; default {}")
    p.add_argument("--qualifier", metavar="Q")
    p.add_argument(
        "--max-seconds",
        type=_seconds,
        default=BENCH_MAX_SECONDS,
        help=f"stop starting invocations after this long (default {BENCH_MAX_SECONDS:g})",
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: on a terminal)")
    p.add_argument("-o", "--output", **out)
    p.set_defaults(run=cmd_bench)


def run(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; a late usage error is exit 2, as argparse's own."""
    try:
        return args.run(args)
    except Usage as exc:
        print(f"lambdakube {args.command}: error: {exc}", file=sys.stderr)
        return exits.USAGE
    except BrokenPipeError:  # | head
        return exits.OK
