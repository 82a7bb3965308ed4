"""``lambdakube-operator``: serve Functions in some namespaces or the whole cluster.

lambdakube-operator --namespace team-a --metrics-port 9102 --liveness-port 8080
lambdakube-operator --all-namespaces
"""

from __future__ import annotations

import asyncio
import sys

from prometheus_client import start_http_server

from .runner import run
from .settings import parse_args


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if not config.namespaces and not config.all_namespaces:
        print("lambdakube-operator: pass --namespace NAME or --all-namespaces", file=sys.stderr)
        return 2
    if config.metrics_port:
        start_http_server(config.metrics_port)
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
