"""Local response normalization across channels (csrc/lrn.cuh), paper §3.3."""
from __future__ import annotations


class LrnOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
