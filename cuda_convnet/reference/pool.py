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
``max_pool_backward(..., relu_mask=True)`` also applies the backward of the ReLU whose
output is ``x`` (dx zeroed where x <= 0: ``relu_backward(x, dx)``, bit for bit); the
kernel does it in its store, where x is already loaded, saving the ReLU's own pass.

Both directions loop over the window taps that reach the image (padding holds -inf, so
it never changes a max and is never scanned: a huge window over a small image costs what
its image part costs, and nothing of the padded size is allocated); each tap is one
strided, vectorised operation over N, P, Q and C (C is contiguous, as the kernels want).
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .activation import relu_backward

__all__ = ["max_pool", "max_pool_backward"]


def _tap_span(origin0: int, stride: int, count: int, tap: int, extent: int):
    """Outputs ``[lo, hi)`` whose tap ``tap`` lands inside ``[0, extent)``, where output
    ``o`` starts at input index ``origin0 + o*stride``; ``None`` when there are none."""
    first = tap + origin0           # input index of output 0's tap
    lo = (-first + stride - 1) // stride if first < 0 else 0
    hi = min(count, (extent - 1 - first) // stride + 1) if extent - 1 - first >= 0 else 0
    return (lo, hi) if lo < hi else None


def _reaching(origin0: int, stride: int, count: int, size: int, extent: int):
    """Candidate taps (ascending) that may land inside ``[0, extent)`` for some output:
    tap t of output o reads ``origin0 + o*stride + t``. Whichever is smaller: the taps
    between the first and last image index any output reaches, or the (output, index)
    pairs themselves, so a huge window or stride costs what the image and output cost."""
    lo = max(0, -origin0 - (count - 1) * stride)
    hi = min(size, extent - origin0)  # exclusive
    if hi - lo <= count * extent:
        return range(lo, hi)
    return sorted({t for o in range(count) for i in range(extent)
                   if lo <= (t := i - origin0 - o * stride) < hi})


def _taps(g: checks.PoolGeometry):
    """Every tap (r, s) in row-major order that reaches the image, with the output slices
    (rows, cols) it applies to and the input slices it reads."""
    top, _, left, _ = g.padding
    st = g.stride
    row_taps = [(r, span) for r in _reaching(-top, st, g.p, g.size, g.h)
                if (span := _tap_span(-top, st, g.p, r, g.h)) is not None]
    col_taps = [(s, span) for s in _reaching(-left, st, g.q, g.size, g.w)
                if (span := _tap_span(-left, st, g.q, s, g.w)) is not None]
    for r, rows in row_taps:
        for s, cols in col_taps:
            h0 = rows[0] * st + r - top
            w0 = cols[0] * st + s - left
            out = (slice(None), slice(*rows), slice(*cols), slice(None))
            inp = (slice(None), slice(h0, h0 + st * (rows[1] - rows[0] - 1) + 1, st),
                   slice(w0, w0 + st * (cols[1] - cols[0] - 1) + 1, st), slice(None))
            yield r, s, out, inp


def max_pool(x: np.ndarray, *, size: int = 3, stride: int = 2, padding=0) -> np.ndarray:
    """Max over ``size x size`` windows at ``stride``. x (N, H, W, C) -> y (N, P, Q, C)."""
    g = checks.check_pool_args(x, size, stride, padding)
    y = np.full((g.n, g.p, g.q, g.c), -np.inf, dtype=x.dtype)
    for _, _, out, inp in _taps(g):
        np.maximum(y[out], x[inp], out=y[out])
    return y


def max_pool_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, *, size: int = 3,
                      stride: int = 2, padding=0, relu_mask: bool = False) -> np.ndarray:
    """dx of ``max_pool``: each dy goes to the first max of its window (row-major).
    relu_mask=True: dx zeroed where x <= 0 (or NaN), the backward of the ReLU that produced x."""
    g = checks.check_pool_backward_args(x, y, dy, size, stride, padding)
    top, _, left, _ = g.padding
    dx = np.zeros(x.shape, dtype=x.dtype)
    # routed[n, p, q, c]: this window's gradient has already gone to an earlier tap.
    routed = np.zeros(y.shape, dtype=bool)
    # A window whose max is -inf routes to its first -inf tap, which may be padding:
    # tap (0, 0) is padding when the window starts above or left of the image, and every
    # row before the last ends in padding when the window runs past the right edge.
    origin_h = np.arange(g.p) * g.stride - top
    origin_w = np.arange(g.q) * g.stride - left
    corner_pad = (origin_h < 0)[:, None] | (origin_w < 0)[None, :]
    right_pad = np.broadcast_to((origin_w + g.size > g.w)[None, :], corner_pad.shape)
    minus_inf = y == -np.inf
    routed |= minus_inf & corner_pad[None, :, :, None]
    past_row0 = False
    for r, _s, out, inp in _taps(g):  # row-major tap order = the documented tie rule
        if r > 0 and not past_row0:
            # Row 0's right padding precedes every tap of the later rows.
            routed |= minus_inf & right_pad[None, :, :, None]
            past_row0 = True
        hit = x[inp] == y[out]
        hit &= ~routed[out]
        routed[out] |= hit
        # Within one tap distinct outputs read distinct inputs, so += on the strided
        # view never collides; overlap across taps accumulates through dx.
        dx[inp] += np.where(hit, dy[out], dy.dtype.type(0))
    return relu_backward(x, dx) if relu_mask else dx
