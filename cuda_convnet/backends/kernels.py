"""The `emu` and `cuda` backends: one class over the compiled launchers of csrc/.

The same Python drives both: `emu` hands NumPy arrays' host pointers to cuda_convnet._emu
(the kernels compiled by g++ against the SIMT emulator, run synchronously on the CPU);
`cuda` hands CuPy arrays' device pointers to cuda_convnet._C (nvcc) with CuPy's current
stream. Arguments are validated by cuda_convnet.checks (the same checks as the reference)
before any pointer is touched. The kernels compute in float32 only.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import checks

_POISON = [False]


@contextlib.contextmanager
def poison_outputs(enabled: bool = True):
    """Allocate every kernel output filled with NaN instead of uninitialised.

    Tests run with this on, so an element a kernel forgets to write shows up as NaN
    instead of as whatever the allocator happened to hold.
    """
    old = _POISON[0]
    _POISON[0] = enabled
    try:
        yield
    finally:
        _POISON[0] = old


class KernelBackend:
    """Ops implemented by the hand-written kernels (the reference's names and signatures)."""

    def __init__(self, name, ext, xp):
        self.name = name
        self.ext = ext
        self.xp = xp
        self._is_cupy = xp is not np

    def __repr__(self):
        return f"<backend {self.name}: {self.ext.__name__}>"

    # ------------------------------------------------------------------ plumbing
    def _ptr(self, a) -> int:
        if a is None:
            return 0
        if self._is_cupy:
            if not isinstance(a, self.xp.ndarray):
                raise TypeError(f"the {self.name} backend needs CuPy arrays, got {type(a).__name__}")
            return a.data.ptr
        if not isinstance(a, np.ndarray):
            raise TypeError(f"the {self.name} backend needs NumPy arrays, got {type(a).__name__}")
        return a.ctypes.data

    def _stream(self) -> int:
        return self.xp.cuda.get_current_stream().ptr if self._is_cupy else 0

    def _empty(self, shape):
        if _POISON[0]:
            return self.xp.full(shape, np.nan, dtype=np.float32)
        return self.xp.empty(shape, dtype=np.float32)

    def _float32(self, op, **arrays):
        for name, a in arrays.items():
            if a is not None and np.dtype(a.dtype) != np.float32:
                raise TypeError(
                    f"{op}: the {self.name} backend computes in float32; {name} is {np.dtype(a.dtype).name} "
                    f"(use the cpu backend for float64)"
                )

    # ------------------------------------------------------------------ linear (FC layers)
    def linear(self, x, w, b=None):
        """y = x @ w.T + b: one GEMM with the bias fused into its epilogue."""
        n, fan_in, fan_out = checks.check_linear_args(x, w, b)
        self._float32("linear", x=x, w=w, b=b)
        y = self._empty((n, fan_out))
        if n:
            # op(A) = x [N, in]; op(B) = w^T, w stored [out, in] = [N_gemm, K] -> trans_b.
            self.ext.gemm(self._ptr(x), self._ptr(w), self._ptr(y), self._ptr(b), n, fan_out, fan_in,
                          False, True, 1.0, 0.0, False, self._stream())
        return y

    def linear_backward(self, x, w, dy):
        """(dx, dw, db) = (dy @ w, dy.T @ x, dy summed over the batch)."""
        n, fan_in, fan_out = checks.check_linear_backward_args(x, w, dy)
        self._float32("linear_backward", x=x, w=w, dy=dy)
        dx = self._empty((n, fan_in))
        dw = self._empty((fan_out, fan_in))
        db = self._empty((fan_out,))
        s = self._stream()
        # dx [N, in] = dy [N, out] . w [out, in]: both stored as op() wants.
        self.ext.gemm(self._ptr(dy), self._ptr(w), self._ptr(dx), 0, n, fan_in, fan_out, False, False, 1.0, 0.0,
                      False, s)
        # dw [out, in] = dy^T . x: dy stored [K=N, M=out] -> trans_a; x stored [K=N, N=in].
        self.ext.gemm(self._ptr(dy), self._ptr(x), self._ptr(dw), 0, fan_out, fan_in, n, True, False, 1.0, 0.0,
                      False, s)
        self.ext.bias_grad(self._ptr(dy), self._ptr(db), n, fan_out, s)
        return dx, dw, db

    # ------------------------------------------------------------------ activations
    def relu(self, x):
        checks.check_activation_args(x, op="relu")
        self._float32("relu", x=x)
        y = self._empty(x.shape)
        self.ext.relu_forward(self._ptr(x), self._ptr(y), int(x.size), self._stream())
        return y

    def relu_backward(self, y, dy):
        checks.check_activation_backward_args(y, dy, op="relu_backward")
        self._float32("relu_backward", y=y, dy=dy)
        dx = self._empty(y.shape)
        self.ext.relu_backward(self._ptr(y), self._ptr(dy), self._ptr(dx), int(y.size), self._stream())
        return dx
