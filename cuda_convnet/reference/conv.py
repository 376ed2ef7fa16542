"""2-D convolution, NHWC x KRSC, with groups (§3.2, §3.5; ARCHITECTURE.md §3 and §4).

The reference definition every backend must reproduce. Cross-correlation, as in every
CNN library (no filter flip)::

    y[n, p, q, g*Kg + k] = b[g*Kg + k] + Σ_{r, s, c<Cg}
        w[g*Kg + k, r, s, c] · xpad[n, p*stride + r, q*stride + s, g*Cg + c]

with ``xpad`` the input zero-padded by ``(top, bottom, left, right)``, ``Cg = C/groups``
input channels and ``Kg = K/groups`` filters per group. Output sizes come from
``cuda_convnet.shapes.conv_output_size`` (floor rule). ``groups=2`` is the one-device form
of the paper's two towers: conv2, conv4 and conv5 see only their own tower's maps (§3.5).

How it is computed (written for speed *and* to mirror the CUDA implicit GEMM):

* im2col without a Python loop: ``as_strided`` gives a (N, P, Q, R, S, C) view of the
  padded input; reshaping one group's slice to (N·P·Q, R·S·Cg) makes the only copy, and
  ONE matmul per group multiplies it by the (Kg, R·S·Cg) filter matrix. The column order
  (r, s, c) is the KRSC filter order, so the filters need no transpose or copy. This is
  exactly the forward GEMM of ARCHITECTURE.md §4 (M = N·P·Q, N = Kg, K = R·S·Cg).
* wgrad is the same columns: dw_g = dy_gᵀ · cols_g (M = Kg, N = R·S·Cg, K = N·P·Q).
* dgrad: dcols_g = dy_g · w_g (one matmul per group), then a col2im scatter-add with a
  loop over the R·S filter taps only (each tap is one strided, fully vectorised add over
  N, P, Q and all C); never a loop over pixels or channels.
* The batch is processed in chunks so that the materialised columns stay under
  ``IM2COL_CHUNK_BYTES`` (AlexNet conv1 at batch 128 would otherwise need ~560 MB of
  float32 columns). Chunk partial sums of dw/db are added in a fixed order, so results
  are deterministic.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import checks
from ..checks import ConvGeometry

__all__ = ["conv2d", "conv2d_backward", "conv2d_dgrad", "conv2d_wgrad", "IM2COL_CHUNK_BYTES"]

#: Upper bound on the bytes of im2col columns materialised at once (one batch chunk).
#: 64 MiB keeps conv1 of AlexNet at batch 128 in ~10 chunks; bigger buys nothing
#: measurable on the CPU (the matmul is already large).
IM2COL_CHUNK_BYTES = 64 << 20


def _pad(x: np.ndarray, pad) -> np.ndarray:
    """Zero-pad the H and W axes of an NHWC array by (top, bottom, left, right)."""
    top, bottom, left, right = pad
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    xp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    xp[:, top:top + h, left:left + w, :] = x
    return xp


def _patches(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Read-only (n, P, Q, R, S, C) view: [n, p, q, r, s, c] = xp[n, p*st + r, q*st + s, c]."""
    sn, sh, sw, sc = xp.strides
    st = g.stride
    return as_strided(xp, shape=(xp.shape[0], g.p, g.q, g.r, g.s, g.c),
                      strides=(sn, sh * st, sw * st, sh, sw, sc), writeable=False)


def _batch_chunks(g: ConvGeometry, itemsize: int):
    """Yield (n0, n1) so that each chunk's columns fit in IM2COL_CHUNK_BYTES."""
    per_image = max(1, g.p * g.q * g.r * g.s * g.c_per_group * itemsize)
    step = max(1, IM2COL_CHUNK_BYTES // per_image)
    for n0 in range(0, g.n, step):
        yield n0, min(g.n, n0 + step)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
           stride: int = 1, padding=0, groups: int = 1, relu: bool = False) -> np.ndarray:
    """Grouped 2-D convolution. x (N, H, W, C), w (K, R, S, C/groups), b (K,) or None.

    ``padding``: int, (ph, pw) or (top, bottom, left, right). Returns y (N, P, Q, K).
    ``relu=True`` returns max(0, y) (§3.1), what the kernels' fused epilogue computes.
    """
    g = checks.check_conv_args(x, w, b, stride, padding, groups)
    cg, kg, rsc = g.c_per_group, g.k_per_group, g.r * g.s * g.c_per_group
    y = np.empty((g.n, g.p, g.q, g.k), dtype=x.dtype)
    xp = _pad(x, g.padding)
    # (Kg, R·S·Cg) filter matrices: contiguous views of the KRSC array, no copy.
    wmats = w.reshape(g.groups, kg, rsc)
    for n0, n1 in _batch_chunks(g, x.itemsize):
        patches = _patches(xp[n0:n1], g)
        rows = (n1 - n0) * g.p * g.q
        y_rows = y[n0:n1].reshape(rows, g.k)
        for gi in range(g.groups):
            cols = patches[..., gi * cg:(gi + 1) * cg].reshape(rows, rsc)  # the im2col copy
            # out= a column block of y: BLAS writes it in place (row stride K).
            np.matmul(cols, wmats[gi].T, out=y_rows[:, gi * kg:(gi + 1) * kg])
    if b is not None:
        y += b
    if relu:
        np.maximum(y, 0, out=y)
    return y


def conv2d_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, *,
                    stride: int = 1, padding=0, groups: int = 1, need_dx: bool = True):
    """Gradients of ``conv2d`` -> (dx (N, H, W, C), dw (K, R, S, C/groups), db (K,)).

    db is always returned; a layer without a bias ignores it. ``need_dx=False`` (a layer
    whose input needs no gradient, e.g. the data) skips the dgrad: dx is None.
    """
    g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups)
    cg, kg, rsc = g.c_per_group, g.k_per_group, g.r * g.s * g.c_per_group
    top, bottom, left, right = g.padding
    st = g.stride
    xp = _pad(x, g.padding)
    dxp = np.zeros(xp.shape, dtype=x.dtype) if need_dx else None
    dw = np.zeros(w.shape, dtype=w.dtype)
    dw_mats = dw.reshape(g.groups, kg, rsc)
    wmats = w.reshape(g.groups, kg, rsc)
    # The last padded row/col a tap reaches: r + st*(P-1); slice ends are exclusive.
    h_span, w_span = st * (g.p - 1) + 1, st * (g.q - 1) + 1
    for n0, n1 in _batch_chunks(g, x.itemsize):
        nc = n1 - n0
        patches = _patches(xp[n0:n1], g)
        rows = nc * g.p * g.q
        dy_rows = dy[n0:n1].reshape(rows, g.k)
        dxp_chunk = dxp[n0:n1] if need_dx else None
        # dcols[n, p, q, r, s, c]: what output (p, q) sends back to tap (r, s), channel c.
        if g.groups == 1 or not need_dx:
            dcols = None
        else:
            dcols = np.empty((nc, g.p, g.q, g.r, g.s, g.c), dtype=x.dtype)
        for gi in range(g.groups):
            ks, cs = slice(gi * kg, (gi + 1) * kg), slice(gi * cg, (gi + 1) * cg)
            dy_g = dy_rows[:, ks]
            cols = patches[..., cs].reshape(rows, rsc)
            # wgrad: (Kg, rows) · (rows, R·S·Cg); chunks add in order -> deterministic.
            dw_mats[gi] += dy_g.T @ cols
            if not need_dx:
                continue
            # dgrad columns: (rows, Kg) · (Kg, R·S·Cg).
            dcols_g = (dy_g @ wmats[gi]).reshape(nc, g.p, g.q, g.r, g.s, cg)
            if dcols is None:
                dcols = dcols_g
            else:
                dcols[..., cs] = dcols_g
        if not need_dx:
            continue
        # col2im: one strided add per filter tap (R·S iterations, all groups at once).
        # Within a tap distinct outputs hit distinct inputs, so the add never collides.
        for r in range(g.r):
            for s in range(g.s):
                dxp_chunk[:, r:r + h_span:st, s:s + w_span:st, :] += dcols[:, :, :, r, s, :]
    db = dy.sum(axis=(0, 1, 2))
    if not need_dx:
        return None, dw, db
    dx = np.ascontiguousarray(dxp[:, top:top + g.h, left:left + g.w, :])
    return dx, dw, db


class ShapeOnly:
    """An array's metadata without its data, for the checks of an op that needs a tensor's
    shape but not its values (dgrad needs x's shape, wgrad w's)."""

    def __init__(self, op: str, name: str, shape, dtype):
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: {name} must be a shape (a tuple of ints), got {shape!r}") from None
        if len(dims) != 4 or min(dims) < 0 or any(d != s for d, s in zip(dims, shape)):
            raise ValueError(f"{op}: {name} must be 4 non-negative ints, got {tuple(shape)!r}")
        self.shape, self.ndim, self.dtype = dims, 4, np.dtype(dtype)
        self.flags = _CONTIGUOUS


class _Flags:
    c_contiguous = True


_CONTIGUOUS = _Flags()


def conv2d_dgrad(dy: np.ndarray, w: np.ndarray, x_shape, *, stride: int = 1, padding=0, groups: int = 1):
    """dgrad alone: dx (N, H, W, C) = dL/dx of ``conv2d`` for an input of shape ``x_shape``.

    dy (N, P, Q, K) and w (K, R, S, C/groups) as in conv2d_backward, whose dx this is
    (dx does not depend on x's values). Raises what conv2d_backward raises.
    """
    x = ShapeOnly("conv2d_dgrad", "x_shape", x_shape, getattr(dy, "dtype", np.float64))
    checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_dgrad")
    return conv2d_backward(np.zeros(x.shape, dtype=x.dtype), w, dy, stride=stride, padding=padding, groups=groups)[0]


def conv2d_wgrad(x: np.ndarray, dy: np.ndarray, w_shape, *, stride: int = 1, padding=0, groups: int = 1):
    """wgrad alone: (dw (K, R, S, C/groups), db (K,)) of ``conv2d`` for filters of shape
    ``w_shape``; conv2d_backward's dw and db (they do not depend on w's values)."""
    w = ShapeOnly("conv2d_wgrad", "w_shape", w_shape, getattr(x, "dtype", np.float64))
    checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_wgrad")
    _, dw, db = conv2d_backward(x, np.zeros(w.shape, dtype=w.dtype), dy, stride=stride, padding=padding,
                                groups=groups, need_dx=False)
    return dw, db
