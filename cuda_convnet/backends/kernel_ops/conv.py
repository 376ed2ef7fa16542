"""Convolution as implicit GEMM (csrc/conv_fwd.cuh, conv_dgrad.cuh, conv_wgrad.cuh)."""
from __future__ import annotations


class ConvOps:
    """Not written yet: these ops exist on the cpu backend only so far."""
