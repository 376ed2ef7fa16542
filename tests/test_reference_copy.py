"""The reference channel concat/split (cuda_convnet/reference/copy.py): definition, the
gradient relation (each is the other's adjoint, so split is concat's backward), and the
shared argument checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuda_convnet import reference as R


@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=3), sizes=st.lists(st.integers(0, 5), min_size=1,
       max_size=4), seed=st.integers(0, 2**31))
def test_split_is_the_gradient_of_concat(lead, sizes, seed):
    """<concat(xs), dy> == sum_i <xs_i, split(dy)_i>: split is concat's adjoint (and so its
    backward), and concat is split's."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(tuple(lead) + (s,)) for s in sizes]
    dy = rng.standard_normal(tuple(lead) + (sum(sizes),))
    y = R.concat_channels(xs)
    dxs = R.split_channels(dy, sizes)
    np.testing.assert_allclose(np.vdot(y, dy), sum(np.vdot(x, d) for x, d in zip(xs, dxs)), rtol=1e-12, atol=1e-12)
    # Round trips.
    for a, b in zip(R.split_channels(y, sizes), xs):
        np.testing.assert_array_equal(a, b)
        assert a.flags.c_contiguous
    np.testing.assert_array_equal(R.concat_channels(dxs), dy)


def test_concat_is_along_the_channel_axis():
    a = np.arange(2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 2, 3, 2)
    b = -np.arange(2 * 2 * 3 * 1, dtype=np.float64).reshape(2, 2, 3, 1)
    y = R.concat_channels([a, b])
    assert y.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(y[..., :2], a)
    np.testing.assert_array_equal(y[..., 2], b[..., 0])


def test_concat_and_split_reject_bad_input():
    x = np.ones((2, 3, 3, 4))
    with pytest.raises(TypeError, match="concat_channels: xs must be a list"):
        R.concat_channels(x)
    with pytest.raises(ValueError, match="at least one array"):
        R.concat_channels([])
    with pytest.raises(ValueError, match=r"xs\[1\] has shape \(2, 3, 2, 4\)"):
        R.concat_channels([x, np.ones((2, 3, 2, 4))])
    with pytest.raises(TypeError, match="dtype"):
        R.concat_channels([x, np.ones((2, 3, 3, 4), np.float32)])
    with pytest.raises(ValueError, match="contiguous"):
        R.concat_channels([x, np.ones((2, 3, 4, 3)).transpose(0, 1, 3, 2)])
    with pytest.raises(ValueError, match="add up to 5 but y has 4 channels"):
        R.split_channels(x, [2, 3])
    with pytest.raises(ValueError, match="sizes entry must be >= 0"):
        R.split_channels(x, [5, -1])
    with pytest.raises(TypeError, match="sizes must be a sequence"):
        R.split_channels(x, 4)
    with pytest.raises(ValueError, match="must not be empty"):
        R.split_channels(x, [])
    with pytest.raises(ValueError, match="channel axis"):
        R.split_channels(np.float64(1.0) * np.ones(()), [1])
