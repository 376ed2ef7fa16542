"""The fused momentum/weight-decay update over every parameter tensor (csrc/sgd.cuh), paper §5."""
from __future__ import annotations


class SgdOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
