"""Channel concat/split where the two towers meet (csrc/copy.cuh), paper §3.2."""
from __future__ import annotations


class CopyOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
