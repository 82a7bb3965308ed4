"""`lambdakube` command line: generate CRDs, run the router locally (`dev`), and use a
router day to day (`invoke`, `get`, `describe`, `logs`, `bench`, `completion`: ``ctl``).

It lives in the router package, not in ``lambdakube`` (the models), so that the models
stay a leaf: the router depends on them, never the other way round. The flags shared by
``lambdakube dev`` and ``lambdakube-router`` are declared here once
(``add_serving_options``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _crds(args: argparse.Namespace) -> int:
    from lambdakube import crdgen

    if args.check:
        stale = crdgen.stale()
        if stale:
            print(f"stale CRDs (run `lambdakube crds`): {', '.join(stale)}", file=sys.stderr)
            return 1
        print("CRDs are up to date")
        return 0
    for path in crdgen.write():
        print(f"wrote {path}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    """Run the router with the local backend (functions as local processes) on loopback."""
    import logging
    import tempfile
    from pathlib import Path

    from lambdakube_router.__main__ import run
    from lambdakube_router.app import RouterConfig

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory}: not a directory of Function manifests", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="lambdakube-dev-")

    def ready(host: str, port: int) -> None:
        from lambdakube_router.snapshot import load_directory

        loaded = load_directory(directory, args.namespace)
        names = sorted(name for _, name in loaded.functions)
        example = "hello" if "hello" in names else (names[0] if names else "FUNCTION")
        print(f"lambdakube dev: {len(names)} function(s) from {directory}: {', '.join(names)}")
        if loaded.mappings:
            mappings = sorted(name for _, name in loaded.mappings)
            print(
                f"event source mappings: {', '.join(mappings)} (GET /lambdakube/v1/namespaces/NS/eventsourcemappings)"
            )
        print(f"async queue state: {state_dir}")
        print("try:")
        print(
            f'  curl -s -XPOST {host}:{port}/2015-03-31/functions/{example}/invocations -d \'{{"name":"x"}}\'',
            flush=True,
        )

    config = RouterConfig(
        functions_dir=directory,
        backend="local",
        state_dir=state_dir,
        auth=auth_settings(args, default_mode="none"),
        **serving_config(args),
    )
    return run(config, on_ready=ready)


def _non_negative(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _positive_seconds(value: str) -> float:
    n = float(value)
    if not n > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return n


def _auth_mode(value: str):
    from lambdakube_router.access import ConfigError, parse_mode  # noqa: PLC0415

    try:
        return parse_mode(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def auth_settings(args: argparse.Namespace, *, default_mode: str):
    """``--auth``/``--insecure`` as ``access.AuthSettings``; ``default_mode`` when no
    ``--auth`` was given (the router: tokenreview on the kubernetes backend)."""
    from lambdakube_router.access import AuthSettings, parse_mode  # noqa: PLC0415

    mode, path = args.auth if args.auth is not None else parse_mode(default_mode)
    settings = AuthSettings(mode=mode, token_file=path, insecure=args.insecure)
    if args.token_audiences is not None:
        settings = dataclasses.replace(settings, audiences=tuple(a for a in args.token_audiences if a))
    return settings


def add_serving_options(p: argparse.ArgumentParser, *, state_dir_help: str, log_level: str) -> None:
    """Flags shared by ``lambdakube-router`` and ``lambdakube dev``, declared once so the
    two commands cannot drift apart."""
    from lambdakube_router import client_guard  # the router's defaults; not needed by `crds`

    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--state-dir", metavar="DIR", help=state_dir_help)
    p.add_argument(
        "--namespace", default="default", help="namespace of manifests without one, and of plain function names"
    )
    p.add_argument(
        "--account-namespace",
        action="append",
        default=[],
        type=_account_pair,
        metavar="ACCOUNT=NAMESPACE",
        help="an AWS account id in a FunctionName ARN (arn:aws:lambda:<region>:<account>:function:<name>,"
        " <account>:function:<name>) names this namespace; repeatable. An ARN of an account mapped"
        " nowhere is answered 404 ResourceNotFoundException, never run in another namespace",
    )
    p.add_argument(
        "--default-account",
        type=_account,
        metavar="ACCOUNT",
        help="an AWS account id whose ARNs resolve like a plain function name (the X-Lambdakube-Namespace"
        " header, else --namespace): for code that builds ARNs from one fixed account id",
    )
    p.add_argument(
        "--generic-pool-size",
        type=_non_negative,
        default=2,
        metavar="N",
        help="local backend: keep N pre-warmed generic environments that cold starts"
        " specialise (POST /init) instead of starting a process; N is also the"
        " cap on them for the whole router (they count toward no function's"
        " concurrency); 0 disables (default 2)",
    )
    p.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="local backend: resolve Functions' Secret references (envValueFrom secretKeyRef, envFrom"
        " secretRef) from DIR/<namespace>/<secret>/<key>, one file per key as a mounted Secret volume;"
        " a non-optional reference without its file makes the manifest invalid",
    )
    p.add_argument(
        "--configmaps-dir",
        metavar="DIR",
        help="local backend: the same for ConfigMap references (configMapKeyRef, configMapRef):"
        " DIR/<namespace>/<configmap>/<key>",
    )
    p.add_argument(
        "--quarantine-corrupt-store",
        action="store_true",
        help="if the async store fails its integrity check at start, rename it (and its -wal/-shm)"
        " to <file>.corrupt-<time> and start an empty one; without it the router serves sync"
        " invokes only and async invokes get 503 until the file is mended",
    )
    p.add_argument(
        "--no-fast-invoke",
        dest="fast_invoke",
        action="store_false",
        help="serve every request through aiohttp, Invoke included (the router's own front"
        " serves plain Invoke requests faster; this is for comparing the two)",
    )
    p.add_argument(
        "--keepalive-seconds",
        type=float,
        default=75.0,
        metavar="SECONDS",
        help="close a client connection without a complete request for this long: idle"
        " between requests or still sending its first one (default 75)",
    )
    p.add_argument(
        "--body-timeout-seconds",
        type=float,
        default=client_guard.BODY_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="answer 408 and close when a request's body has not arrived this long after"
        f" its head (default {client_guard.BODY_TIMEOUT_SECONDS:g})",
    )
    p.add_argument(
        "--max-connections",
        type=_positive,
        default=client_guard.MAX_CONNECTIONS,
        metavar="N",
        help="client connections above N are answered 503 ServiceException with Retry-After"
        f" and closed, unread (default {client_guard.MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--auth",
        type=_auth_mode,
        metavar="MODE",
        help="who may call: tokenreview (Authorization: Bearer tokens checked with the Kubernetes"
        " TokenReview API, rights with SubjectAccessReview against RBAC), token-file=PATH (static"
        ' tokens, kube-apiserver\'s --token-auth-file format: token,user,uid[,"groups"]; any listed'
        " token may do everything) or none (loopback only, unless --insecure). Default: tokenreview"
        " with --backend kubernetes, else none",
    )
    p.add_argument(
        "--token-audience",
        dest="token_audiences",
        action="append",
        default=None,
        metavar="AUDIENCE",
        help="tokenreview: accept tokens issued for this audience (repeatable; default: lambdakube,"
        " the audience of functions' own tokens: kubectl create token SA --audience lambdakube);"
        " an empty value means the API server's own audiences",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow --auth none on an address other than loopback (whoever reaches it may invoke"
        " every function and read and delete every queue)",
    )
    p.add_argument(
        "--schedule-minute-seconds",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="test only: the length of a schedule's minute in rate(...) expressions (default 60;"
        " crons keep wall-clock time)",
    )
    p.add_argument("--log-level", default=log_level)


def _checked_accounts(pairs: list[str], default: str | None):
    from lambdakube_router.names import AccountsError, parse_accounts  # noqa: PLC0415

    try:
        return parse_accounts(pairs, default)
    except AccountsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _account_pair(value: str) -> str:
    _checked_accounts([value], None)
    return value


def _account(value: str) -> str:
    _checked_accounts([], value)
    return value


def _accounts(args: argparse.Namespace):
    try:
        return _checked_accounts(args.account_namespace, args.default_account)
    except argparse.ArgumentTypeError as exc:  # an account given twice
        raise SystemExit(f"error: {exc}") from None


def serving_config(args: argparse.Namespace) -> dict:
    """The ``RouterConfig`` fields of ``add_serving_options``' flags (but the state dir,
    whose default differs between the two commands)."""
    return {
        "host": args.host,
        "port": args.port,
        "namespace": args.namespace,
        "accounts": _accounts(args),
        "generic_pool_size": args.generic_pool_size,
        "secrets_dir": args.secrets_dir,
        "configmaps_dir": args.configmaps_dir,
        "quarantine_corrupt_store": args.quarantine_corrupt_store,
        "keepalive_seconds": args.keepalive_seconds,
        "fast_invoke": args.fast_invoke,
        "body_timeout_seconds": args.body_timeout_seconds,
        "max_connections": args.max_connections,
        "schedule_minute_seconds": args.schedule_minute_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambdakube", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crds = sub.add_parser("crds", help="write crds/*.yaml from the pydantic models")
    crds.add_argument("--check", action="store_true", help="fail if crds/ is out of date")
    crds.set_defaults(run=_crds)

    dev = sub.add_parser("dev", help="run the router locally (functions as local processes)")
    dev.add_argument(
        "directory", nargs="?", default="examples/", help="directory of Function manifests (default: examples/)"
    )
    from lambdakube_router.ctl import commands, completion  # stdlib only: no router imports

    argv = sys.argv[1:] if argv is None else argv
    # A client call (``lambdakube get``) starts in 0.1 s: ``dev``'s options import the
    # router's defaults (aiohttp and more, most of a second), so they are only declared
    # when something else than a client command runs.
    if not (argv and argv[0] in commands.NAMES):
        add_serving_options(
            dev, state_dir_help="async queue state (default: a new temporary directory)", log_level="WARNING"
        )
    dev.set_defaults(run=_dev)

    commands.add_parsers(sub)
    comp = sub.add_parser("completion", help='print a shell completion script: eval "$(lambdakube completion bash)"')
    comp.add_argument("shell", choices=("bash",))
    comp.set_defaults(run=lambda args: print(completion.bash(parser), end="") or 0)

    args = parser.parse_args(argv)
    if args.command in ("crds", "dev", "completion"):
        return args.run(args)
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
