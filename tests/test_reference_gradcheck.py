"""Central-difference gradient checks of every differentiable reference op, float64
(ARCHITECTURE.md §8.1), over hypothesis-drawn small shapes and parameters.

Each op gets a directional check on many draws (cheap: two forward passes) and an
element-wise check on one or two tiny fixed cases (pins the wrong element if any).
Kinks are avoided by construction: ReLU inputs are kept >= 0.1 away from 0, pooling
inputs are a shuffled arange (no ties, gaps of 1 >> h), as Chainer's tests do.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st

from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- LRN

@st.composite
def lrn_cases(draw):
    return dict(
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
               draw(st.integers(1, 9))),
        size=draw(st.integers(1, 7)),                 # odd and even, larger than C too
        # alpha large enough that the normalisation is far from the identity, so a wrong
        # cross-channel term shows (at the paper's 1e-4 it would hide below tolerance).
        alpha=draw(st.floats(0.05, 3.0)),
        beta=draw(st.floats(0.25, 1.5)),
        k=draw(st.floats(0.5, 3.0)),
        divide_alpha_by_size=draw(st.booleans()),
    )


def _lrn_check(case, rng, elementwise=False):
    params = {k: v for k, v in case.items() if k != "shape"}
    x = rng.standard_normal(case["shape"])
    check_op("lrn", lambda x: R.lrn(x, **params),
             lambda ins, y, dy: (R.lrn_backward(ins[0], y, dy, **params),), [x], rng=rng,
             elementwise=elementwise)


@SETTINGS
@given(case=lrn_cases(), seed=st.integers(0, 2**32 - 1))
def test_lrn(case, seed):
    _lrn_check(case, rng_from(seed))


@pytest.mark.parametrize("divide", [True, False])
@pytest.mark.parametrize("size", [2, 5])
def test_lrn_elementwise(size, divide):
    case = dict(shape=(1, 2, 2, 7), size=size, alpha=0.7, beta=0.75, k=2.0,
                divide_alpha_by_size=divide)
    _lrn_check(case, rng_from(3), elementwise=True)


# ----------------------------------------------------------------------------- max_pool

def shuffled_arange(rng, shape):
    """Distinct values 1 apart in random order: no ties, no argmax switch under h."""
    n = int(np.prod(shape))
    return rng.permutation(n).astype(np.float64).reshape(shape) - n / 2


@st.composite
def pool_cases(draw):
    size, stride = draw(st.sampled_from([(3, 2), (2, 2), (3, 1), (1, 1), (4, 3), (3, 3),
                                         (2, 1), (5, 2)]))
    pad = tuple(draw(st.integers(0, size - 1)) for _ in range(4))
    top, bottom, left, right = pad
    h = draw(st.integers(max(1, size - top - bottom), size + 5))
    w = draw(st.integers(max(1, size - left - right), size + 5))
    return dict(shape=(draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3))),
                size=size, stride=stride, padding=pad)


def _pool_check(case, rng, elementwise=False):
    kw = dict(size=case["size"], stride=case["stride"], padding=case["padding"])
    x = shuffled_arange(rng, case["shape"])
    check_op("max_pool", lambda x: R.max_pool(x, **kw),
             lambda ins, y, dy: (R.max_pool_backward(ins[0], y, dy, **kw),), [x], rng=rng,
             elementwise=elementwise)


@SETTINGS
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_max_pool(case, seed):
    _pool_check(case, rng_from(seed))


@pytest.mark.parametrize("size,stride,padding", [(3, 2, 0), (2, 2, 0), (3, 2, (1, 0, 2, 1))])
def test_max_pool_elementwise(size, stride, padding):
    _pool_check(dict(shape=(1, 6, 5, 2), size=size, stride=stride, padding=padding),
                rng_from(4), elementwise=True)
