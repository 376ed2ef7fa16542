"""Max pooling (csrc/pool.cuh) against the reference. Forward is exact; backward is a
gather that adds each input's windows in the reference's order, so it is bit for bit the
float32 reference too, including the tie rule (first max in row-major window order) and
padding, and identical in every thread order."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from kernel_inputs import assert_same_in_every_order, in_every_thread_order, randn, unaligned
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet import shapes


def check_pool(dev, cpu, x, dy_seed=0, **kw):
    y = dev.get(dev.ops.max_pool(dev.put(x), **kw))
    want = cpu.max_pool(x, **kw)
    np.testing.assert_array_equal(y, want)
    dy = randn(np.random.default_rng(dy_seed), *y.shape)
    dx = dev.get(dev.ops.max_pool_backward(dev.put(x), dev.put(y), dev.put(dy), **kw))
    np.testing.assert_array_equal(dx, cpu.max_pool_backward(x, want, dy, **kw))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(dx, cpu.max_pool_backward(x64, cpu.max_pool(x64, **kw), dy.astype(np.float64), **kw),
                               **tol("max_pool_backward", "kernel_vs_reference"))
    return y, dx


def distinct(rng, shape):
    """A shuffled arange: no ties, so the backward has one answer whatever the tie rule."""
    return (rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2).astype(np.float32)


def tied(rng, shape):
    """Three levels and some -inf: ties in nearly every window, including with padding."""
    x = rng.integers(0, 3, shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = -np.inf
    return x


geometry = st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(1, 4),
                     st.integers(1, 3), st.lists(st.integers(0, 3), min_size=4, max_size=4))


@given(g=geometry, kind=st.sampled_from([distinct, tied, lambda rng, s: randn(rng, *s)]), seed=st.integers(0, 2**31))
def test_max_pool_matches_reference(kernel_device, cpu, g, kind, seed):
    n, h, w, c, size, stride, pad = g
    pad = tuple(min(p, size - 1) for p in pad)
    assume(h + pad[0] + pad[1] >= size and w + pad[2] + pad[3] >= size)
    rng = np.random.default_rng(seed)
    check_pool(kernel_device, cpu, kind(rng, (n, h, w, c)), seed, size=size, stride=stride, padding=pad)


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("h,c", [(55, 96), (27, 256), (13, 256)])
def test_max_pool_alexnet_layers(kernel_device, cpu, h, c):
    """§3.4's overlapping pooling (3/2) after conv1, conv2, conv5, batch 2."""
    rng = np.random.default_rng(h)
    y, _ = check_pool(kernel_device, cpu, randn(rng, 2, h, h, c), size=3, stride=2)
    assert y.shape[1:3] == shapes.pool_output_size(h, h, 3, 2, 0)


@pytest.mark.parametrize("shape", [(1, 7, 5, 3), (1, 1, 1, 1), (3, 4, 9, 5)])
def test_max_pool_ragged_small_shapes(kernel_device, cpu, shape):
    """N = 1, C = 3, odd H and W, a 1x1 image: the scalar path, every padding form."""
    rng = np.random.default_rng(sum(shape))
    x = randn(rng, *shape)
    for kw in (dict(size=1, stride=1, padding=0), dict(size=2, stride=2, padding=(1, 1, 0, 1)),
               dict(size=3, stride=2, padding=1)):
        try:
            shapes.pool_output_size(shape[1], shape[2], kw["size"], kw["stride"], kw["padding"])
        except ValueError:
            continue  # the window does not fit this image
        check_pool(kernel_device, cpu, x, **kw)


def test_max_pool_non_overlapping_and_ties(kernel_device, cpu):
    """2/2 (no overlap) and 3/2 on tie-heavy data with padding, C multiple of 4 (float4)."""
    rng = np.random.default_rng(1)
    x = tied(rng, (2, 11, 10, 8))
    for kw in (dict(size=2, stride=2), dict(size=3, stride=2, padding=1), dict(size=3, stride=1, padding=(2, 0, 1, 2))):
        check_pool(kernel_device, cpu, x, **kw)


def test_max_pool_all_equal_window_routes_to_first(kernel_device, cpu):
    x = np.ones((1, 3, 3, 1), np.float32)
    _, dx = check_pool(kernel_device, cpu, x, size=2, stride=1)
    np.testing.assert_array_equal(dx[0, :, :, 0] != 0, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_max_pool_nan_propagates_and_routes_nothing(kernel_device, cpu):
    x = randn(np.random.default_rng(2), 1, 5, 5, 4)
    x[0, 2, 2, 1] = np.nan
    y, dx = check_pool(kernel_device, cpu, x, size=3, stride=2)
    assert np.isnan(y[..., 1]).all() and not np.isnan(dx).any()


@pytest.mark.emu
def test_max_pool_unaligned_pointers_take_the_scalar_path(cpu):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(3)
    x = unaligned(randn(rng, 2, 9, 9, 8))
    y = emu.max_pool(x)
    np.testing.assert_array_equal(y, cpu.max_pool(x))
    dy = unaligned(randn(rng, *y.shape))
    np.testing.assert_array_equal(emu.max_pool_backward(x, unaligned(y), dy), cpu.max_pool_backward(x, y, dy))


@pytest.mark.emu
def test_max_pool_backward_identical_in_every_thread_order(monkeypatch):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(4)
    x = tied(rng, (2, 13, 13, 12))
    y = emu.max_pool(x, padding=1)
    dy = randn(rng, *y.shape)
    assert_same_in_every_order(in_every_thread_order(
        monkeypatch, lambda: [emu.max_pool(x, padding=1), emu.max_pool_backward(x, y, dy, padding=1)]))


def test_max_pool_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    x = put(np.ones((1, 5, 5, 2), np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.max_pool(put(np.ones((1, 5, 5, 2))))
    with pytest.raises(ValueError, match="4-D"):
        ops.max_pool(put(np.ones((5, 5, 2), np.float32)))
    with pytest.raises(ValueError, match="max_pool"):
        ops.max_pool(x, size=3, padding=3)
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 2, 2, 2\)"):
        ops.max_pool_backward(x, put(np.ones((1, 2, 2, 2), np.float32)), put(np.ones((1, 2, 2, 3), np.float32)))
