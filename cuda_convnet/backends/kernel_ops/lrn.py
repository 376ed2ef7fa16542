"""Local response normalization across channels (csrc/lrn.cuh), paper §3.3."""
from __future__ import annotations

import numpy as np

from ... import checks
from ...shapes import lrn_window


def _scalars(size, alpha, beta, divide_alpha_by_size):
    """The float32 scalars the reference uses: alpha', -beta, 2·alpha'·beta (float64 first)."""
    alpha_eff = alpha / size if divide_alpha_by_size else alpha
    return float(np.float32(alpha_eff)), float(np.float32(-beta)), float(np.float32(2.0 * alpha_eff * beta))


def _geometry(x, size, groups):
    """rows, channels, groups and the clipped window (before, after) for the launchers."""
    c = int(x.shape[-1])
    before, after = lrn_window(size, c // groups)
    return dict(rows=int(x.size // c), channels=c, groups=groups, before=before, after=after)


class LrnOps:
    # Kernel versions: kernel_versions["lrn"] and ["lrn_backward"] (base.py); 0 lets the
    # launcher pick (kernel2, rows tiled in shared memory, when channels / groups <= 2048),
    # 1 or 2 forces one.

    def lrn(self, x, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True, groups=1):
        size, alpha, beta, k, groups = checks.check_lrn_args(x, size, alpha, beta, k, groups)
        self._float32("lrn", x=x)
        y = self._empty(x.shape)
        a, nb, _ = _scalars(size, alpha, beta, divide_alpha_by_size)
        if x.size:
            self.ext.lrn(x=self._ptr(x), y=self._ptr(y), **_geometry(x, size, groups), alpha=a, neg_beta=nb,
                         k=float(np.float32(k)), stream=self._stream(), version=self._version("lrn"))
        return y

    def lrn_backward(self, x, y, dy, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True,
                     groups=1, relu_mask=False):
        """dx of lrn; relu_mask=True zeroes it where x <= 0 in the kernel's epilogue (the
        backward of the ReLU that produced x, fused: reference/lrn.py)."""
        size, alpha, beta, k, groups = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k, groups)
        self._float32("lrn_backward", x=x, y=y, dy=dy)
        dx = self._empty(x.shape)
        a, nb, coef = _scalars(size, alpha, beta, divide_alpha_by_size)
        if x.size:
            self.ext.lrn_backward(x=self._ptr(x), y=self._ptr(y), dy=self._ptr(dy), dx=self._ptr(dx),
                                  **_geometry(x, size, groups), alpha=a, neg_beta=nb, k=float(np.float32(k)),
                                  coef=coef, stream=self._stream(), version=self._version("lrn_backward"),
                                  relu_mask=bool(relu_mask))
        return dx

    def _kernel_version_lrn(self, x, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True,
                            groups=1) -> int:
        size, *_, groups = checks.check_lrn_args(x, size, alpha, beta, k, groups)
        g = _geometry(x, size, groups)
        return self.ext.lrn_version(rows=g["rows"], channels=g["channels"], groups=groups,
                                    version=self._version("lrn"))

    def _kernel_version_lrn_backward(self, x, y, dy, *, size=5, alpha=1e-4, beta=0.75, k=2.0,
                                     divide_alpha_by_size=True, groups=1, relu_mask=False) -> int:
        size, *_, groups = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k, groups)
        g = _geometry(x, size, groups)
        return self.ext.lrn_version(rows=g["rows"], channels=g["channels"], groups=groups,
                                    version=self._version("lrn_backward"))
