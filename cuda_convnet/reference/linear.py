"""Fully-connected layer: y = x · wᵀ + b (§3.5: the three FC layers, 4096-4096-1000).

Layouts (ARCHITECTURE.md §3): x (N, in), w (out, in), b (out,), y (N, out). The weight is
stored (out, in), as cuda-convnet and PyTorch do, so the forward GEMM reads w row by row.
These are the plain GEMMs the CUDA side implements with its shared GEMM core:

    forward   y  = x  · wᵀ   (M=N,   N=out, K=in)
    backward  dx = dy · w    (M=N,   N=in,  K=out)
              dw = dyᵀ · x   (M=out, N=in,  K=N)     db = Σ_n dy[n]

``precision`` (checks.PRECISIONS) selects the GEMMs' arithmetic; in PyTorch's terms
(``torch.set_float32_matmul_precision``):

    "fp32"    float32 operands ("highest"): the SIMT kernels (csrc/gemm.cuh), the default;
    "3xtf32"  float32-level accuracy on TF32 tensor cores (each operand split into a TF32
              part and a TF32 residual, three MMAs per product): closer to "highest" than
              to "high"; the reference computes it unrounded;
    "tf32"    operands rounded to TF32 (cvt.rna), float32 accumulation ("high");
    "bf16"    operands rounded to BF16 (round to nearest even), float32 accumulation
              ("medium"); activations and weights stay float32 in memory.

The reference rounds the GEMM operands exactly as the kernels do (reference/precision.py)
and then computes in the input's dtype; bias and db are never rounded (the bias is added
in float32 in the epilogue; db is a float32 column sum).
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .precision import round_operand

__all__ = ["linear", "linear_backward"]


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, precision: str = "fp32",
           relu: bool = False) -> np.ndarray:
    """y = x · wᵀ (+ b). x (N, in), w (out, in), b (out,) or None -> y (N, out).

    precision: "fp32" (default), "3xtf32", "tf32" or "bf16" (module docstring);
    ValueError for any other value. ``relu=True`` returns max(0, y) (§3.1), what the
    GEMM's fused epilogue computes.
    """
    checks.check_linear_args(x, w, b)
    checks.check_precision("linear", precision)
    y = round_operand(x, precision) @ round_operand(w, precision).T
    if b is not None:
        y += b
    if relu:
        np.maximum(y, 0, out=y)
    return y


def linear_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, *, precision: str = "fp32",
                    need_dx: bool = True, dx_accumulate: np.ndarray | None = None):
    """Gradients of ``linear`` -> (dx (N, in), dw (out, in), db (out,)).

    db is always returned (Σ over the batch of dy); a caller without a bias ignores it.
    precision as for ``linear``: it rounds the operands of the dgrad and wgrad GEMMs.
    ``need_dx=False`` (an input that needs no gradient) skips the dx GEMM: dx is None.
    ``dx_accumulate`` (N, in): dx is added to it in place and it is returned as dx (the
    GEMM's beta = 1; how a Net sums the gradient of an input read by several layers).
    """
    checks.check_linear_backward_args(x, w, dy, dx_accumulate if need_dx else None)
    checks.check_precision("linear_backward", precision)
    rx, rw, rdy = (round_operand(a, precision) for a in (x, w, dy))
    dx = rdy @ rw if need_dx else None
    if dx is not None and dx_accumulate is not None:
        dx = np.add(dx_accumulate, dx, out=dx_accumulate)
    dw = rdy.T @ rx
    db = dy.sum(axis=0)
    return dx, dw, db
