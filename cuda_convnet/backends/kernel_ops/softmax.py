"""Softmax cross-entropy and top-k errors (csrc/softmax.cuh)."""
from __future__ import annotations


class SoftmaxOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
