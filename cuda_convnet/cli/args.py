"""Argument types for the commands: numbers checked when the command line is parsed.

A bad value ("--batch 0", "--lr -1", "--lr nan") is refused by argparse itself, before
any work, with the one-line message `cuda-convnet COMMAND: error: argument --flag: ...`
and exit status 2 (the parser class in cli/__init__.py prints errors as one line).
"""
from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def positive_int(text: str) -> int:
    """An int >= 1."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def nonnegative_int(text: str) -> int:
    """An int >= 0."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0 (a learning rate)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


def path(text: str) -> str:
    """A file or folder name; an empty one ('') is refused: os.path would read it as the
    current folder, and a store or a run would be read from or written into it."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return text
