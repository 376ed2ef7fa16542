"""Overlapping max-pooling (csrc/pool.cuh), paper §3.4."""
from __future__ import annotations


class PoolOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
