"""The documented semantics of the reference ops, pinned by naive loop implementations and
hand-computed cases: the rules every backend must reproduce (tie breaking, windows,
update order) that neither gradient checks nor PyTorch fully determine.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- conv2d

def conv2d_loops(x, w, b, stride, pad, groups):
    """The docstring formula, one output element at a time."""
    n, h, wd, c = x.shape
    k, r, s, cg = w.shape
    top, bottom, left, right = pad
    p = (h + top + bottom - r) // stride + 1
    q = (wd + left + right - s) // stride + 1
    kg = k // groups
    y = np.zeros((n, p, q, k))
    for ni, pi, qi, ki in np.ndindex(n, p, q, k):
        gi = ki // kg
        acc = b[ki]
        for ri, si, ci in np.ndindex(r, s, cg):
            hi, wi = pi * stride + ri - top, qi * stride + si - left
            if 0 <= hi < h and 0 <= wi < wd:
                acc += w[ki, ri, si, ci] * x[ni, hi, wi, gi * cg + ci]
        y[ni, pi, qi, ki] = acc
    return y


@pytest.mark.parametrize("stride,pad,groups", [(1, (0, 0, 0, 0), 1), (2, (1, 2, 0, 1), 2),
                                               (3, (2, 0, 1, 1), 3)])
def test_conv2d_is_the_documented_cross_correlation(stride, pad, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3 * groups))
    w = rng.standard_normal((2 * groups, 3, 2, 3))
    b = rng.standard_normal(2 * groups)
    np.testing.assert_allclose(R.conv2d(x, w, b, stride=stride, padding=pad, groups=groups),
                               conv2d_loops(x, w, b, stride, pad, groups), rtol=1e-12,
                               atol=1e-12)


def test_conv2d_padding_forms_agree():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 3, 2))
    y = R.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(y, R.conv2d(x, w, padding=(1, 1)))
    np.testing.assert_array_equal(y, R.conv2d(x, w, padding=(1, 1, 1, 1)))


def test_groups_are_independent_towers():
    """groups=2 equals two separate convolutions on the channel halves (§3.2, §3.5)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 8))
    w = rng.standard_normal((6, 3, 3, 4))
    b = rng.standard_normal(6)
    y = R.conv2d(x, w, b, padding=1, groups=2)
    top = R.conv2d(np.ascontiguousarray(x[..., :4]), w[:3], b[:3], padding=1)
    bottom = R.conv2d(np.ascontiguousarray(x[..., 4:]), w[3:], b[3:], padding=1)
    np.testing.assert_allclose(y, np.concatenate([top, bottom], axis=-1), rtol=1e-13)


# max_pool and LRN: tests/test_pool.py, tests/test_lrn.py (one file per op family).

# ----------------------------------------------------------------------------- softmax / top-k

def test_softmax_is_stable_and_keeps_dtype():
    z = np.array([[1e4, 0.0, -1e4], [3.0, 3.0, 3.0]], dtype=np.float32)
    loss, probs = R.softmax_cross_entropy(z, np.array([1, 2]))
    assert loss.dtype == np.float32 and probs.dtype == np.float32
    assert np.isfinite(loss) and np.isfinite(probs).all()
    np.testing.assert_allclose(float(loss), (1e4 + np.log(3)) / 2, rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)


def test_softmax_backward_is_mean_gradient():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    d = R.softmax_cross_entropy_backward(probs, np.array([1, 0]))
    np.testing.assert_allclose(d, [[0.1, -0.1], [-0.2, 0.2]], rtol=1e-14)


def test_topk_errors_and_ties():
    probs = np.array([
        [0.1, 0.6, 0.3],    # label 1: top-1 correct
        [0.5, 0.5, 0.0],    # label 1 tied with class 0: a tie counts against -> top-1 error
        [0.2, 0.3, 0.5],    # label 0: two classes at least as probable
        [0.4, 0.35, 0.25],  # label 2: two classes at least as probable
    ])
    labels = np.array([1, 1, 0, 2])
    assert R.topk_errors(probs, labels) == {1: 3, 5: 0}
    assert R.topk_errors(probs, labels, ks=(1, 2, 3)) == {1: 3, 2: 2, 3: 0}
    probs[0, 2] = np.nan  # a non-finite row is an error for every k
    assert R.topk_errors(probs, labels, ks=(1, 2, 3)) == {1: 4, 2: 3, 3: 1}


# ----------------------------------------------------------------------------- SGD

def test_sgd_update_is_the_papers_rule_in_place():
    w = np.array([1.0, -2.0])
    v = np.array([0.5, 0.0])
    g = np.array([0.3, 0.1])
    w_id, v_id = id(w), id(v)
    out = R.sgd_update([w], [g], [v], lr=0.01)
    assert out is None and id(w) == w_id and id(v) == v_id
    v_expected = 0.9 * np.array([0.5, 0.0]) - 0.0005 * 0.01 * np.array([1.0, -2.0]) \
        - 0.01 * np.array([0.3, 0.1])
    np.testing.assert_allclose(v, v_expected, rtol=1e-15)
    np.testing.assert_allclose(w, np.array([1.0, -2.0]) + v_expected, rtol=1e-15)


def test_sgd_updates_every_tensor_of_the_list():
    rng = np.random.default_rng(6)
    shapes = [(3, 4), (4,), (2, 3, 3, 1)]
    ws = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    vs = [np.zeros(s, np.float32) for s in shapes]
    before = [w.copy() for w in ws]
    R.sgd_update(ws, gs, vs, lr=0.1, momentum=0.5, weight_decay=0.01)
    for w, w0, g, v in zip(ws, before, gs, vs):
        assert w.dtype == np.float32 and v.dtype == np.float32
        np.testing.assert_allclose(v, -0.001 * w0 - 0.1 * g, rtol=1e-6)
        np.testing.assert_allclose(w, w0 + v, rtol=1e-6)


# ----------------------------------------------------------------------------- activations

def test_relu_backward_at_zero_is_zero():
    y = R.relu(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(R.relu_backward(y, np.ones(3)), [0.0, 0.0, 1.0])


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
