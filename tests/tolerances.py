"""The one table of numerical tolerances, per op, per kind of check, per dtype (ARCHITECTURE.md §8).

Every test that compares numbers takes its tolerance from here, so a loosened tolerance
is a one-line, reviewable diff. Use::

    from tolerances import tol      # tests/ is on sys.path under pytest (no __init__.py)
    np.testing.assert_allclose(actual, expected, **tol("conv2d", "kernel_vs_reference"))

Kinds of check
--------------
``gradcheck`` (float64)
    Analytic backward vs central differences, step ``GRADCHECK_STEP``, on small shapes.
    ``tests/gradcheck.py`` applies it as ``|numeric - analytic| <= atol + rtol * scale``
    where ``scale`` is the norm of the analytic gradient (directional check) or the
    largest gradient entry (element-wise check), so an accidentally tiny directional
    derivative does not make the check fail or pass by luck. Central differences in
    float64 with h = 1e-6 have truncation error ~h² and rounding error ~1e-16·|L|/h, i.e.
    about 1e-9 relative here; 1e-6 leaves room without hiding a wrong term (a real bug
    is an O(1) relative error).
``torch`` (float64)
    Reference vs PyTorch CPU, the independent oracle (each op family's `*_vs_torch` tests,
    helpers in tests/torch_oracle.py).
    Same math, different summation orders: agreement is ~1e-15 in practice.
``kernel_vs_reference`` (float32; provisional entries for tf32 and bfloat16)
    A float32 kernel (``emu`` or ``cuda`` backend) against the reference evaluated in
    float64 on the same float32 inputs (cast the inputs up, compare the kernel's output
    to the float64 answer). Assumes test data of unit scale (U(-1, 1) or N(0, 1) inputs,
    weights scaled to keep outputs O(1)-O(10)) and reduction lengths up to ~10^4 (e.g.
    R·S·C = 5·5·16, N·P·Q = 4·16·16). Each op family's test file (its `*_float32_*` test;
    tests/test_reference_float32.py for the elementwise and windowed ops) checks that the
    reference's own float32 path meets these numbers, so they are attainable; a kernel
    that needs more has a bug or a worse summation order, and the diff that loosens an
    entry should say which. ``conv2d_backward``/``linear_backward`` entries cover all of
    dx, dw, db; dw is the long reduction (over N·P·Q) and sets the width.
    tf32/bfloat16 (tensor-core paths, ARCHITECTURE.md §4) are estimates from the formats'
    10-bit / 8-bit mantissas, to be confirmed when those kernels land.

Exact ops (ReLU, max-pool forward, top-k counts, dropout masks) have rtol = atol = 0:
a kernel must reproduce them bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Tol", "TOLERANCES", "GRADCHECK_STEP", "tol"]

#: Central-difference step for float64 gradient checks.
GRADCHECK_STEP = 1e-6


class Tol(NamedTuple):
    rtol: float
    atol: float


_GRAD = Tol(rtol=1e-6, atol=1e-10)
_TORCH = Tol(rtol=1e-10, atol=1e-12)
_EXACT = Tol(rtol=0.0, atol=0.0)

#: TOLERANCES[op][(check, dtype)] -> Tol
TOLERANCES: dict[str, dict[tuple[str, str], Tol]] = {
    # GEMM core (FC layers). K up to a few thousand.
    "linear": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-4, atol=1e-4),
        ("kernel_vs_reference", "tf32"): Tol(rtol=5e-3, atol=5e-3),
        ("kernel_vs_reference", "bfloat16"): Tol(rtol=3e-2, atol=3e-2),
    },
    "linear_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-4, atol=2e-4),
        ("kernel_vs_reference", "tf32"): Tol(rtol=5e-3, atol=1e-2),
        ("kernel_vs_reference", "bfloat16"): Tol(rtol=3e-2, atol=5e-2),
    },
    # Implicit-GEMM convolution: forward (K = R·S·C/g), dgrad (K = R·S·K/g),
    # wgrad (K = N·P·Q, the long one).
    "conv2d": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-4, atol=1e-4),
        ("kernel_vs_reference", "tf32"): Tol(rtol=5e-3, atol=5e-3),
        ("kernel_vs_reference", "bfloat16"): Tol(rtol=3e-2, atol=3e-2),
    },
    "conv2d_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-4, atol=5e-4),
        ("kernel_vs_reference", "tf32"): Tol(rtol=5e-3, atol=2e-2),
        ("kernel_vs_reference", "bfloat16"): Tol(rtol=3e-2, atol=1e-1),
    },
    "relu": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _EXACT,
        ("kernel_vs_reference", "float32"): _EXACT,
    },
    "relu_backward": {
        ("torch", "float64"): _EXACT,
        ("kernel_vs_reference", "float32"): _EXACT,
    },
    # tanhf is a few ulp; 1 - y² near |y| = 1 cancels, hence an absolute floor.
    "tanh": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=2e-6, atol=1e-6),
    },
    "tanh_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-5, atol=1e-6),
    },
    # scale^(-beta): powf (a few ulp of the exponent's log), or for beta = 0.75 r * sqrtf(r),
    # r = rsqrtf(scale): <= ~5 ulp on a GPU (rsqrtf 2 ulp x 1.5, 3 roundings); measured on
    # AlexNet's LRN shapes through the emulator (correctly rounded rsqrtf): y 2.4e-7
    # relative (2.0 ulp); dx max |err| / (|ref| + 1e-5) = 3.2e-5 (3.5e-5 through powf and the
    # division, beta = 0.7).
    "lrn": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=2e-5, atol=1e-6),
    },
    "lrn_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-4, atol=1e-5),
    },
    # Max is exact; the backward sums up to ceil(size/stride)² contributions per input.
    "max_pool": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _EXACT,
        ("kernel_vs_reference", "float32"): _EXACT,
    },
    "max_pool_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-6, atol=1e-6),
    },
    # Same mask bit for bit; one multiply by a dtype-rounded scalar (vs float64: the
    # scalar's rounding plus the product's, about 2 ulp).
    "dropout": {
        ("gradcheck", "float64"): _GRAD,
        ("kernel_vs_reference", "float32"): Tol(rtol=2.5e-7, atol=0.0),
    },
    "dropout_backward": {
        ("kernel_vs_reference", "float32"): Tol(rtol=2.5e-7, atol=0.0),
    },
    # Loss and probs: expf over the classes, a sum of up to 1000 terms.
    "softmax_cross_entropy": {
        ("gradcheck", "float64"): _GRAD,
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-5, atol=1e-6),
    },
    "softmax_cross_entropy_backward": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-5, atol=1e-7),
    },
    "topk_errors": {
        ("kernel_vs_reference", "float32"): _EXACT,
    },
    # Against the float64 reference: the float32 rounding of each product and sum, a few
    # ulp of |v|, |w|. Against the float32 reference the kernel is bit-exact (it forbids
    # FMA contraction, csrc/sgd.cuh) and tests/test_sgd.py checks equality.
    "sgd_update": {
        ("torch", "float64"): _TORCH,
        ("kernel_vs_reference", "float32"): Tol(rtol=1e-6, atol=1e-7),
    },
}


def tol(op: str, check: str, dtype: str = None) -> dict:
    """``{"rtol": ..., "atol": ...}`` for ``assert_allclose``.

    ``dtype`` defaults to float64 for ``gradcheck``/``torch`` and float32 for
    ``kernel_vs_reference``.
    """
    if dtype is None:
        dtype = "float32" if check == "kernel_vs_reference" else "float64"
    if not isinstance(dtype, str):        # np.float32, np.dtype("float32"), ...
        dtype = np.dtype(dtype).name
    try:
        t = TOLERANCES[op][(check, dtype)]
    except KeyError:
        have = sorted(TOLERANCES.get(op, {}))
        raise KeyError(f"no tolerance for op={op!r}, check={check!r}, dtype={dtype!r}; "
                       f"table has {have if have else 'no such op'}") from None
    return {"rtol": t.rtol, "atol": t.atol}
