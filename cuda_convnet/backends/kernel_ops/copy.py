"""Channel concat/split where the two towers meet (csrc/copy.cuh), paper §3.2."""
from __future__ import annotations

import math

from ... import checks


class CopyOps:
    def concat_channels(self, xs):
        """One array from several, along the last (channel) axis: one launch, on the device."""
        lead, sizes = checks.check_concat_args(xs)
        self._float32("concat_channels", **{f"xs[{i}]": x for i, x in enumerate(xs)})
        y = self._empty(lead + (sum(sizes),))
        rows = math.prod(lead)
        if y.size:
            self.ext.concat_channels(whole=self._ptr(y), parts=[self._ptr(x) for x in xs], channels=list(sizes),
                                     rows=rows, stream=self._stream())
        return y

    def split_channels(self, y, sizes, *, accumulate=None):
        """Pieces of ``sizes`` channels of ``y``: one launch. New contiguous arrays, except
        where ``accumulate`` gives an array: the piece is added to it in place (beta = 1)."""
        sizes = checks.check_split_args(y, sizes, accumulate)
        self._float32("split_channels", y=y)
        lead = tuple(y.shape[:-1])
        acc = list(accumulate) if accumulate is not None else [None] * len(sizes)
        parts = [self._empty(lead + (s,)) if a is None else a for s, a in zip(sizes, acc)]
        rows = math.prod(lead)
        if y.size:
            beta = [0.0 if a is None else 1.0 for a in acc] if accumulate is not None else []
            self.ext.split_channels(whole=self._ptr(y), parts=[self._ptr(p) for p in parts], channels=list(sizes),
                                    rows=rows, stream=self._stream(), beta=beta)
        return parts
