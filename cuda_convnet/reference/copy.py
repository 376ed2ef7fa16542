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
arrays (no views), as the kernels do.
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["concat_channels", "split_channels"]


def concat_channels(xs) -> np.ndarray:
    """Concatenate arrays that agree on every axis but the last, along the last axis."""
    checks.check_concat_args(xs)
    return np.concatenate(xs, axis=-1)


def split_channels(y: np.ndarray, sizes) -> list[np.ndarray]:
    """Split ``y`` along its last axis into contiguous pieces of ``sizes`` channels."""
    sizes = checks.check_split_args(y, sizes)
    bounds = np.cumsum((0,) + sizes)
    return [np.ascontiguousarray(y[..., a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
