"""The command line: `python -m cuda_convnet <command>` (also the `cuda-convnet` script).

One module per command in this package, each with `add_parser(subparsers)` (which sets
`func`) and the code it runs; common.py holds what train, eval and predict share (the
model table, --devices, opening stores and checkpoints). Errors a user can fix (bad paths, bad arguments) are raised
as `UsageError` and printed as one line, not a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._ext import ExtensionMissing

# Command modules, in the order `--help` lists them.
COMMANDS = ("demo", "prepare", "train", "eval", "predict", "selfcheck")


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cuda-convnet",
        description="AlexNet (Krizhevsky, Sutskever, Hinton 2012) on hand-written CUDA kernels.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ExtensionMissing) as e:  # ExtensionMissing: no build, or a stale one
        print(f"cuda-convnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"cuda-convnet {args.command}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130
