"""Central-difference gradient checks of every differentiable reference op, float64
(ARCHITECTURE.md §8.1), over hypothesis-drawn small shapes and parameters.

Each op gets a directional check on many draws (cheap: two forward passes) and an
element-wise check on one or two tiny fixed cases (pins the wrong element if any).
Kinks are avoided by construction: ReLU inputs are kept >= 0.1 away from 0, pooling
inputs are a shuffled arange (no ties, gaps of 1 >> h), as Chainer's tests do.
"""

from __future__ import annotations

import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st

from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- linear

@SETTINGS
@given(n=st.integers(1, 4), fan_in=st.integers(1, 7), fan_out=st.integers(1, 6),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear(n, fan_in, fan_out, bias, seed):
    rng = rng_from(seed)
    x = rng.standard_normal((n, fan_in))
    w = rng.standard_normal((fan_out, fan_in))
    b = rng.standard_normal(fan_out)
    if bias:
        fwd = lambda x, w, b: R.linear(x, w, b)
        bwd = lambda ins, y, dy: R.linear_backward(ins[0], ins[1], dy)
        check_op("linear", fwd, bwd, [x, w, b], rng=rng)
    else:
        fwd = lambda x, w: R.linear(x, w)
        bwd = lambda ins, y, dy: R.linear_backward(ins[0], ins[1], dy)[:2]
        check_op("linear", fwd, bwd, [x, w], rng=rng)


# ----------------------------------------------------------------------------- conv2d

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))    # asymmetric
    top, bottom, left, right = pad
    h = draw(st.integers(max(1, r - top - bottom), r + 5))
    w = draw(st.integers(max(1, s - left - right), s + 5))
    n = draw(st.integers(1, 3))
    return dict(n=n, h=h, w=w, c=cg * groups, k=kg * groups, r=r, s=s, stride=stride,
                padding=pad, groups=groups, bias=draw(st.booleans()))


def _conv_check(case, rng, elementwise=False):
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c"]))
    wt = rng.standard_normal((case["k"], case["r"], case["s"], case["c"] // case["groups"]))
    b = rng.standard_normal(case["k"])
    kw = dict(stride=case["stride"], padding=case["padding"], groups=case["groups"])
    bwd = lambda ins, y, dy: R.conv2d_backward(ins[0], ins[1], dy, **kw)
    if case["bias"]:
        check_op("conv2d", lambda x, w, b: R.conv2d(x, w, b, **kw), bwd, [x, wt, b],
                 rng=rng, elementwise=elementwise)
    else:
        check_op("conv2d", lambda x, w: R.conv2d(x, w, **kw),
                 lambda ins, y, dy: bwd(ins, y, dy)[:2], [x, wt], rng=rng,
                 elementwise=elementwise)


@SETTINGS
@given(case=conv_cases(), seed=st.integers(0, 2**32 - 1))
def test_conv2d(case, seed):
    _conv_check(case, rng_from(seed))


@pytest.mark.parametrize("case", [
    dict(n=2, h=5, w=4, c=2, k=3, r=3, s=2, stride=1, padding=(1, 0, 0, 2), groups=1, bias=True),
    dict(n=1, h=6, w=7, c=4, k=2, r=2, s=3, stride=2, padding=(0, 1, 2, 0), groups=2, bias=True),
    dict(n=1, h=7, w=5, c=3, k=3, r=3, s=3, stride=3, padding=1, groups=3, bias=False),
])
def test_conv2d_elementwise(case):
    _conv_check(case, rng_from(1), elementwise=True)


# ----------------------------------------------------------------------------- activations

def _away_from_zero(rng, shape, margin=0.1):
    """Values with |x| >= margin: central differences never straddle ReLU's kink."""
    x = rng.uniform(margin, 2.0, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_relu(shape, seed):
    rng = rng_from(seed)
    x = _away_from_zero(rng, tuple(shape))
    check_op("relu", R.relu, lambda ins, y, dy: (R.relu_backward(y, dy),), [x], rng=rng)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_tanh(shape, seed):
    rng = rng_from(seed)
    x = rng.standard_normal(tuple(shape)) * 2
    check_op("tanh", R.tanh, lambda ins, y, dy: (R.tanh_backward(y, dy),), [x], rng=rng)


def test_activations_elementwise():
    rng = rng_from(2)
    x = _away_from_zero(rng, (2, 3, 2, 2))
    check_op("relu", R.relu, lambda ins, y, dy: (R.relu_backward(y, dy),), [x], rng=rng,
             elementwise=True)
    check_op("tanh", R.tanh, lambda ins, y, dy: (R.tanh_backward(y, dy),), [x], rng=rng,
             elementwise=True)


# LRN and max_pool: tests/test_lrn.py, tests/test_pool.py (one file per op family).

# ----------------------------------------------------------------------------- dropout

@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), mode=st.sampled_from(["paper", "inverted"]),
       seed=st.integers(0, 2**32 - 1))
def test_dropout(shape, p, mode, seed):
    rng = rng_from(seed)
    kw = dict(p=p, seed=1234, offset=5, mode=mode)   # fixed seed: same mask every pass
    x = rng.standard_normal(tuple(shape))
    check_op("dropout", lambda x: R.dropout(x, **kw),
             lambda ins, y, dy: (R.dropout_backward(dy, **kw),), [x], rng=rng)


@pytest.mark.parametrize("mode", ["paper", "inverted"])
def test_dropout_elementwise(mode):
    rng = rng_from(5)
    kw = dict(p=0.5, seed=99, offset=0, mode=mode)
    check_op("dropout", lambda x: R.dropout(x, **kw),
             lambda ins, y, dy: (R.dropout_backward(dy, **kw),),
             [rng.standard_normal((3, 5))], rng=rng, elementwise=True)


# ----------------------------------------------------------------------------- softmax

def _softmax_check(n, classes, rng, elementwise=False):
    z = rng.standard_normal((n, classes)) * 3
    labels = rng.integers(0, classes, size=n)
    fwd = lambda z: R.softmax_cross_entropy(z, labels)[0]
    bwd = lambda ins, loss, g: (
        R.softmax_cross_entropy_backward(R.softmax_cross_entropy(ins[0], labels)[1], labels) * g,)
    check_op("softmax_cross_entropy", fwd, bwd, [z], rng=rng, elementwise=elementwise)


@SETTINGS
@given(n=st.integers(1, 6), classes=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy(n, classes, seed):
    _softmax_check(n, classes, rng_from(seed))


def test_softmax_cross_entropy_elementwise():
    _softmax_check(3, 5, rng_from(6), elementwise=True)
