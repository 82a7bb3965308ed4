"""`lambdakube` command line: generate CRDs, run the router locally (`dev`)."""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambdakube", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crds = sub.add_parser("crds", help="write crds/*.yaml from the pydantic models")
    crds.add_argument("--check", action="store_true", help="fail if crds/ is out of date")
    crds.set_defaults(run=_crds)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
