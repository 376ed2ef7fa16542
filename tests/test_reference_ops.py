"""The documented semantics of the reference ops, pinned by naive loop implementations and
hand-computed cases: the rules every backend must reproduce (tie breaking, windows,
update order) that neither gradient checks nor PyTorch fully determine.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_op_keeps_the_dtype(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 6, 4)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    y = R.conv2d(x, w, padding=1, groups=2)
    outs = [y, *R.conv2d_backward(x, w, y, padding=1, groups=2), R.relu(x), R.tanh(x),
            R.lrn(x), R.max_pool(x), R.dropout(x, seed=0)]
    xf = x.reshape(2, -1)
    wf = rng.standard_normal((3, xf.shape[1])).astype(dtype)
    outs += [R.linear(xf, wf), *R.linear_backward(xf, wf, R.linear(xf, wf))]
    outs += list(R.softmax_cross_entropy(xf, np.array([0, 1])))
    for o in outs:
        assert o.dtype == dtype
