"""The float32 entries of tests/tolerances.py are attainable: the reference's own float32
path, on kernel-test-sized problems, agrees with its float64 answer within the
``kernel_vs_reference`` tolerances that the emu/cuda kernel tests will use.

(If a kernel later needs a looser entry than the reference does, that is a finding about
the kernel's summation order or math, not noise.)
"""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import tol

from cuda_convnet import reference as R

F32, F64 = np.float32, np.float64


def both(fn, *arrays, **kw):
    """fn on float32 inputs, and on the same values upcast to float64."""
    return fn(*arrays, **kw), fn(*(a.astype(F64) if isinstance(a, np.ndarray) and
                                   a.dtype == F32 else a for a in arrays), **kw)


def assert_attains(op, got32, want64):
    got32 = got32 if isinstance(got32, tuple) else (got32,)
    want64 = want64 if isinstance(want64, tuple) else (want64,)
    for a, b in zip(got32, want64):
        assert np.asarray(a).dtype == F32
        np.testing.assert_allclose(a, b, **tol(op, "kernel_vs_reference"))


@pytest.mark.parametrize("stride,padding,groups", [(1, 2, 1), (2, (1, 2, 0, 1), 2), (1, 1, 2)])
def test_conv2d(stride, padding, groups):
    rng = np.random.default_rng(0)
    c, k, r = 16, 32, 5
    x = rng.uniform(-1, 1, (4, 16, 16, c)).astype(F32)
    w = (rng.standard_normal((k, r, r, c // groups)) / np.sqrt(r * r * c / groups)).astype(F32)
    b = rng.uniform(-1, 1, k).astype(F32)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y32, y64 = both(R.conv2d, x, w, b, **kw)
    assert_attains("conv2d", y32, y64)
    dy = rng.uniform(-1, 1, y32.shape).astype(F32)
    assert_attains("conv2d_backward", *both(R.conv2d_backward, x, w, dy, **kw))


def test_linear():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (16, 1024)).astype(F32)
    w = (rng.standard_normal((256, 1024)) / 32).astype(F32)
    b = rng.uniform(-1, 1, 256).astype(F32)
    assert_attains("linear", *both(R.linear, x, w, b))
    dy = rng.uniform(-1, 1, (16, 256)).astype(F32)
    assert_attains("linear_backward", *both(R.linear_backward, x, w, dy))


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


def test_softmax_and_topk():
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((32, 1000)) * 4).astype(F32)
    labels = rng.integers(0, 1000, 32)
    (l32, p32), (l64, p64) = both(R.softmax_cross_entropy, z, labels)
    assert_attains("softmax_cross_entropy", (l32, p32), (l64, p64))
    assert_attains("softmax_cross_entropy_backward",
                   *both(R.softmax_cross_entropy_backward, p32, labels))
    assert R.topk_errors(p32, labels) == R.topk_errors(p32.astype(F64), labels)


def test_sgd_update():
    rng = np.random.default_rng(4)
    w = rng.standard_normal(1000).astype(F32)
    v = (rng.standard_normal(1000) * 0.01).astype(F32)
    g = rng.standard_normal(1000).astype(F32)
    w64, v64 = w.astype(F64), v.astype(F64)
    for _ in range(3):
        R.sgd_update([w], [g], [v], lr=0.01)
        R.sgd_update([w64], [g.astype(F64)], [v64], lr=0.01)
    assert_attains("sgd_update", (w, v), (w64, v64))
