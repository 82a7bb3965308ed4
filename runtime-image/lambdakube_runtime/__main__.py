"""``python -m lambdakube_runtime [--host H] [--port P]``: start one execution environment.

The function comes from ``LAMBDAKUBE_*`` environment variables (see ``config.py``);
without ``LAMBDAKUBE_HANDLER`` the environment starts generic and waits for
``POST /init``. After listening, one line ``LAMBDAKUBE_LISTENING port=<n>`` is printed
(and written to ``LAMBDAKUBE_READY_FD`` if set, see ``parent``) so a parent process
(tests, a local router) can use ``--port 0``.

Configuration errors exit with status 2 before listening: a pod that cannot possibly
work should crash visibly rather than report itself alive.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys

from .config import ConfigError, from_environ
from .server import new_request_id, serve, shutdown_process

USAGE = """usage: python -m lambdakube_runtime [--host HOST] [--port PORT]

  --host HOST  address to listen on (default 0.0.0.0)
  --port PORT  port to listen on; 0 picks a free one (default 8080)

The function is configured with LAMBDAKUBE_* environment variables; see README.md."""


def parse_args(argv: list[str]) -> tuple[str, int]:
    """``--host``/``--port`` only. Hand-rolled: argparse (+gettext) costs more import time
    than the rest of the command line handling is worth on the cold-start path."""
    options = {"--host": "0.0.0.0", "--port": "8080"}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        name, eq, value = arg.partition("=")
        if name not in options or (not eq and not args):
            print(f"{USAGE}\n\nerror: unexpected argument {arg!r}", file=sys.stderr)
            sys.exit(2)
        options[name] = value if eq else args.pop(0)
    try:
        port = int(options["--port"])
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        print(f"{USAGE}\n\nerror: invalid port {options['--port']!r}", file=sys.stderr)
        sys.exit(2)
    return options["--host"], port


def main(argv: list[str] | None = None) -> None:
    host, port = parse_args(sys.argv[1:] if argv is None else argv)

    # The pod log is read line by line; don't let a pipe's block buffering delay it.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(line_buffering=True)
            except ValueError:
                pass
    try:
        config = from_environ(os.environ)
        exit_delay = float(os.environ.get("LAMBDAKUBE_UNHEALTHY_EXIT_DELAY_SECONDS") or 0)
    except (ConfigError, ValueError) as exc:
        print(f"lambdakube-runtime: invalid configuration: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    env_id = os.environ.get("LAMBDAKUBE_ENV_ID") or new_request_id()

    try:
        code = asyncio.run(serve(host, port, config, env_id, exit_delay))
    except KeyboardInterrupt:
        code = 0
    except OSError as exc:  # e.g. the port is taken
        print(f"lambdakube-runtime: cannot serve on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        code = 1
    shutdown_process(code)


if __name__ == "__main__":
    main()
