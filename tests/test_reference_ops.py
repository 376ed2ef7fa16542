"""The documented semantics of the reference ops, pinned by naive loop implementations and
hand-computed cases: the rules every backend must reproduce (tie breaking, windows,
update order) that neither gradient checks nor PyTorch fully determine.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- max_pool

def max_pool_loops(x, size, stride, pad, dy):
    """Forward and the tie rule of the docstring, one window at a time."""
    n, h, w, c = x.shape
    top, bottom, left, right = pad
    p = (h + top + bottom - size) // stride + 1
    q = (w + left + right - size) // stride + 1
    y = np.full((n, p, q, c), -np.inf)
    dx = np.zeros_like(x)
    for ni, pi, qi, ci in np.ndindex(n, p, q, c):
        best = None
        for ri, si in np.ndindex(size, size):     # row-major: first max wins ties
            hi, wi = pi * stride + ri - top, qi * stride + si - left
            inside = 0 <= hi < h and 0 <= wi < w
            if inside and (best is None or x[ni, hi, wi, ci] > y[ni, pi, qi, ci]):
                y[ni, pi, qi, ci], best = x[ni, hi, wi, ci], (hi, wi)
        dx[ni, best[0], best[1], ci] += dy[ni, pi, qi, ci]
    return y, dx


@pytest.mark.parametrize("size,stride,pad", [(3, 2, (0, 0, 0, 0)), (2, 2, (0, 0, 0, 0)),
                                             (3, 1, (1, 1, 0, 2)), (4, 3, (1, 2, 3, 0))])
def test_max_pool_ties_go_to_the_first_max(size, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 7, 8, 3)).astype(np.float64)   # many ties
    y = R.max_pool(x, size=size, stride=stride, padding=pad)
    dy = rng.standard_normal(y.shape)
    y_loop, dx_loop = max_pool_loops(x, size, stride, pad, dy)
    np.testing.assert_array_equal(y, y_loop)
    np.testing.assert_allclose(R.max_pool_backward(x, y, dy, size=size, stride=stride,
                                                   padding=pad), dx_loop, rtol=1e-14)


def test_max_pool_constant_input_by_hand():
    """All-equal 5x5 input, 3x3 windows at stride 2: each window's top-left tap wins."""
    x = np.zeros((1, 5, 5, 1))
    y = R.max_pool(x)
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dx = R.max_pool_backward(x, y, dy)
    expected = np.zeros((5, 5))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 2, 2, 1)) * 5          # all negative: padding at -inf must lose
    y = R.max_pool(x, size=2, stride=1, padding=1)
    assert (y == -5).all()


# ----------------------------------------------------------------------------- LRN

def lrn_loops(x, size, alpha, beta, k, divide):
    a = alpha / size if divide else alpha
    n, h, w, c = x.shape
    y = np.empty_like(x)
    for idx in np.ndindex(n, h, w):
        for ci in range(c):
            lo, hi = max(0, ci - size // 2), min(c - 1, ci + (size - 1) // 2)
            s = sum(x[idx + (j,)] ** 2 for j in range(lo, hi + 1))
            y[idx + (ci,)] = x[idx + (ci,)] / (k + a * s) ** beta
    return y


@pytest.mark.parametrize("size", [1, 2, 4, 5, 11])
@pytest.mark.parametrize("divide", [True, False])
def test_lrn_window_definition(size, divide):
    x = np.random.default_rng(4).standard_normal((1, 2, 3, 6))
    np.testing.assert_allclose(
        R.lrn(x, size=size, alpha=0.5, beta=0.75, k=2.0, divide_alpha_by_size=divide),
        lrn_loops(x, size, 0.5, 0.75, 2.0, divide), rtol=1e-13)


def test_lrn_paper_formula_differs_from_code_by_alpha_over_n():
    """The two conventions are the same op with alpha scaled by n (ARCHITECTURE.md §3)."""
    x = np.random.default_rng(5).standard_normal((1, 2, 2, 8)) * 10
    np.testing.assert_allclose(R.lrn(x, alpha=5e-4, divide_alpha_by_size=True),
                               R.lrn(x, alpha=1e-4, divide_alpha_by_size=False), rtol=1e-14)


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
