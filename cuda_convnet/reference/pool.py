"""Max pooling, overlapping or not (§3.4; ARCHITECTURE.md §3).

``y[n, p, q, c] = max_{r, s < size} xpad[n, p*stride + r, q*stride + s, c]`` where ``xpad``
is x padded by (top, bottom, left, right) with -inf, so padding never wins. Output size:
``cuda_convnet.shapes.pool_output_size`` (floor rule, PyTorch ``ceil_mode=False``; every
pad < size). The paper pools with size z = 3 at stride s = 2 ("overlapping pooling",
0.4% better top-1 than z = s = 2).

Backward — tie rule (every backend must implement exactly this): the gradient
``dy[n, p, q, c]`` goes to ONE input, the *first* element of the window that equals the
maximum in row-major window order, i.e. the lowest ``r``, then the lowest ``s``. With
overlapping windows an input can be the maximum of several windows; its gradient is the
sum over them. (A NaN in a window makes the output NaN and routes no gradient.)

Both directions loop over the ``size²`` window taps only; each tap is one strided,
vectorised operation over N, P, Q and C (C is contiguous, as the kernels want).
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["max_pool", "max_pool_backward"]


def _pad_neg_inf(x: np.ndarray, pad) -> np.ndarray:
    top, bottom, left, right = pad
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    xp = np.full((n, h + top + bottom, w + left + right, c), -np.inf, dtype=x.dtype)
    xp[:, top:top + h, left:left + w, :] = x
    return xp


def _tap(a: np.ndarray, g: checks.PoolGeometry, r: int, s: int):
    """View of the (N, P, Q, C) elements that window tap (r, s) reads from padded ``a``."""
    st = g.stride
    return a[:, r:r + st * (g.p - 1) + 1:st, s:s + st * (g.q - 1) + 1:st, :]


def max_pool(x: np.ndarray, *, size: int = 3, stride: int = 2, padding=0) -> np.ndarray:
    """Max over ``size x size`` windows at ``stride``. x (N, H, W, C) -> y (N, P, Q, C)."""
    g = checks.check_pool_args(x, size, stride, padding)
    xp = _pad_neg_inf(x, g.padding)
    y = _tap(xp, g, 0, 0).copy()
    for r in range(g.size):
        for s in range(g.size):
            if r or s:
                np.maximum(y, _tap(xp, g, r, s), out=y)
    return y


def max_pool_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, *, size: int = 3,
                      stride: int = 2, padding=0) -> np.ndarray:
    """dx of ``max_pool``: each dy goes to the first max of its window (row-major)."""
    g = checks.check_pool_backward_args(x, y, dy, size, stride, padding)
    top, bottom, left, right = g.padding
    xp = _pad_neg_inf(x, g.padding)
    dxp = np.zeros(xp.shape, dtype=x.dtype)
    # routed[n, p, q, c]: this window's gradient has already gone to an earlier tap.
    routed = np.zeros(y.shape, dtype=bool)
    for r in range(g.size):          # row-major tap order = the documented tie rule
        for s in range(g.size):
            hit = _tap(xp, g, r, s) == y
            hit &= ~routed
            routed |= hit
            # Within one tap distinct outputs read distinct inputs, so += on the strided
            # view never collides; overlap across taps accumulates through dxp.
            _tap(dxp, g, r, s)[...] += np.where(hit, dy, dy.dtype.type(0))
    return np.ascontiguousarray(dxp[:, top:top + g.h, left:left + g.w, :])
