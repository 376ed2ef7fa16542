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

Backward, with ``t[j] = dy[j] · b[j] / scale[j]`` (= dy·a·scale^(-beta-1)); channel ``c``
lies in the windows of ``j = c - (size-1)//2 .. c + size//2`` (the mirrored window)::

    dx[c] = dy[c] · scale[c]^(-beta) - 2 · alpha' · beta · a[c] · Σ_{j ∋ c} t[j]

``lrn_backward`` recomputes ``scale`` from ``x`` rather than storing it (one extra
windowed sum; cuda-convnet stored it, which costs a full activation of memory).
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["lrn", "lrn_backward"]


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[..., c] = Σ a[..., j] for j in [c - before, c + after] ∩ [0, C), last axis.

    Zero-pads the channel axis and adds ``before + after + 1`` shifted slices: a direct
    sum (not a cumsum difference), so float32 does not lose precision to cancellation.
    """
    c = a.shape[-1]
    # A window reaching past both ends of the row is the whole row: clip it first, so any
    # size costs O(C) memory and time, not O(size).
    before, after = min(before, max(c - 1, 0)), min(after, max(c - 1, 0))
    padded = np.zeros(a.shape[:-1] + (c + before + after,), dtype=a.dtype)
    padded[..., before:before + c] = a
    out = padded[..., 0:c].copy()
    for d in range(1, before + after + 1):
        out += padded[..., d:d + c]
    return out


def _scale(x, size, alpha, k, divide_alpha_by_size):
    alpha_eff = alpha / size if divide_alpha_by_size else alpha
    s = _window_sum(x * x, size // 2, (size - 1) // 2)
    # In-place keeps memory at one extra activation; scalars are rounded to x's dtype.
    s *= x.dtype.type(alpha_eff)
    s += x.dtype.type(k)
    return s, alpha_eff


def lrn(x: np.ndarray, *, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
        k: float = 2.0, divide_alpha_by_size: bool = True) -> np.ndarray:
    """Cross-channel LRN of an NHWC array (see module docstring for the exact formula)."""
    size, alpha, beta, k = checks.check_lrn_args(x, size, alpha, beta, k)
    scale, _ = _scale(x, size, alpha, k, divide_alpha_by_size)
    return x * np.power(scale, x.dtype.type(-beta))


def lrn_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, *, size: int = 5,
                 alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 divide_alpha_by_size: bool = True) -> np.ndarray:
    """dx of ``lrn`` given its input x, output y and the output gradient dy."""
    size, alpha, beta, k = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k)
    scale, alpha_eff = _scale(x, size, alpha, k, divide_alpha_by_size)
    t = dy * y / scale
    # Transposed window: channel c receives from j in [c - (size-1)//2, c + size//2].
    back = _window_sum(t, (size - 1) // 2, size // 2)
    dx = dy * np.power(scale, x.dtype.type(-beta))
    dx -= x.dtype.type(2.0 * alpha_eff * beta) * x * back
    return dx
