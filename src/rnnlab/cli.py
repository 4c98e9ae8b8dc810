"""The `rnnlab` command: small tools around the pipeline (the stages themselves run through DVC)."""

from __future__ import annotations

import argparse
import sys

from rnnlab.config import project_root


def _sync_params(args: argparse.Namespace) -> int:
    from rnnlab.params import sync_params

    root = project_root()
    in_sync = sync_params(root, check=args.check)
    if in_sync:
        print(f"{root / 'params.yaml'} matches conf/")
        return 0
    if args.check:
        print(f"{root / 'params.yaml'} differs from conf/: run `rnnlab sync-params`", file=sys.stderr)
        return 1
    print(f"rewrote {root / 'params.yaml'} from conf/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync-params", help="rewrite params.yaml as the composition of conf/ defaults")
    sync.add_argument("--check", action="store_true", help="only compare; exit 1 when they differ")
    sync.set_defaults(func=_sync_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
