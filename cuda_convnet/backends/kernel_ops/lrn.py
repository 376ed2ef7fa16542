"""Local response normalization across channels (csrc/lrn.cuh), paper §3.3."""
from __future__ import annotations

import numpy as np

from ... import checks


def _scalars(size, alpha, beta, divide_alpha_by_size):
    """The float32 scalars the reference uses: alpha', -beta, 2·alpha'·beta (float64 first)."""
    alpha_eff = alpha / size if divide_alpha_by_size else alpha
    return float(np.float32(alpha_eff)), float(np.float32(-beta)), float(np.float32(2.0 * alpha_eff * beta))


def _rows_channels(x):
    c = int(x.shape[-1])
    return int(x.size // c), c


class LrnOps:
    # Kernel versions: kernel_versions["lrn"] and ["lrn_backward"] (base.py); 0 lets the
    # launcher pick (kernel2, rows tiled in shared memory, when channels <= 2048), 1 or 2
    # forces one.

    def lrn(self, x, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True):
        size, alpha, beta, k = checks.check_lrn_args(x, size, alpha, beta, k)
        self._float32("lrn", x=x)
        y = self._empty(x.shape)
        a, nb, _ = _scalars(size, alpha, beta, divide_alpha_by_size)
        if x.size:
            rows, c = _rows_channels(x)
            # A window of 2C + 1 channels already spans the whole row from any channel.
            self.ext.lrn(x=self._ptr(x), y=self._ptr(y), rows=rows, channels=c, size=min(size, 2 * c + 1), alpha=a,
                         neg_beta=nb, k=float(np.float32(k)), stream=self._stream(), version=self._version("lrn"))
        return y

    def lrn_backward(self, x, y, dy, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True):
        size, alpha, beta, k = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k)
        self._float32("lrn_backward", x=x, y=y, dy=dy)
        dx = self._empty(x.shape)
        a, nb, coef = _scalars(size, alpha, beta, divide_alpha_by_size)
        if x.size:
            rows, c = _rows_channels(x)
            self.ext.lrn_backward(x=self._ptr(x), y=self._ptr(y), dy=self._ptr(dy), dx=self._ptr(dx), rows=rows,
                                  channels=c, size=min(size, 2 * c + 1), alpha=a, neg_beta=nb, k=float(np.float32(k)),
                                  coef=coef, stream=self._stream(), version=self._version("lrn_backward"))
        return dx

    def _kernel_version_lrn(self, x, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True) -> int:
        checks.check_lrn_args(x, size, alpha, beta, k)
        return self.ext.lrn_version(*_rows_channels(x), version=self._version("lrn"))

    def _kernel_version_lrn_backward(self, x, y, dy, *, size=5, alpha=1e-4, beta=0.75, k=2.0,
                                     divide_alpha_by_size=True) -> int:
        checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k)
        return self.ext.lrn_version(*_rows_channels(x), version=self._version("lrn_backward"))
