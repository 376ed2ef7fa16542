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
* Only the padding some window reads together with the image is materialised
  (``_Region``): outputs whose window lies wholly in the padding are the bias in the
  forward pass and add nothing to dx and dw, so a legal padding of 2^31 (checks.MAX_EXTENT)
  costs what the image costs. For padding smaller than the kernel (every window meets the
  image) the region is the whole output and the computation is the plain im2col above.
* ``precision`` (checks.PRECISIONS, keyword-only, default "fp32") rounds the operands of
  each GEMM exactly as the tensor-core kernels do (reference/precision.py), then computes
  in the input's dtype, as reference/linear.py does: the forward rounds x and w, dgrad dy
  and w, wgrad x and dy; the bias and db are never rounded. "tf32" and "bf16" round to
  their 10 / 7 mantissa bits. "3xtf32" computes unrounded: its big + residual TF32 split
  carries ~21 mantissa bits per operand and its three products recover float32-level
  accuracy, so its reference is the float32 one, compared at the float32 tolerance.
  The non-finite rules below (a filter with an inf tap, dy inf in the padding) read the
  rounded operands: rounding can carry a finite float32 near its maximum to inf, and the
  kernels then see that inf.
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
from .precision import round_operand

__all__ = ["conv2d", "conv2d_backward", "conv2d_dgrad", "conv2d_wgrad", "IM2COL_CHUNK_BYTES"]

#: Upper bound on the bytes of im2col columns materialised at once (one batch chunk).
#: 64 MiB keeps conv1 of AlexNet at batch 128 in ~10 chunks; bigger buys nothing
#: measurable on the CPU (the matmul is already large).
IM2COL_CHUNK_BYTES = 64 << 20


def _overlap(pad_before: int, extent: int, size: int, stride: int, count: int):
    """Outputs ``[lo, hi)`` along one axis whose window (padded indices ``o*stride`` to
    ``o*stride + size - 1``) meets the image (padded indices ``pad_before`` to
    ``pad_before + extent - 1``). The windows of the others lie wholly in the padding;
    they form a prefix and a suffix, since window starts increase with ``o``."""
    lo = 0 if pad_before < size else min(count, (pad_before - size) // stride + 1)
    hi = min(count, -(-(pad_before + extent) // stride))
    return lo, max(lo, hi)


class _Region:
    """The outputs ``[p0, p1) x [q0, q1)`` whose windows meet the image, and the part of
    the padded input those windows read: padded rows ``[a, a + rows)`` and columns
    ``[c, c + cols)``. Its size is below (H + 2R) x (W + 2S) whatever the padding, since
    consecutive windows in it start ``stride`` apart and all meet the image."""

    def __init__(self, g: ConvGeometry):
        top, _, left, _ = g.padding
        self.p0, self.p1 = _overlap(top, g.h, g.r, g.stride, g.p)
        self.q0, self.q1 = _overlap(left, g.w, g.s, g.stride, g.q)
        self.p, self.q = self.p1 - self.p0, self.q1 - self.q0
        self.full = (self.p, self.q) == (g.p, g.q)
        self.a, self.c = self.p0 * g.stride, self.q0 * g.stride
        self.rows = (self.p - 1) * g.stride + g.r if self.p else 0
        self.cols = (self.q - 1) * g.stride + g.s if self.q else 0
        # The image rows/columns inside the region, and where they sit in it.
        self.i0 = min(g.h, max(0, self.a - top))
        self.i1 = max(self.i0, min(g.h, self.a + self.rows - top))
        self.j0 = min(g.w, max(0, self.c - left))
        self.j1 = max(self.j0, min(g.w, self.c + self.cols - left))
        self.li, self.lj = top + self.i0 - self.a, left + self.j0 - self.c

    @property
    def empty(self) -> bool:
        return self.p == 0 or self.q == 0

    def image_part(self) -> tuple:
        """Index of the image's part inside a (N, rows, cols, C) region array."""
        return (slice(None), slice(self.li, self.li + self.i1 - self.i0),
                slice(self.lj, self.lj + self.j1 - self.j0), slice(None))

    def input(self, x: np.ndarray) -> np.ndarray:
        """The region of the zero-padded input, (N, rows, cols, C); a view of x when the
        region holds no padding."""
        n, c = x.shape[0], x.shape[3]
        if (self.li, self.lj, self.i1 - self.i0, self.j1 - self.j0) == (0, 0, self.rows, self.cols):
            return x[:, self.i0:self.i1, self.j0:self.j1, :]
        xr = np.zeros((n, self.rows, self.cols, c), dtype=x.dtype)
        xr[self.image_part()] = x[:, self.i0:self.i1, self.j0:self.j1, :]
        return xr


def _patches(xp: np.ndarray, g: ConvGeometry, p: int, q: int) -> np.ndarray:
    """Read-only (n, p, q, R, S, C) view: [n, i, j, r, s, c] = xp[n, i*st + r, j*st + s, c]."""
    sn, sh, sw, sc = xp.strides
    st = g.stride
    return as_strided(xp, shape=(xp.shape[0], p, q, g.r, g.s, g.c),
                      strides=(sn, sh * st, sw * st, sh, sw, sc), writeable=False)


def _batch_chunks(g: ConvGeometry, itemsize: int, p: int, q: int):
    """Yield (n0, n1) so that each chunk's columns (p x q outputs) fit in IM2COL_CHUNK_BYTES."""
    per_image = max(1, p * q * g.r * g.s * g.c_per_group * itemsize)
    step = max(1, IM2COL_CHUNK_BYTES // per_image)
    for n0 in range(0, g.n, step):
        yield n0, min(g.n, n0 + step)


def _nonfinite_filters(w: np.ndarray) -> np.ndarray:
    """(K,) bool: filters holding an inf or NaN. A window of padding multiplies its zeros
    by every tap, so such a filter's output there is NaN (0 * inf), as in the kernels."""
    return ~np.isfinite(w).all(axis=(1, 2, 3))


def _nonfinite_outside(dy: np.ndarray, reg: _Region) -> np.ndarray:
    """(K,) bool: channels of dy holding an inf or NaN at an output whose window is all
    padding. wgrad multiplies it by that window's zeros (NaN), as the kernels do. Scanned
    in slices of about 2^20 elements, so a huge dy costs no copy of its size."""
    blocks = (dy[:, :reg.p0], dy[:, reg.p1:], dy[:, reg.p0:reg.p1, :reg.q0], dy[:, reg.p0:reg.p1, reg.q1:])
    bad = np.zeros(dy.shape[3], dtype=bool)
    for blk in blocks:
        step = max(1, (1 << 20) // max(1, blk.shape[0] * blk.shape[2] * blk.shape[3]))
        for i in range(0, blk.shape[1], step):
            bad |= ~np.isfinite(blk[:, i:i + step]).all(axis=(0, 1, 2))
    return bad


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
           stride: int = 1, padding=0, groups: int = 1, relu: bool = False, precision: str = "fp32") -> np.ndarray:
    """Grouped 2-D convolution. x (N, H, W, C), w (K, R, S, C/groups), b (K,) or None.

    ``padding``: int, (ph, pw) or (top, bottom, left, right). Returns y (N, P, Q, K).
    Outputs whose window lies wholly in the padding are b (NaN for a filter with an inf or
    NaN tap); only the padding some window reads together with the image is allocated.
    ``relu=True`` returns max(0, y) (§3.1), what the kernels' fused epilogue computes.
    precision: "fp32" (default), "3xtf32", "tf32" or "bf16" (module docstring: x and w
    rounded); ValueError for any other value.
    """
    g = checks.check_conv_args(x, w, b, stride, padding, groups)
    checks.check_precision("conv2d", precision)
    x, w = round_operand(x, precision), round_operand(w, precision)
    cg, kg, rsc = g.c_per_group, g.k_per_group, g.r * g.s * g.c_per_group
    reg = _Region(g)
    y = np.empty((g.n, g.p, g.q, g.k), dtype=x.dtype)
    if reg.full:
        y_sub = y
    else:
        outside = np.zeros(g.k, dtype=x.dtype) if b is None else b.copy()
        outside[_nonfinite_filters(w)] = np.nan
        y[...] = outside
        if reg.empty:
            return np.maximum(y, 0, out=y) if relu else y
        y_sub = np.empty((g.n, reg.p, reg.q, g.k), dtype=x.dtype)
    xp = reg.input(x)
    # (Kg, R·S·Cg) filter matrices: contiguous views of the KRSC array, no copy.
    wmats = w.reshape(g.groups, kg, rsc)
    for n0, n1 in _batch_chunks(g, x.itemsize, reg.p, reg.q):
        patches = _patches(xp[n0:n1], g, reg.p, reg.q)
        rows = (n1 - n0) * reg.p * reg.q
        y_rows = y_sub[n0:n1].reshape(rows, g.k)
        for gi in range(g.groups):
            cols = patches[..., gi * cg:(gi + 1) * cg].reshape(rows, rsc)  # the im2col copy
            # out= a column block of y: BLAS writes it in place (row stride K).
            np.matmul(cols, wmats[gi].T, out=y_rows[:, gi * kg:(gi + 1) * kg])
    if b is not None:
        y_sub += b
    if not reg.full:
        y[:, reg.p0:reg.p1, reg.q0:reg.q1] = y_sub
    if relu:
        np.maximum(y, 0, out=y)
    return y


def conv2d_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, *,
                    stride: int = 1, padding=0, groups: int = 1, need_dx: bool = True, precision: str = "fp32"):
    """Gradients of ``conv2d`` -> (dx (N, H, W, C), dw (K, R, S, C/groups), db (K,)).

    db is always returned; a layer without a bias ignores it. Outputs whose window lies
    wholly in the padding add nothing to dx and dw (NaN to dw[k] where dy[..., k] is inf
    or NaN there: 0 * inf). ``need_dx=False`` (a layer whose input needs no gradient, e.g.
    the data) skips the dgrad: dx is None. precision as for ``conv2d``: it rounds the
    operands of the dgrad (dy, w) and wgrad (x, dy) GEMMs; db sums the unrounded dy.
    """
    g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups)
    return _backward(g, x, w, dy, need_dx, precision, "conv2d_backward")


def _backward(g: ConvGeometry, x, w, dy, need_dx: bool, precision: str, op: str):
    """conv2d_backward on checked arguments; `op` names the public op in errors."""
    checks.check_precision(op, precision)
    cg, kg, rsc = g.c_per_group, g.k_per_group, g.r * g.s * g.c_per_group
    st = g.stride
    reg = _Region(g)
    dx = np.zeros(x.shape, dtype=x.dtype) if need_dx else None
    dw = np.zeros(w.shape, dtype=w.dtype)
    db = dy.sum(axis=(0, 1, 2))
    # Both GEMMs read dy rounded the same way; db is a plain float sum of the unrounded dy.
    x, w, dy = (round_operand(a, precision) for a in (x, w, dy))
    if not reg.full:
        dw[_nonfinite_outside(dy, reg)] = np.nan
    if reg.empty:
        return dx, dw, db
    xp = reg.input(x)
    dxp = np.zeros((g.n, reg.rows, reg.cols, g.c), dtype=x.dtype) if need_dx else None
    dy_sub = dy if reg.full else dy[:, reg.p0:reg.p1, reg.q0:reg.q1]
    dw_mats = dw.reshape(g.groups, kg, rsc)
    wmats = w.reshape(g.groups, kg, rsc)
    # The last region row/col a tap reaches: r + st*(p-1); slice ends are exclusive.
    h_span, w_span = st * (reg.p - 1) + 1, st * (reg.q - 1) + 1
    for n0, n1 in _batch_chunks(g, x.itemsize, reg.p, reg.q):
        nc = n1 - n0
        patches = _patches(xp[n0:n1], g, reg.p, reg.q)
        rows = nc * reg.p * reg.q
        dy_rows = dy_sub[n0:n1].reshape(rows, g.k)
        dxp_chunk = dxp[n0:n1] if need_dx else None
        # dcols[n, p, q, r, s, c]: what output (p, q) sends back to tap (r, s), channel c.
        if g.groups == 1 or not need_dx:
            dcols = None
        else:
            dcols = np.empty((nc, reg.p, reg.q, g.r, g.s, g.c), dtype=x.dtype)
        for gi in range(g.groups):
            ks, cs = slice(gi * kg, (gi + 1) * kg), slice(gi * cg, (gi + 1) * cg)
            dy_g = dy_rows[:, ks]
            cols = patches[..., cs].reshape(rows, rsc)
            # wgrad: (Kg, rows) · (rows, R·S·Cg); chunks add in order -> deterministic.
            dw_mats[gi] += dy_g.T @ cols
            if not need_dx:
                continue
            # dgrad columns: (rows, Kg) · (Kg, R·S·Cg).
            dcols_g = (dy_g @ wmats[gi]).reshape(nc, reg.p, reg.q, g.r, g.s, cg)
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
    if need_dx:
        dx[:, reg.i0:reg.i1, reg.j0:reg.j1, :] = dxp[reg.image_part()]
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


def conv2d_dgrad(dy: np.ndarray, w: np.ndarray, x_shape, *, stride: int = 1, padding=0, groups: int = 1,
                 precision: str = "fp32"):
    """dgrad alone: dx (N, H, W, C) = dL/dx of ``conv2d`` for an input of shape ``x_shape``.

    dy (N, P, Q, K) and w (K, R, S, C/groups) as in conv2d_backward, whose dx this is
    (dx does not depend on x's values). precision as for conv2d_backward (dy and w
    rounded). Raises what conv2d_backward raises.
    """
    x = ShapeOnly("conv2d_dgrad", "x_shape", x_shape, getattr(dy, "dtype", np.float64))
    g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_dgrad")
    return _backward(g, np.zeros(x.shape, dtype=x.dtype), w, dy, True, precision, "conv2d_dgrad")[0]


def conv2d_wgrad(x: np.ndarray, dy: np.ndarray, w_shape, *, stride: int = 1, padding=0, groups: int = 1,
                 precision: str = "fp32"):
    """wgrad alone: (dw (K, R, S, C/groups), db (K,)) of ``conv2d`` for filters of shape
    ``w_shape``; conv2d_backward's dw and db (they do not depend on w's values).
    precision as for conv2d_backward (x and dy rounded; db unrounded)."""
    w = ShapeOnly("conv2d_wgrad", "w_shape", w_shape, getattr(x, "dtype", np.float64))
    g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_wgrad")
    _, dw, db = _backward(g, x, np.zeros(w.shape, dtype=w.dtype), dy, False, precision, "conv2d_wgrad")
    return dw, db
