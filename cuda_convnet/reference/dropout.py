"""Dropout (§4.2; ARCHITECTURE.md §3), with a counter-based mask shared by every backend.

§4.2: "setting to zero the output of each hidden neuron with probability 0.5 ... At test
time, we use all the neurons but multiply their outputs by 0.5". The paper's net applies
it to the first two FC layers. The mask is ``cuda_convnet.random.dropout_keep_mask(
x.shape, p, seed, offset)`` — a pure function of (seed, offset, flat element index) whose
exact bit-level definition is in that module's docstring — so the reference, the
emulator and the GPU drop the same units and backward needs no stored mask.

Two modes (``p`` = drop probability in [0, 1), ``m`` = keep mask, 1 or 0):

=========  ======================  =====================
mode       train                   test (train=False)
=========  ======================  =====================
paper      y = x · m               y = x · (1 - p)
inverted   y = x · m · 1/(1 - p)   y = x
=========  ======================  =====================

Channel groups (the grouped one-device form of a net split into towers, §3.2): with
``groups = G`` the last axis splits into G equal ranges and range g draws
``dropout_keep_mask((rows, C/G), p, seed, offset + g)`` (rows = the product of the other
axes): the mask a tower holding only those channels draws at that offset, so the grouped
and the tower form drop the same units. ``groups = 1`` is the plain mask of x's shape.

Scalars are rounded to x's dtype first: ``scale = dtype(1/(1-p))`` and
``keep = dtype(1-p)``, then one multiply per element (so a kernel doing the same gets the
same bits; for p = 0.5 both scalars are exact). Backward (training only) is the same
linear map: ``dx = dy · m`` (paper) or ``dx = dy · m · scale`` (inverted).
"""

from __future__ import annotations

import numpy as np

from .. import checks
from ..random import dropout_keep_mask

__all__ = ["dropout", "dropout_backward"]


def keep_mask(shape, p, seed, offset, groups=1) -> np.ndarray:
    """The keep-mask of ``shape`` with ``groups`` channel groups on the last axis (module
    docstring); arguments already checked."""
    if groups == 1:
        return dropout_keep_mask(shape, p, seed, offset)
    c = shape[-1]
    rows, cg = int(np.prod(shape[:-1], dtype=np.int64)), c // groups
    mask = np.empty((rows, c), dtype=bool)
    for g in range(groups):
        mask[:, g * cg:(g + 1) * cg] = dropout_keep_mask((rows, cg), p, seed, offset + g)
    return mask.reshape(shape)


def _apply_mask(a, p, seed, offset, mode, groups):
    mask = keep_mask(a.shape, p, seed, offset, groups)
    if mode == "inverted":
        kept = a * a.dtype.type(1.0 / (1.0 - p))
    else:
        kept = a
    return np.where(mask, kept, a.dtype.type(0))


def dropout(x: np.ndarray, *, p: float = 0.5, seed: int, offset: int = 0,
            mode: str = "paper", train: bool = True, groups: int = 1) -> np.ndarray:
    """Drop each element with probability p (mask from (seed, offset + group, index within
    the group)); see the tables above. x: any shape, float32 or float64; ``groups`` divides
    its last axis (ValueError otherwise). Returns an array of x's shape and dtype."""
    p, seed, offset, mode = checks.check_dropout_args(x, p, seed, offset, mode, train)
    groups = checks.check_dropout_groups("dropout", x, groups, offset)
    if train:
        return _apply_mask(x, p, seed, offset, mode, groups)
    if mode == "paper":
        return x * x.dtype.type(1.0 - p)
    return x.copy()


def dropout_backward(dy: np.ndarray, *, p: float = 0.5, seed: int, offset: int = 0,
                     mode: str = "paper", groups: int = 1) -> np.ndarray:
    """Gradient of training-mode ``dropout`` with the same (p, seed, offset, mode, groups)."""
    p, seed, offset, mode = checks.check_dropout_backward_args(dy, p, seed, offset, mode)
    groups = checks.check_dropout_groups("dropout_backward", dy, groups, offset)
    return _apply_mask(dy, p, seed, offset, mode, groups)
