"""The activation kernels (csrc/activation.cuh, kernel_ops/activation.py) against the
reference: ReLU bit for bit, tanh at the tolerance table's figure; the vector (float4)
path, the scalar tail and the unaligned fallback of each, forward and backward."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned
from tolerances import tol

import cuda_convnet as ccn

# ------------------------------------------------------------------------------ ReLU

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


# ------------------------------------------------------------------------------ tanh

def check_tanh(dev, cpu, x, dy):
    y = dev.get(dev.ops.tanh(dev.put(x)))
    np.testing.assert_allclose(y, cpu.tanh(x.astype(np.float64)), **tol("tanh", "kernel_vs_reference"))
    dx = dev.get(dev.ops.tanh_backward(dev.put(y), dev.put(dy)))
    np.testing.assert_allclose(dx, cpu.tanh_backward(y.astype(np.float64), dy.astype(np.float64)),
                               **tol("tanh_backward", "kernel_vs_reference"))


@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_tanh_matches_reference(kernel_device, cpu, shape, seed):
    rng = np.random.default_rng(seed)
    check_tanh(kernel_device, cpu, 3 * randn(rng, *shape), randn(rng, *shape))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 1023, 2 * 4096 + 3])
def test_tanh_vector_and_tail(kernel_device, cpu, n):
    rng = np.random.default_rng(n)
    check_tanh(kernel_device, cpu, 3 * randn(rng, n), randn(rng, n))


def test_tanh_fc_shape(kernel_device, cpu):
    """fc6/fc7 activations at batch 2: 2 x 4096."""
    rng = np.random.default_rng(4096)
    check_tanh(kernel_device, cpu, 3 * randn(rng, 2, 4096), randn(rng, 2, 4096))


@pytest.mark.emu
@pytest.mark.parametrize("n", [5, 37, 1001])
def test_tanh_unaligned_pointers_take_the_scalar_path(cpu, n):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(n)
    x, dy = unaligned(randn(rng, n)), unaligned(randn(rng, n))
    y = emu.tanh(x)
    np.testing.assert_allclose(y, cpu.tanh(x.astype(np.float64)), **tol("tanh", "kernel_vs_reference"))
    dx = emu.tanh_backward(unaligned(y), dy)
    np.testing.assert_allclose(dx, cpu.tanh_backward(y.astype(np.float64), dy.astype(np.float64)),
                               **tol("tanh_backward", "kernel_vs_reference"))


def test_tanh_saturates_and_keeps_nan(kernel_device):
    x = np.array([-100, -20, 0.0, 20, 100, np.inf, -np.inf, np.nan], np.float32)
    y = kernel_device.get(kernel_device.ops.tanh(kernel_device.put(x)))
    np.testing.assert_array_equal(y, [-1, -1, 0, 1, 1, 1, -1, np.nan])


def test_tanh_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    with pytest.raises(TypeError, match="float32"):
        ops.tanh(put(np.ones((2, 3), np.float64)))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.tanh_backward(put(np.ones((2, 3), np.float32)), put(np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match="contiguous"):
        ops.tanh(put(np.ones((4, 3), np.float32)).T)
