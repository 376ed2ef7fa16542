"""The command line: `python -m cuda_convnet <command>` (also the `cuda-convnet` script).

One module per command in this package, each with `add_parser(subparsers)` (which sets
`func`) and the code it runs; common.py holds what train, eval and predict share (the
model table, --devices, opening stores and checkpoints). Errors a user can fix (bad paths, bad arguments) are raised
as `UsageError` and printed as one line, not a traceback, exit status 2; argparse's own errors (an unknown flag, a
number out of range: see args.py) are printed as one line too. Every check of an input or an output path is made
before the work that needs it starts. A failure of the machine during the work (a full disk, out of memory) is one
line too, with exit status 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._ext import ExtensionMissing

# Command modules, in the order `--help` lists them.
COMMANDS = ("demo", "prepare", "train", "eval", "predict", "selfcheck", "experiment", "figure")


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


class _Commands(argparse._SubParsersAction):
    """Subcommands whose own --help opens with the line the parent's command list shows."""

    def add_parser(self, name, **kwargs):
        if kwargs.get("help") and kwargs.get("description") is None:
            kwargs["description"] = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
        return super().add_parser(name, **kwargs)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line (no usage block), exit status 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)  # subparsers are built by this class too

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cuda-convnet",
        description="AlexNet (Krizhevsky, Sutskever, Hinton 2012) on hand-written CUDA kernels.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"cuda-convnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    # File names are bytes on POSIX; one that is not UTF-8 arrives here surrogate-escaped
    # (os.fsdecode).  Printing it writes its original bytes back, as `ls` does, instead of
    # raising UnicodeEncodeError halfway through the output.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and stream.errors == "strict":
            stream.reconfigure(errors="surrogateescape")
    # Each line as it is printed, into a pipe or a file too (`selfcheck | tee log`, a job's
    # log file): Python block-buffers stdout there, so a command that prints a line per
    # layer or per epoch would show nothing until it ends or the buffer fills.
    if hasattr(sys.stdout, "reconfigure") and not sys.stdout.line_buffering:
        sys.stdout.reconfigure(line_buffering=True)
    args = build_parser().parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # recorded by experiment/figure outputs
    try:
        return int(args.func(args) or 0)
    except (UsageError, ExtensionMissing) as e:  # ExtensionMissing: no build, or a stale one
        print(f"cuda-convnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the command reads or writes (permissions, a full disk, a file for a folder)
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"cuda-convnet {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except MemoryError:  # e.g. --batch-size or --size far beyond this machine: say so, without a traceback
        print(f"cuda-convnet {args.command}: error: out of memory "
              "(is a batch or an image size too large for this machine?)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"cuda-convnet {args.command}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130
