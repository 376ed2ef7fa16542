"""Local response normalization across channels (csrc/lrn.cuh), paper §3.3."""
from __future__ import annotations

import numpy as np

from ... import checks
from ...shapes import lrn_window


def _scalars(size, alpha, beta, divide_alpha_by_size):
    """The float32 scalars the reference uses: alpha', -beta, 2·alpha'·beta (float64 first)."""
    alpha_eff = alpha / size if divide_alpha_by_size else alpha
    return float(np.float32(alpha_eff)), float(np.float32(-beta)), float(np.float32(2.0 * alpha_eff * beta))


class LrnOps:
    # `_lrn_kernel`: 0 lets the launcher choose; tests set 1 or 2 to run a given version.
    _lrn_kernel = 0

    def lrn(self, x, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True, groups=1):
        size, alpha, beta, k, groups = checks.check_lrn_args(x, size, alpha, beta, k, groups)
        self._float32("lrn", x=x)
        y = self._empty(x.shape)
        a, nb, _ = _scalars(size, alpha, beta, divide_alpha_by_size)
        c = int(x.shape[-1])
        if x.size:
            before, after = lrn_window(size, c // groups)
            self.ext.lrn_forward(self._ptr(x), self._ptr(y), int(x.size // c), c, groups, before, after, a, nb,
                                 float(np.float32(k)), self._stream(), self._lrn_kernel)
        return y

    def lrn_backward(self, x, y, dy, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True,
                     groups=1):
        size, alpha, beta, k, groups = checks.check_lrn_backward_args(x, y, dy, size, alpha, beta, k, groups)
        self._float32("lrn_backward", x=x, y=y, dy=dy)
        dx = self._empty(x.shape)
        a, nb, coef = _scalars(size, alpha, beta, divide_alpha_by_size)
        c = int(x.shape[-1])
        if x.size:
            before, after = lrn_window(size, c // groups)
            self.ext.lrn_backward(self._ptr(x), self._ptr(y), self._ptr(dy), self._ptr(dx), int(x.size // c), c,
                                  groups, before, after, a, nb, float(np.float32(k)), coef, self._stream(),
                                  self._lrn_kernel)
        return dx
