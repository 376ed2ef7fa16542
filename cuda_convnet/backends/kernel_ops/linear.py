"""The fully connected layers on the GEMM kernels: csrc/gemm.cuh (float32 SIMT, precision
"fp32") and csrc/gemm_tc.cuh (tensor cores: "3xtf32", "tf32", "bf16"; the precisions are
described in cuda_convnet/reference/linear.py, with their PyTorch equivalents)."""
from __future__ import annotations

import numpy as np

from ... import checks


class LinearOps:
    #: Split-K of the float32 GEMMs (csrc/gemm.cu, gemm_plan): 0 lets the launcher choose
    #: from the device's SM count (enough K slices that a small grid fills one wave), 1
    #: never splits, n > 1 at most n slices (tests set it to exercise both paths).
    gemm_splits = 0

    def gemm_plan(self, m, n, k, version=0) -> dict:
        """How the float32 GEMM runs an m x n x k product on this device: {"version",
        "splits", "k_chunk", "workspace_floats"} (csrc/gemm.cu, gemm_plan); version as
        kernel_versions (0: the launcher picks)."""
        splits = self._tuning("gemm_plan", "gemm_splits")
        return self.ext.gemm_plan(M=m, N=n, K=k, version=version, splits=splits)

    def _gemm(self, op, precision, a, b, c, bias, m, n, k, trans_a, trans_b, stream, relu=False, beta=0.0):
        """One GEMM C[m,n] = op(a) op(b) + beta C (+ bias, then ReLU if `relu`) on the kernel of
        `precision`; `op` names the caller, whose kernel_versions entry picks the fp32 kernel."""
        args = dict(a=self._ptr(a), b=self._ptr(b), c=self._ptr(c), bias=self._ptr(bias), M=m, N=n, K=k,
                    trans_a=trans_a, trans_b=trans_b, alpha=1.0, beta=float(beta), relu=bool(relu), stream=stream)
        if precision == "fp32":
            version = self._version(op)
            # A split-K plan writes its K slices to a workspace allocated here, as conv2d_wgrad does.
            splits = self._tuning(op, "gemm_splits")
            floats = self.ext.gemm_plan(M=m, N=n, K=k, version=version, splits=splits)["workspace_floats"]
            ws = self._empty((floats,)) if floats else None
            self.ext.gemm(**args, version=version, workspace=self._ptr(ws), workspace_floats=floats, splits=splits)
        else:
            self._tc_has_one_version(op, precision)
            self.ext.gemm_tc(**args, precision=precision)

    def _tc_has_one_version(self, op, precision):
        if self._version(op):
            raise ValueError(f"{op}: kernel_versions[{op!r}] picks a gemm_kernel<n> (precision 'fp32'); precision "
                             f"{precision!r} runs gemm_tc, which has one version")

    def _kernel_version_linear(self, x, w, b=None, *, precision="fp32", relu=False) -> int:
        # The one GEMM of the forward: M = batch, N = out features (csrc/gemm.h, gemm_version).
        n, _, fan_out = checks.check_linear_args(x, w, b)
        checks.check_precision("linear", precision)
        if precision != "fp32":
            self._tc_has_one_version("linear", precision)
            return 1
        return self.ext.gemm_version(M=n, N=fan_out, version=self._version("linear"))

    def linear(self, x, w, b=None, *, precision="fp32", relu=False):
        """y = x @ w.T + b: one GEMM with the bias (and with ``relu=True`` the ReLU) fused
        into its epilogue.

        x (N, in), w (out, in), b (out,) or None, float32 -> y (N, out) float32.
        precision: "fp32" (default), "3xtf32", "tf32" or "bf16"; ValueError otherwise.
        """
        n, fan_in, fan_out = checks.check_linear_args(x, w, b)
        checks.check_precision("linear", precision)
        self._float32("linear", x=x, w=w, b=b)
        if not (n and fan_in and fan_out):  # an empty product: y = b (or 0), no launch
            y = self.xp.zeros((n, fan_out), dtype=np.float32)
            y = y + b if b is not None else y
            return self.xp.maximum(y, 0) if relu else y
        y = self._empty((n, fan_out))
        if n:
            # op(A) = x [N, in]; op(B) = w^T, w stored [out, in] = [N_gemm, K] -> trans_b.
            self._gemm("linear", precision, x, w, y, b, n, fan_out, fan_in, False, True, self._stream(), relu=relu)
        return y

    def linear_backward(self, x, w, dy, *, precision="fp32", need_dx=True, dx_accumulate=None):
        """(dx, dw, db) = (dy @ w, dy.T @ x, dy summed over the batch).

        Shapes as ``linear``; dy (N, out). precision as for ``linear`` (dgrad and wgrad
        GEMMs; db is always the float32 column sum, in row order). ``need_dx=False``
        launches no dx GEMM and returns dx None (an input that needs no gradient).
        ``dx_accumulate`` (N, in) float32: the dx GEMM runs with beta = 1 into it and it is
        returned as dx (no separate add where the input feeds several layers).
        """
        acc = dx_accumulate if need_dx else None
        n, fan_in, fan_out = checks.check_linear_backward_args(x, w, dy, acc)
        checks.check_precision("linear_backward", precision)
        self._float32("linear_backward", x=x, w=w, dy=dy, dx_accumulate=acc)
        if not (n and fan_in and fan_out):  # an empty product on some side: no launch
            zeros = self.xp.zeros
            dx = (acc if acc is not None else zeros((n, fan_in), dtype=np.float32)) if need_dx else None
            return dx, zeros((fan_out, fan_in), dtype=np.float32), dy.sum(axis=0, dtype=np.float32)
        dx = (acc if acc is not None else self._empty((n, fan_in))) if need_dx else None
        dw = self._empty((fan_out, fan_in))
        db = self._empty((fan_out,))
        s = self._stream()
        if need_dx:
            # dx [N, in] = dy [N, out] . w [out, in] (+ dx when accumulating): both stored as op() wants.
            self._gemm("linear_backward", precision, dy, w, dx, None, n, fan_in, fan_out, False, False, s,
                       beta=0.0 if acc is None else 1.0)
        # dw [out, in] = dy^T . x: dy stored [K=N, M=out] -> trans_a; x stored [K=N, N=in].
        self._gemm("linear_backward", precision, dy, x, dw, None, fan_out, fan_in, n, True, False, s)
        self.ext.bias_grad(dy=self._ptr(dy), db=self._ptr(db), rows=n, cols=fan_out, stream=s)
        return dx, dw, db
