"""Dropout with the Philox4x32-10 mask of the reference (csrc/dropout.cuh), paper §4.2."""
from __future__ import annotations


class DropoutOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
