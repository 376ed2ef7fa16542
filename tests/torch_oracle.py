"""PyTorch CPU as the independent oracle of the reference ops, float64 (ARCHITECTURE.md §8.1):
layout conversion at the boundary (ours NHWC / KRSC, torch NCHW / KCRS) and the comparison
at the "torch" tolerance. Tests that need torch take the `needs_torch` mark (skipped
without it) or call pytest.importorskip("torch") at the top of their module.
"""
from __future__ import annotations

import numpy as np
import pytest
from tolerances import tol

try:
    import torch
    import torch.nn.functional as F  # noqa: N812
except ImportError:  # the oracle is optional; its tests skip
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (the oracle's tests need it)")

__all__ = ["torch", "F", "needs_torch", "nchw", "nhwc", "assert_close"]


def nchw(a: np.ndarray):
    """NHWC (or KRSC) NumPy -> NCHW (or KCRS) torch, float64, requiring grad."""
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).requires_grad_()


def nhwc(t) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).numpy()


def assert_close(actual, expected, op, check="torch"):
    np.testing.assert_allclose(actual, expected, **tol(op, check))

