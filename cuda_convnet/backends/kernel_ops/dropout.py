"""Dropout with the Philox4x32-10 mask of the reference (csrc/dropout.cuh), paper §4.2."""
from __future__ import annotations

import numpy as np

from ... import checks
from ...random import dropout_threshold


class DropoutOps:
    def _dropout(self, x, p, seed, offset, mode, mask, groups):
        y = self._empty(x.shape)
        if mask:
            scale = np.float32(1.0 / (1.0 - p)) if mode == "inverted" else np.float32(1.0)
        else:  # test time
            scale = np.float32(1.0 - p) if mode == "paper" else np.float32(1.0)
        if x.size:
            channels = int(x.shape[-1]) if x.ndim else 1
            self.ext.dropout(x=self._ptr(x), y=self._ptr(y), rows=int(x.size) // channels, channels=channels,
                             groups=groups, seed=seed, offset=offset, threshold=dropout_threshold(p),
                             scale=float(scale), mask=mask, stream=self._stream())
        return y

    def dropout(self, x, *, p=0.5, seed, offset=0, mode="paper", train=True, groups=1):
        p, seed, offset, mode = checks.check_dropout_args(x, p, seed, offset, mode, train)
        groups = checks.check_dropout_groups("dropout", x, groups, offset)
        self._float32("dropout", x=x)
        return self._dropout(x, p, seed, offset, mode, bool(train), groups)

    def dropout_backward(self, dy, *, p=0.5, seed, offset=0, mode="paper", groups=1):
        p, seed, offset, mode = checks.check_dropout_backward_args(dy, p, seed, offset, mode)
        groups = checks.check_dropout_groups("dropout_backward", dy, groups, offset)
        self._float32("dropout_backward", dy=dy)
        return self._dropout(dy, p, seed, offset, mode, True, groups)

    def philox4x32(self, counter, key):
        """Philox4x32-10 on the device: counter (n, 4), key (n, 2) uint32 -> (n, 4) uint32.

        The kernel twin of ``cuda_convnet.random.philox4x32`` (no broadcasting: one key per
        counter), for tests and for code that wants raw random words.
        """
        for name, a, width in (("counter", counter, 4), ("key", key, 2)):
            checks.check_array("philox4x32", name, a, ndim=2, dtypes=(np.uint32,))
            if a.shape[1] != width:
                raise ValueError(f"philox4x32: {name} must have shape (n, {width}), got {tuple(a.shape)}")
        if counter.shape[0] != key.shape[0]:
            raise ValueError(f"philox4x32: counter has {counter.shape[0]} rows but key has {key.shape[0]}")
        out = self.xp.empty(counter.shape, dtype=np.uint32)
        self.ext.philox4x32(counters=self._ptr(counter), keys=self._ptr(key), out=self._ptr(out),
                            n=int(counter.shape[0]), stream=self._stream())
        return out
