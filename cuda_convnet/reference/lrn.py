"""Local response normalisation across channels (§3.3; ARCHITECTURE.md §3).

For an NHWC activation ``a`` (after the ReLU, as in the paper) and channel ``c``::

    scale[c] = k + alpha' · Σ_{j = c - size//2}^{c + (size-1)//2} a[j]²     (j clipped to [0, C))
    b[c]     = a[c] · scale[c]^(-beta)

The window holds ``size`` channels: ``size//2`` before ``c`` and ``(size-1)//2`` after it
(symmetric for odd ``size``, the paper's n = 5; for even size one more before than after,
which is PyTorch's ``local_response_norm`` convention). Channels past either end are
simply absent (clipped), as in the paper's max(0, ·) / min(N-1, ·) bounds.

Two conventions for alpha, both supported explicitly:

* ``divide_alpha_by_size=True`` (default): ``alpha' = alpha / size``. This is what
  cuda-convnet's code, Caffe and PyTorch compute; with the paper's alpha = 1e-4 it is the
  net that was actually trained. PyTorch's ``local_response_norm(x, size, alpha, beta, k)``
  always divides by ``size``, so it equals ours with the same alpha.
* ``divide_alpha_by_size=False``: ``alpha' = alpha``, the formula as printed in §3.3.
  PyTorch reproduces it with ``alpha * size``.

Defaults are the paper's hyper-parameters: size (n) = 5, alpha = 1e-4, beta = 0.75, k = 2.

``groups`` splits the C channels into ``groups`` contiguous groups of C/groups that are
normalised independently: the window never crosses a group boundary (channels of another
group are as absent as channels past the ends). This is the one-device form of the two
towers (§3.5, Figure 2: each GPU normalised its own maps), and equals applying the op to
each group's channel range separately, bit for bit.

Backward, with ``t[j] = dy[j] · b[j] / scale[j]`` (= dy·a·scale^(-beta-1)); channel ``c``
lies in the windows of ``j = c - (size-1)//2 .. c + size//2`` (the mirrored window)::

    dx[c] = dy[c] · scale[c]^(-beta) - 2 · alpha' · beta · a[c] · Σ_{j ∋ c} t[j]

``lrn_backward`` recomputes ``scale`` from ``x`` rather than storing it (one extra
windowed sum; cuda-convnet stored it, which costs a full activation of memory).

``lrn_backward(..., relu_mask=True)`` also applies the backward of the ReLU whose output
is ``x`` (§3.1, the paper's order ReLU -> LRN): ``dx = relu_backward(x, dx)``, i.e. ``dx``
where ``x > 0``, else 0. The kernels do it in their epilogue (x is already loaded), so the
ReLU's own backward pass over memory is saved; the result is the unfused pair's, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .. import checks
from ..shapes import lrn_window
from .activation import relu_backward

__all__ = ["lrn", "lrn_backward"]


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[..., c] = Σ a[..., j] for j in [c - before, c + after] ∩ [0, C), last axis.

    Zero-pads the channel axis and adds ``before + after + 1`` shifted slices: a direct
    sum (not a cumsum difference), so float32 does not lose precision to cancellation.
    ``before`` and ``after`` come clipped to C - 1 (shapes.lrn_window), so any size
    costs O(C) memory and time.
    """
    c = a.shape[-1]
    padded = np.zeros(a.shape[:-1] + (c + before + after,), dtype=a.dtype)
    padded[..., before:before + c] = a
    out = padded[..., 0:c].copy()
    for d in range(1, before + after + 1):
        out += padded[..., d:d + c]
    return out


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """(..., C) -> (..., groups, C // groups): a view whose last axis is one group."""
    return a.reshape(a.shape[:-1] + (groups, a.shape[-1] // groups))


def _scale(x, size, alpha, k, divide_alpha_by_size):
    """scale of x (..., Cg) along its last axis (one channel group)."""
    alpha_eff = alpha / size if divide_alpha_by_size else alpha
    before, after = lrn_window(size, x.shape[-1])
    s = _window_sum(x * x, before, after)
    # In-place keeps memory at one extra activation; scalars are rounded to x's dtype.
    s *= x.dtype.type(alpha_eff)
    s += x.dtype.type(k)
    return s, alpha_eff


def lrn(x: np.ndarray, *, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
        k: float = 2.0, divide_alpha_by_size: bool = True, groups: int = 1) -> np.ndarray:
    """Cross-channel LRN of an NHWC array (N, H, W, C), float32 or float64, per channel
    group (see the module docstring for the exact formula); returns y of x's shape and
    dtype. Raises TypeError/ValueError for a bad array, size < 1, alpha < 0, beta < 0,
    k <= 0 or groups not dividing C."""
    size, alpha, beta, k, groups = checks.check_lrn_args(x, size, alpha, beta, k, groups)
    xg = _grouped(x, groups)
    scale, _ = _scale(xg, size, alpha, k, divide_alpha_by_size)
    return (xg * np.power(scale, x.dtype.type(-beta))).reshape(x.shape)


def lrn_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, *, size: int = 5,
                 alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 divide_alpha_by_size: bool = True, groups: int = 1, relu_mask: bool = False) -> np.ndarray:
    """dx (x's shape) of ``lrn`` given its input x, output y and the output gradient dy,
    all NHWC of one shape and dtype; the other arguments as ``lrn``'s. relu_mask=True: dx
    zeroed where x <= 0 (or NaN), the backward of the ReLU that produced x (module docstring)."""
    size, alpha, beta, k, groups = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k, groups)
    shape = x.shape
    x, y, dy = _grouped(x, groups), _grouped(y, groups), _grouped(dy, groups)
    scale, alpha_eff = _scale(x, size, alpha, k, divide_alpha_by_size)
    t = dy * y / scale
    # Transposed window: channel c receives from j in [c - after, c + before].
    before, after = lrn_window(size, x.shape[-1])
    back = _window_sum(t, after, before)
    dx = dy * np.power(scale, x.dtype.type(-beta))
    dx -= x.dtype.type(2.0 * alpha_eff * beta) * x * back
    if relu_mask:
        dx = relu_backward(x, dx)
    return dx.reshape(shape)
