"""Convolution as implicit GEMM (csrc/conv_fwd.cuh, conv_dgrad.cuh, conv_wgrad.cuh; on
tensor cores csrc/conv_tc_fwd.cuh, conv_tc_dgrad.cuh, conv_tc_wgrad.cuh).

Same signatures as cuda_convnet.reference.conv, plus keyword-only extensions: on the
forward ``relu=True`` fuses the ReLU into the convolution's epilogue (one pass over y
instead of two), for the Net's conv+ReLU layers; on every op ``precision`` ("fp32", the
default: the float32 SIMT kernels; "3xtf32", "tf32", "bf16": the tensor-core kernels,
operands rounded as cuda_convnet/reference/precision.py; db is always a float32 sum).
Every shape the reference accepts runs (C = 3, odd sizes, N = 1, any stride up to checks.MAX_EXTENT, asymmetric padding,
groups): the kernels' grid limits (K/groups and, backward, C/groups <= 65535*64;
backward, groups * stride^2 <= 65535) are checked by cuda_convnet.checks for every
backend, the reference included.
"""
from __future__ import annotations

import numpy as np

from ... import checks
from ...reference.conv import ShapeOnly


def _shape_args(g: checks.ConvGeometry) -> dict:
    top, bottom, left, right = g.padding
    return dict(n=g.n, h=g.h, w=g.w, c=g.c, k=g.k, r=g.r, s=g.s, stride=g.stride, pad_top=top,
                pad_bottom=bottom, pad_left=left, pad_right=right, groups=g.groups)


class ConvOps:
    #: Rows of N*P*Q per chunk of the wgrad/bias-gradient reduction; 0 lets the launcher
    #: choose (csrc/conv_wgrad.cu, conv2d_wgrad_plan: a function of the shape only). Tests set
    #: it small to exercise the multi-chunk path on small shapes.
    wgrad_chunk_rows = 0
    # The forward's kernel: kernel_versions["conv2d"] (base.py). 0 lets the launcher pick
    # (conv_fwd_kernel2 where C/groups % 4 == 0 and x, w are 16-byte aligned, else
    # conv_fwd_kernel3 where its 32-bit tap offsets fit, else conv_fwd_kernel1); 1, 2 or 3 forces one.
    # All give bit-identical results.
    # dgrad's kernel: kernel_versions["conv2d_dgrad"]. 0 lets the launcher pick
    # (conv_dgrad_kernel2 where K/groups and C/groups % 4 == 0, C/groups > 16 and dy, w are
    # 16-byte aligned, else conv_dgrad_kernel1); 1 or 2 forces one. Bit-identical results.
    # The wgrad kernel (conv2d_wgrad and conv2d_backward's dw): kernel_versions["conv2d_wgrad"].
    # 0 lets the launcher pick (conv_wgrad_kernel2 where C/groups and K/groups % 4 == 0 and x,
    # dy are 16-byte aligned; else conv_wgrad_kernel3 where K/groups % 4 == 0 and dy is
    # aligned; else conv_wgrad_kernel1; kernel4/kernel5, kernel2/kernel3 with a 96-filter tile,
    # instead of them where K/groups % 96 == 0 and % 128 != 0); 1-5 forces one. All give
    # bit-identical dw.

    def conv2d(self, x, w, b=None, *, stride=1, padding=0, groups=1, relu=False, precision="fp32"):
        """y = conv(x, w) + b (NHWC x KRSC -> NPQK); ``relu=True`` applies ReLU in the epilogue.
        ``precision``: "fp32" (default), "3xtf32", "tf32" or "bf16"; ValueError otherwise."""
        g = checks.check_conv_args(x, w, b, stride, padding, groups)
        checks.check_precision("conv2d", precision)
        self._float32("conv2d", x=x, w=w, b=b)
        if not (g.n and g.c and g.k):  # empty batch, no channels or no filters: no launch
            y = self.xp.zeros((g.n, g.p, g.q, g.k), dtype=np.float32)
            if b is not None:
                y += b
            return self.xp.maximum(y, 0) if relu else y
        y = self._empty((g.n, g.p, g.q, g.k))
        if precision != "fp32":
            self._conv_tc_has_one_version("conv2d", precision)
            self.ext.conv2d_tc(x=self._ptr(x), wt=self._ptr(w), b=self._ptr(b), y=self._ptr(y), **_shape_args(g),
                               relu=bool(relu), precision=precision, stream=self._stream())
            return y
        self.ext.conv2d(x=self._ptr(x), wt=self._ptr(w), b=self._ptr(b), y=self._ptr(y), **_shape_args(g),
                        relu=bool(relu), stream=self._stream(), version=self._version("conv2d"))
        return y

    def _tc_kernel(self, op, precision) -> bool:
        """Whether ``precision`` runs ``op`` on its tensor-core kernel (ValueError for an unknown
        precision, or for a forced float32 kernel version, which that kernel cannot honour)."""
        checks.check_precision(op, precision)
        if precision == "fp32":
            return False
        self._conv_tc_has_one_version(op, precision)
        return True

    def _conv_tc_has_one_version(self, op, precision):
        if self._version(op):
            fp32, tc = {"conv2d": ("conv_fwd", "conv_tc_fwd_kernel1"),
                        "conv2d_dgrad": ("conv_dgrad", "conv_tc_dgrad_kernel1"),
                        "conv2d_wgrad": ("conv_wgrad", "conv_tc_wgrad_kernel1")}[op]
            raise ValueError(f"{op}: kernel_versions[{op!r}] picks a {fp32}_kernel<n> (precision 'fp32'); "
                             f"precision {precision!r} runs {tc}, which has one version")

    def _kernel_version_conv2d(self, x, w, b=None, *, stride=1, padding=0, groups=1, relu=False,
                               precision="fp32") -> int:
        # 1: the general 64 x 64 tile; 2, 3: the 128 x 128 tile's vector and scalar gathers
        # (csrc/conv.h, conv2d_version); a tensor-core precision: conv_tc_fwd_kernel1, the only one.
        g = checks.check_conv_args(x, w, b, stride, padding, groups)
        if self._tc_kernel("conv2d", precision):
            return 1
        return self.ext.conv2d_version(x=self._ptr(x), wt=self._ptr(w), **_shape_args(g),
                                       version=self._version("conv2d"))

    def conv2d_backward(self, x, w, dy, *, stride=1, padding=0, groups=1, need_dx=True, precision="fp32"):
        """(dx, dw, db): dgrad and wgrad implicit GEMMs; dw and db reduce in a fixed order.
        ``need_dx=False`` launches no dgrad and returns dx None (the data layer's input).
        ``precision`` as for conv2d (both GEMMs)."""
        checks.check_conv_backward_args(x, w, dy, stride, padding, groups)
        checks.check_precision("conv2d_backward", precision)
        self._float32("conv2d_backward", x=x, w=w, dy=dy)
        kw = dict(stride=stride, padding=padding, groups=groups, precision=precision)
        dx = self.conv2d_dgrad(dy, w, x.shape, **kw) if need_dx else None
        dw, db = self.conv2d_wgrad(x, dy, w.shape, **kw)
        return dx, dw, db

    def conv2d_dgrad(self, dy, w, x_shape, *, stride=1, padding=0, groups=1, precision="fp32"):
        """dx (N, H, W, C) alone (csrc/conv_dgrad.cuh, or conv_tc_dgrad.cuh at a tensor-core
        ``precision``): conv2d_backward's dx, one launch."""
        x = ShapeOnly("conv2d_dgrad", "x_shape", x_shape, getattr(dy, "dtype", np.float32))
        g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_dgrad")
        checks.check_precision("conv2d_dgrad", precision)
        self._float32("conv2d_dgrad", w=w, dy=dy)
        if not (g.n and g.c and g.k):  # nothing flows back: zero gradient, no launch
            return self.xp.zeros(x.shape, dtype=np.float32)
        dx = self._empty(x.shape)
        if precision != "fp32":
            self._conv_tc_has_one_version("conv2d_dgrad", precision)
            self.ext.conv2d_dgrad_tc(dy=self._ptr(dy), wt=self._ptr(w), dx=self._ptr(dx), **_shape_args(g),
                                     precision=precision, stream=self._stream())
            return dx
        self.ext.conv2d_dgrad(dy=self._ptr(dy), wt=self._ptr(w), dx=self._ptr(dx), **_shape_args(g),
                              stream=self._stream(), version=self._version("conv2d_dgrad"))
        return dx

    def _kernel_version_conv2d_dgrad(self, dy, w, x_shape, *, stride=1, padding=0, groups=1,
                                     precision="fp32") -> int:
        # 1: the general kernel, 2: the pipelined 128-row tile (csrc/conv.h, conv2d_dgrad_version;
        # dx is the op's own 16-byte aligned allocation); a tensor-core precision:
        # conv_tc_dgrad_kernel1, the only one.
        x = ShapeOnly("conv2d_dgrad", "x_shape", x_shape, getattr(dy, "dtype", np.float32))
        g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_dgrad")
        if self._tc_kernel("conv2d_dgrad", precision):
            return 1
        return self.ext.conv2d_dgrad_version(dy=self._ptr(dy), wt=self._ptr(w), dx=0, **_shape_args(g),
                                             version=self._version("conv2d_dgrad"))

    def conv2d_dgrad_plan(self, g: checks.ConvGeometry, kernel: int = 2) -> dict:
        """The block tile {"block_m", "block_n"} conv_dgrad_kernel<kernel> runs geometry ``g``
        in (csrc/conv_dgrad.cu, conv2d_dgrad_tile): kernel2's block_n is 48, 64 or 128, the
        fewest padded columns of C/groups."""
        return self.ext.conv2d_dgrad_plan(**_shape_args(g), kernel=kernel)

    def conv2d_wgrad(self, x, dy, w_shape, *, stride=1, padding=0, groups=1, precision="fp32"):
        """(dw (K, R, S, C/groups), db (K,)) alone (csrc/conv_wgrad.cuh, or conv_tc_wgrad.cuh
        at a tensor-core ``precision``): conv2d_backward's dw and db, reduced in a fixed order
        (split-K chunks, then a fixed-order sum)."""
        w = ShapeOnly("conv2d_wgrad", "w_shape", w_shape, getattr(x, "dtype", np.float32))
        g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_wgrad")
        checks.check_precision("conv2d_wgrad", precision)
        self._float32("conv2d_wgrad", x=x, dy=dy)
        if not (g.n and g.c and g.k):  # nothing to reduce: zero gradients, no launch
            return self.xp.zeros(w.shape, dtype=np.float32), dy.sum(axis=(0, 1, 2), dtype=np.float32)
        shape = _shape_args(g)
        chunk_rows = self._tuning("conv2d_wgrad", "wgrad_chunk_rows")
        dw = self._empty(w.shape)
        db = self._empty((g.k,))
        if precision != "fp32":
            self._conv_tc_has_one_version("conv2d_wgrad", precision)
            plan = self.ext.conv2d_wgrad_tc_plan(**shape, chunk_rows=chunk_rows)
            ws = self._empty((plan["workspace_floats"],)) if plan["workspace_floats"] else None
            self.ext.conv2d_wgrad_tc(x=self._ptr(x), dy=self._ptr(dy), dw=self._ptr(dw), db=self._ptr(db),
                                     workspace=self._ptr(ws), workspace_floats=plan["workspace_floats"], **shape,
                                     chunk_rows=chunk_rows, precision=precision, stream=self._stream())
            return dw, db
        plan = self.conv2d_wgrad_plan(g)
        ws = self._empty((plan["workspace_floats"],)) if plan["workspace_floats"] else None
        self.ext.conv2d_wgrad(x=self._ptr(x), dy=self._ptr(dy), dw=self._ptr(dw), db=self._ptr(db),
                              workspace=self._ptr(ws), workspace_floats=plan["workspace_floats"], **shape,
                              chunk_rows=chunk_rows, stream=self._stream(),
                              version=self._version("conv2d_wgrad"))
        return dw, db

    def _kernel_version_conv2d_wgrad(self, x, dy, w_shape, *, stride=1, padding=0, groups=1,
                                     precision="fp32") -> int:
        # 1: the general kernel, 2: the 128 x 128 cp.async pipeline with 16-byte copies of x,
        # 3: the same with 4-byte copies of x (C/groups % 4 != 0), 4 and 5: 2 and 3 with a 96-filter
        # tile (K/groups = 96, 192) (csrc/conv.h, conv2d_wgrad_version);
        # a tensor-core precision: conv_tc_wgrad_kernel1, the only one.
        w = ShapeOnly("conv2d_wgrad", "w_shape", w_shape, getattr(x, "dtype", np.float32))
        g = checks.check_conv_backward_args(x, w, dy, stride, padding, groups, op="conv2d_wgrad")
        if self._tc_kernel("conv2d_wgrad", precision):
            return 1
        return self.ext.conv2d_wgrad_version(x=self._ptr(x), dy=self._ptr(dy), **_shape_args(g),
                                             version=self._version("conv2d_wgrad"))

    def conv2d_wgrad_plan(self, g: checks.ConvGeometry) -> dict:
        """How conv2d_backward splits the dw/db reduction for geometry ``g`` (chunk sizes,
        counts, workspace floats): csrc/conv_wgrad.cu, conv2d_wgrad_plan."""
        return self.ext.conv2d_wgrad_plan(**_shape_args(g),
                                          chunk_rows=self._tuning("conv2d_wgrad_plan", "wgrad_chunk_rows"))
