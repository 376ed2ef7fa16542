"""Channel concatenation and split: where the paper's two towers meet (§3.2, §3.5).

"The GPUs communicate only in certain layers": conv3 and the fully-connected layers read
the maps (or features) of both towers, so the towers' outputs are concatenated along the
channel axis, and the gradient flowing back is split the same way. The channel axis is
the last one (NHWC maps, or (N, features) for the FC layers)::

    y = concat_channels([x0, x1, ...])   y[..., off_i:off_i + C_i] = x_i,  off_i = C_0 + ... + C_{i-1}
    [x0, x1, ...] = split_channels(y, [C_0, C_1, ...])

The two are each other's adjoint, hence each other's gradient:
``d concat_channels(xs) = split_channels(dy, sizes)`` and
``d split_channels(y, sizes) = concat_channels(dxs)``. Both return new C-contiguous
arrays (no views), as the kernels do, except where ``split_channels`` is given
``accumulate``: part i is then ``accumulate[i] += y[..., off_i:off_i + C_i]`` in place
(the kernels' beta = 1), how a Net sums the gradients of a tensor read by several layers
without a separate add (cuda-convnet's in-place gradient accumulation).
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["concat_channels", "split_channels"]


def concat_channels(xs) -> np.ndarray:
    """Concatenate arrays that agree on every axis but the last, along the last axis."""
    checks.check_concat_args(xs)
    return np.concatenate(xs, axis=-1)


def split_channels(y: np.ndarray, sizes, *, accumulate=None) -> list[np.ndarray]:
    """Split ``y`` (..., C) along its last axis into C-contiguous pieces of ``sizes``
    channels. ``accumulate``: None, or one entry per part, None (a new array) or an array
    of the part's shape and y's dtype to which the part is added in place and which is
    returned as that part. Raises TypeError/ValueError for bad arguments."""
    sizes = checks.check_split_args(y, sizes, accumulate)
    bounds = np.cumsum((0,) + sizes)
    acc = list(accumulate) if accumulate is not None else [None] * len(sizes)
    out = []
    for a, b, into in zip(bounds[:-1], bounds[1:], acc):
        if into is None:
            out.append(np.ascontiguousarray(y[..., a:b]))
        else:
            # into + slice, as a Net's `grads[i] + dx` adds (same operands, one rounding).
            np.add(into, y[..., a:b], out=into)
            out.append(into)
    return out
