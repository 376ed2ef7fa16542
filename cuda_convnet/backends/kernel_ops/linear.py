"""The fully connected layers on the GEMM kernel (csrc/gemm.cuh)."""
from __future__ import annotations

import numpy as np

from ... import checks


class LinearOps:
    def linear(self, x, w, b=None, *, relu=False):
        """y = x @ w.T + b: one GEMM with the bias (and with ``relu=True`` the ReLU) fused
        into its epilogue."""
        n, fan_in, fan_out = checks.check_linear_args(x, w, b)
        self._float32("linear", x=x, w=w, b=b)
        if not (n and fan_in and fan_out):  # an empty product: y = b (or 0), no launch
            y = self.xp.zeros((n, fan_out), dtype=np.float32)
            y = y + b if b is not None else y
            return self.xp.maximum(y, 0) if relu else y
        y = self._empty((n, fan_out))
        if n:
            # op(A) = x [N, in]; op(B) = w^T, w stored [out, in] = [N_gemm, K] -> trans_b.
            self.ext.gemm(self._ptr(x), self._ptr(w), self._ptr(y), self._ptr(b), n, fan_out, fan_in,
                          False, True, 1.0, 0.0, bool(relu), self._stream())
        return y

    def linear_backward(self, x, w, dy, *, need_dx=True):
        """(dx, dw, db) = (dy @ w, dy.T @ x, dy summed over the batch); ``need_dx=False``
        launches no dx GEMM and returns dx None (an input that needs no gradient)."""
        n, fan_in, fan_out = checks.check_linear_backward_args(x, w, dy)
        self._float32("linear_backward", x=x, w=w, dy=dy)
        if not (n and fan_in and fan_out):  # an empty product on some side: no launch
            zeros = self.xp.zeros
            return (zeros((n, fan_in), dtype=np.float32) if need_dx else None, zeros((fan_out, fan_in), dtype=np.float32),
                    dy.sum(axis=0, dtype=np.float32))
        dx = self._empty((n, fan_in)) if need_dx else None
        dw = self._empty((fan_out, fan_in))
        db = self._empty((fan_out,))
        s = self._stream()
        if need_dx:
            # dx [N, in] = dy [N, out] . w [out, in]: both stored as op() wants.
            self.ext.gemm(self._ptr(dy), self._ptr(w), self._ptr(dx), 0, n, fan_in, fan_out, False, False, 1.0,
                          0.0, False, s)
        # dw [out, in] = dy^T . x: dy stored [K=N, M=out] -> trans_a; x stored [K=N, N=in].
        self.ext.gemm(self._ptr(dy), self._ptr(x), self._ptr(dw), 0, fan_out, fan_in, n, True, False, 1.0, 0.0,
                      False, s)
        self.ext.bias_grad(self._ptr(dy), self._ptr(db), n, fan_out, s)
        return dx, dw, db
