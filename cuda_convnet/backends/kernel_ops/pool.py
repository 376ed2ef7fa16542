"""Overlapping max-pooling (csrc/pool.cuh), paper §3.4."""
from __future__ import annotations

from ... import checks


class PoolOps:
    def max_pool(self, x, *, size=3, stride=2, padding=0):
        g = checks.check_pool_args(x, size, stride, padding)
        self._float32("max_pool", x=x)
        y = self._empty((g.n, g.p, g.q, g.c))
        if y.size:
            self.ext.max_pool_forward(self._ptr(x), self._ptr(y), g.n, g.h, g.w, g.c, g.size, g.stride, *g.padding,
                                      g.p, g.q, self._stream())
        return y

    def max_pool_backward(self, x, y, dy, *, size=3, stride=2, padding=0):
        """Each dy goes to the first max of its window (row-major), as the reference:
        a gather over the input, deterministic, no atomics (csrc/pool.cuh)."""
        g = checks.check_pool_backward_args(x, y, dy, size, stride, padding)
        self._float32("max_pool_backward", x=x, y=y, dy=dy)
        dx = self._empty(x.shape)
        if x.size:
            self.ext.max_pool_backward(self._ptr(x), self._ptr(y), self._ptr(dy), self._ptr(dx), g.n, g.h, g.w, g.c,
                                       g.size, g.stride, *g.padding, g.p, g.q, self._stream())
        return dx
