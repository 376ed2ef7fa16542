"""Bad input gives a clear TypeError/ValueError naming the argument (ARCHITECTURE.md §8.5), and
the shared output-size rules of ``cuda_convnet.shapes``.

These run against the reference ops; the emu and cuda backends call the same
``cuda_convnet.checks`` functions, so they fail identically.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_support import arr

from cuda_convnet import checks, shapes
from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- shapes

def test_normalize_padding_forms():
    assert shapes.normalize_padding(2) == (2, 2, 2, 2)
    assert shapes.normalize_padding((1, 3)) == (1, 1, 3, 3)
    assert shapes.normalize_padding((0, 1, 2, 3)) == (0, 1, 2, 3)
    assert shapes.normalize_padding([np.int64(1), 2, 0, 0]) == (1, 2, 0, 0)
    with pytest.raises(ValueError, match="length 3"):
        shapes.normalize_padding((1, 2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        shapes.normalize_padding(-1)
    with pytest.raises(TypeError, match="padding"):
        shapes.normalize_padding(1.5)
    with pytest.raises(TypeError, match="bool"):
        shapes.normalize_padding(True)


def test_alexnet_sizes():
    # §3.5 conv1: 227 crops give 55 with no padding; 224 crops need 3 pixels of padding.
    assert shapes.conv_output_size(227, 227, 11, 11, 4, 0) == (55, 55)
    assert shapes.conv_output_size(224, 224, 11, 11, 4, (1, 2, 1, 2)) == (55, 55)
    assert shapes.conv_output_size(224, 224, 11, 11, 4, 0) == (54, 54)
    # §3.4 overlapping pooling, z=3, s=2: 55 -> 27 -> (conv2 same) 27 -> 13 -> 6.
    assert shapes.pool_output_size(55, 55, 3, 2, 0) == (27, 27)
    assert shapes.pool_output_size(27, 27, 3, 2, 0) == (13, 13)
    assert shapes.pool_output_size(13, 13, 3, 2, 0) == (6, 6)
    assert shapes.conv_output_size(27, 27, 5, 5, 1, 2) == (27, 27)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(h=st.integers(1, 20), r=st.integers(1, 8), stride=st.integers(1, 5),
       top=st.integers(0, 4), bottom=st.integers(0, 4))
def test_conv_output_size_counts_the_windows(h, r, stride, top, bottom):
    """Floor rule == the number of window positions that fit in the padded input."""
    hp = h + top + bottom
    fitting = sum(1 for i in range(0, hp, stride) if i + r <= hp)
    if r > hp:
        with pytest.raises(ValueError, match="larger than the padded input"):
            shapes.conv_output_size(h, 1, r, 1, stride, (top, bottom, 0, 0))
    else:
        assert shapes.conv_output_size(h, 1, r, 1, stride, (top, bottom, 0, 0))[0] == fitting




# ----------------------------------------------------------------------------- dtypes / layout

@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, bool])
def test_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match=r"relu: x must be float32 or float64, got"):
        R.relu(arr(2, 3, dtype=dtype))
    with pytest.raises(TypeError, match=r"conv2d: x must be float32 or float64"):
        R.conv2d(arr(1, 4, 4, 3, dtype=dtype), arr(2, 3, 3, 3))


def test_mixed_dtypes():
    with pytest.raises(TypeError, match="conv2d: w has dtype float32 but x has dtype float64"):
        R.conv2d(arr(1, 4, 4, 3), arr(2, 3, 3, 3, dtype=np.float32))
    with pytest.raises(TypeError, match="linear_backward: dy has dtype float32"):
        R.linear_backward(arr(2, 3), arr(4, 3), arr(2, 4, dtype=np.float32))


def test_not_an_array():
    with pytest.raises(TypeError, match="linear: x must be an array"):
        R.linear([[1.0, 2.0]], arr(3, 2))


def test_non_contiguous_arrays_refused():
    x = arr(1, 8, 8, 6)
    with pytest.raises(ValueError, match="conv2d: x must be C-contiguous"):
        R.conv2d(x[:, ::2], arr(2, 3, 3, 6))
    with pytest.raises(ValueError, match="conv2d: w must be C-contiguous"):
        R.conv2d(x, arr(3, 3, 6, 2).transpose(3, 0, 1, 2))
    with pytest.raises(ValueError, match="linear: w must be C-contiguous"):
        R.linear(arr(2, 3), arr(3, 4).T)
    with pytest.raises(ValueError, match="max_pool: x must be C-contiguous"):
        R.max_pool(np.asfortranarray(arr(2, 5, 5, 3)))
    with pytest.raises(ValueError, match="lrn: x must be C-contiguous"):
        R.lrn(x[..., ::2])
    with pytest.raises(ValueError, match="relu_backward: dy must be C-contiguous"):
        R.relu_backward(arr(4, 4), arr(4, 4).T)


# ----------------------------------------------------------------------------- other ops




# ----------------------------------------------------------------------------- duck typing

class FakeDeviceArray:
    """Looks like a CuPy array (shape, dtype, ndim, flags) but refuses host conversion:
    the checks must not call np.asarray on device arrays."""

    class _Flags:
        def __init__(self, c):
            self.c_contiguous = c

    def __init__(self, shape, dtype=np.float32, contiguous=True):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self.flags = self._Flags(contiguous)

    def __array__(self, *a, **k):
        raise AssertionError("checks converted a device array to NumPy")


def test_checks_work_on_device_like_arrays():
    g = checks.check_conv_args(FakeDeviceArray((2, 227, 227, 3)),
                               FakeDeviceArray((96, 11, 11, 3)), FakeDeviceArray((96,)),
                               stride=4)
    assert (g.p, g.q, g.k, g.c_per_group) == (55, 55, 96, 3)
    g = checks.check_pool_args(FakeDeviceArray((2, 55, 55, 96)), 3, 2, 0)
    assert (g.p, g.q) == (27, 27)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        checks.check_conv_args(FakeDeviceArray((2, 9, 9, 3), contiguous=False),
                               FakeDeviceArray((4, 3, 3, 3)))
    with pytest.raises(TypeError, match="x must be float32 or float64, got float16"):
        checks.check_activation_args(FakeDeviceArray((3,), np.float16), op="relu")
