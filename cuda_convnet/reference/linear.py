"""Fully-connected layer: y = x · wᵀ + b (§3.5: the three FC layers, 4096-4096-1000).

Layouts (ARCHITECTURE.md §3): x (N, in), w (out, in), b (out,), y (N, out). The weight is
stored (out, in), as cuda-convnet and PyTorch do, so the forward GEMM reads w row by row.
These are the plain GEMMs the CUDA side implements with its shared GEMM core:

    forward   y  = x  · wᵀ   (M=N,   N=out, K=in)
    backward  dx = dy · w    (M=N,   N=in,  K=out)
              dw = dyᵀ · x   (M=out, N=in,  K=N)     db = Σ_n dy[n]
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["linear", "linear_backward"]


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, relu: bool = False) -> np.ndarray:
    """y = x · wᵀ (+ b). x (N, in), w (out, in), b (out,) or None -> y (N, out).

    ``relu=True`` returns max(0, y) (§3.1), what the GEMM's fused epilogue computes.
    """
    checks.check_linear_args(x, w, b)
    y = x @ w.T
    if b is not None:
        y += b
    if relu:
        np.maximum(y, 0, out=y)
    return y


def linear_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, *, need_dx: bool = True):
    """Gradients of ``linear`` -> (dx (N, in), dw (out, in), db (out,)).

    db is always returned (Σ over the batch of dy); a caller without a bias ignores it.
    ``need_dx=False`` (an input that needs no gradient) skips the dx GEMM: dx is None.
    """
    checks.check_linear_backward_args(x, w, dy)
    dx = dy @ w if need_dx else None
    dw = dy.T @ x
    db = dy.sum(axis=0)
    return dx, dw, db
