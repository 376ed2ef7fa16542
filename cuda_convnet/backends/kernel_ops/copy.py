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

    def split_channels(self, y, sizes):
        """Pieces of ``sizes`` channels of ``y`` (new contiguous arrays): one launch."""
        sizes = checks.check_split_args(y, sizes)
        self._float32("split_channels", y=y)
        lead = tuple(y.shape[:-1])
        parts = [self._empty(lead + (s,)) for s in sizes]
        rows = math.prod(lead)
        if y.size:
            self.ext.split_channels(whole=self._ptr(y), parts=[self._ptr(p) for p in parts], channels=list(sizes),
                                    rows=rows, stream=self._stream())
        return parts
