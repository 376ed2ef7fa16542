"""Overlapping max-pooling (csrc/pool.cuh), paper §3.4."""
from __future__ import annotations

from ... import checks


def _geometry(g) -> dict:
    """The launchers' geometry keywords (csrc/pool.h) of a checks.PoolGeometry."""
    top, bottom, left, right = g.padding
    return dict(n=g.n, h=g.h, w=g.w, c=g.c, size=g.size, stride=g.stride, top=top, bottom=bottom, left=left,
                right=right, p=g.p, q=g.q)


class PoolOps:
    def max_pool(self, x, *, size=3, stride=2, padding=0):
        g = checks.check_pool_args(x, size, stride, padding)
        self._float32("max_pool", x=x)
        y = self._empty((g.n, g.p, g.q, g.c))
        if y.size:
            self.ext.max_pool(x=self._ptr(x), y=self._ptr(y), **_geometry(g), stream=self._stream())
        return y

    def max_pool_backward(self, x, y, dy, *, size=3, stride=2, padding=0, relu_mask=False):
        """Each dy goes to the first max of its window (row-major), as the reference:
        a gather over the input, deterministic, no atomics (csrc/pool.cuh). relu_mask=True
        zeroes dx where x <= 0 in the kernel's store (the producer ReLU's backward, fused)."""
        g = checks.check_pool_backward_args(x, y, dy, size, stride, padding)
        self._float32("max_pool_backward", x=x, y=y, dy=dy)
        dx = self._empty(x.shape)
        if x.size:
            self.ext.max_pool_backward(x=self._ptr(x), y=self._ptr(y), dy=self._ptr(dy), dx=self._ptr(dx),
                                       **_geometry(g), stream=self._stream(), relu_mask=bool(relu_mask))
        return dx
