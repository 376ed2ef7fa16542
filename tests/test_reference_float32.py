"""The float32 entries of tests/tolerances.py are attainable: the reference's own float32
path, on kernel-test-sized problems, agrees with its float64 answer within the
``kernel_vs_reference`` tolerances that the emu/cuda kernel tests will use.

(If a kernel later needs a looser entry than the reference does, that is a finding about
the kernel's summation order or math, not noise.)
"""

from __future__ import annotations

import numpy as np
from reference_support import F32, assert_attains, both

from cuda_convnet import reference as R


def test_elementwise_and_windowed():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 9, 9, 32)) * 3).astype(F32)
    dy = rng.uniform(-1, 1, x.shape).astype(F32)
    for op in ("relu", "tanh"):
        y32, y64 = both(getattr(R, op), x)
        assert_attains(op, y32, y64)
        assert_attains(op + "_backward", *both(getattr(R, op + "_backward"), y32, dy))
    # LRN with the paper's parameters on post-ReLU-sized activations, and a strong one.
    for params in (dict(), dict(alpha=1.0, beta=0.75, k=1.0)):
        xr = np.abs(x) * 10
        y32, y64 = both(R.lrn, xr, **params)
        assert_attains("lrn", y32, y64)
        assert_attains("lrn_backward", *both(R.lrn_backward, xr, y32, dy, **params))
    y32, y64 = both(R.max_pool, x)
    assert_attains("max_pool", y32, y64)
    dyp = rng.uniform(-1, 1, y32.shape).astype(F32)
    assert_attains("max_pool_backward", *both(R.max_pool_backward, x, y32, dyp))
    for mode in ("paper", "inverted"):
        assert_attains("dropout", *both(R.dropout, x, p=0.3, seed=1, mode=mode))
        assert_attains("dropout_backward", *both(R.dropout_backward, dy, p=0.3, seed=1,
                                                 mode=mode))
