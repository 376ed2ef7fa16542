"""ReLU kernels (csrc/activation.cuh) against the reference, bit for bit: the vector
(float4) path, the scalar tail, and the unaligned fallback."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st


def unaligned(a):
    """A contiguous copy of `a` that starts 4 bytes past a 16-byte boundary."""
    buf = np.empty(a.size + 4, dtype=np.float32)
    start = (-(buf.ctypes.data // 4) % 4 + 1) % 4 or 1
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 16 != 0 and out.flags.c_contiguous
    return out


@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_relu_matches_reference(kernel_device, cpu, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y = kernel_device.get(kernel_device.ops.relu(kernel_device.put(x)))
    np.testing.assert_array_equal(y, cpu.relu(x))
    dx = kernel_device.get(kernel_device.ops.relu_backward(kernel_device.put(y), kernel_device.put(dy)))
    np.testing.assert_array_equal(dx, cpu.relu_backward(cpu.relu(x), dy))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 1023, 4096 * 3 + 1])
def test_relu_vector_and_tail(kernel_device, cpu, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    y = kernel_device.get(kernel_device.ops.relu(kernel_device.put(x)))
    np.testing.assert_array_equal(y, cpu.relu(x))
    dx = kernel_device.get(kernel_device.ops.relu_backward(kernel_device.put(y), kernel_device.put(dy)))
    np.testing.assert_array_equal(dx, cpu.relu_backward(y, dy))


@pytest.mark.emu
@pytest.mark.parametrize("n", [5, 37, 1001])
def test_relu_unaligned_pointers_take_the_scalar_path(cpu, n):
    import cuda_convnet as ccn

    emu = ccn.backend("emu")
    rng = np.random.default_rng(n)
    x = unaligned(rng.standard_normal(n).astype(np.float32))
    np.testing.assert_array_equal(emu.relu(x), cpu.relu(x))
    dy = unaligned(rng.standard_normal(n).astype(np.float32))
    y = unaligned(cpu.relu(x))
    np.testing.assert_array_equal(emu.relu_backward(y, dy), cpu.relu_backward(y, dy))


@pytest.mark.alexnet_shapes
def test_relu_alexnet_activation(kernel_device, cpu):
    """conv1's output at batch 2: 2 x 55 x 55 x 96."""
    rng = np.random.default_rng(55)
    x = rng.standard_normal((2, 55, 55, 96)).astype(np.float32)
    np.testing.assert_array_equal(kernel_device.get(kernel_device.ops.relu(kernel_device.put(x))), cpu.relu(x))


def test_relu_fc_shape(kernel_device, cpu):
    """fc6/fc7 activations at batch 2: 2 x 4096."""
    x = np.random.default_rng(4096).standard_normal((2, 4096)).astype(np.float32)
    np.testing.assert_array_equal(kernel_device.get(kernel_device.ops.relu(kernel_device.put(x))), cpu.relu(x))


def test_relu_rejects_bad_input(kernel_device):
    x = np.ones((2, 3), np.float64)
    with pytest.raises(TypeError, match="float32"):
        kernel_device.ops.relu(kernel_device.put(x))
    y = kernel_device.put(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="dy must have shape"):
        kernel_device.ops.relu_backward(y, kernel_device.put(np.ones((3, 2), np.float32)))
