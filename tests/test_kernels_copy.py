"""Channel concat/split for the two towers (csrc/copy.cuh) against the reference: exact
copies, one launch for the whole operation, float4 and scalar paths."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned

import cuda_convnet as ccn


def check_copy(dev, cpu, xs, dy=None):
    sizes = [x.shape[-1] for x in xs]
    y = dev.get(dev.ops.concat_channels([dev.put(x) for x in xs]))
    np.testing.assert_array_equal(y, cpu.concat_channels(xs))
    dy = y if dy is None else dy
    parts = [dev.get(p) for p in dev.ops.split_channels(dev.put(dy), sizes)]
    assert len(parts) == len(xs)
    for got, want in zip(parts, cpu.split_channels(dy, sizes)):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    return y, parts


@given(lead=st.lists(st.integers(1, 5), min_size=1, max_size=3), sizes=st.lists(st.integers(0, 9), min_size=1,
       max_size=4), seed=st.integers(0, 2**31))
def test_concat_and_split_match_reference(kernel_device, cpu, lead, sizes, seed):
    rng = np.random.default_rng(seed)
    xs = [randn(rng, *lead, s) for s in sizes]
    dy = randn(rng, *lead, sum(sizes))
    y, dxs = check_copy(kernel_device, cpu, xs, dy)
    # Split is concat's backward: the adjoint identity on the kernels' own outputs.
    np.testing.assert_allclose(np.vdot(y.astype(np.float64), dy),
                               sum(np.vdot(x.astype(np.float64), d) for x, d in zip(xs, dxs)), rtol=1e-12)


@pytest.mark.alexnet_shapes
def test_alexnet_tower_joins(kernel_device, cpu):
    """conv2's towers into conv3 (2 x 27x27x128 -> 256) and conv5's (2 x 13x13x128), and
    the FC layers' halves (2 x 2048 -> 4096), batch 2."""
    rng = np.random.default_rng(2)
    for shape in ((2, 27, 27, 128), (2, 13, 13, 128), (2, 2048)):
        check_copy(kernel_device, cpu, [randn(rng, *shape), randn(rng, *shape)])


@pytest.mark.emu
def test_whole_operation_is_one_launch():
    """The binding reports the launches: one for two towers, one per 32 parts beyond."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(3)
    for count, launches in ((1, 1), (2, 1), (32, 1), (33, 2), (70, 3)):
        xs = [randn(rng, 3, 2, 4) for _ in range(count)]
        y = np.full((3, 2, 4 * count), np.nan, np.float32)
        assert emu.ext.concat_channels(whole=y.ctypes.data, parts=[x.ctypes.data for x in xs],
                                       channels=[4] * count, rows=6) == launches
        np.testing.assert_array_equal(y, np.concatenate(xs, axis=-1))
        parts = [np.full((3, 2, 4), np.nan, np.float32) for _ in range(count)]
        assert emu.ext.split_channels(whole=y.ctypes.data, parts=[p.ctypes.data for p in parts],
                                      channels=[4] * count, rows=6) == launches
        for p, x in zip(parts, xs):
            np.testing.assert_array_equal(p, x)


def test_many_parts_and_empty_parts(kernel_device, cpu):
    rng = np.random.default_rng(4)
    sizes = [int(s) for s in rng.integers(0, 6, 40)]
    sizes[0] = 3
    check_copy(kernel_device, cpu, [randn(rng, 2, 3, s) for s in sizes])


@pytest.mark.emu
def test_unaligned_parts_take_the_scalar_path(cpu):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(5)
    xs = [unaligned(randn(rng, 2, 5, 8)), randn(rng, 2, 5, 4)]
    y = emu.concat_channels(xs)
    np.testing.assert_array_equal(y, cpu.concat_channels(xs))
    parts = emu.split_channels(unaligned(y), [8, 4])
    for p, x in zip(parts, xs):
        np.testing.assert_array_equal(p, x)


def test_copy_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    x = put(np.ones((2, 3, 3, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.concat_channels([put(np.ones((2, 3, 3, 4))), put(np.ones((2, 3, 3, 4)))])
    with pytest.raises(ValueError, match="all but the last"):
        ops.concat_channels([x, put(np.ones((2, 3, 2, 4), np.float32))])
    with pytest.raises(ValueError, match="add up to"):
        ops.split_channels(x, [1, 2])
    with pytest.raises(ValueError, match="contiguous"):
        ops.split_channels(put(np.ones((4, 3), np.float32)).T, [1, 3])
