"""Channel concat/split where the two towers meet, the whole op family: the kernels
(csrc/copy.cuh) against the reference (exact copies, one launch for the whole operation,
float4 and scalar paths), then the reference itself (cuda_convnet/reference/copy.py): its
definition, the gradient relation (each is the other's adjoint, so split is concat's
backward) and the shared argument checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned

import cuda_convnet as ccn
from cuda_convnet import reference as R


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


# ----------------------------------------------------------------- reference: definition, gradient relation, bad input

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


@pytest.mark.parametrize("sizes", [[128, 128], [5, 7, 4], [4, 0, 8, 4]], ids=["float4", "scalar", "empty_part"])
def test_split_accumulates_in_place_with_beta_one(kernel_device, cpu, sizes):
    """split_channels(accumulate=...): a part given an array is added to it in place (the
    kernel's beta = 1) and that array is returned; the sum is the Net's `grads[i] + dx`
    bit for bit. Parts without one are new arrays (beta = 0: never read, so a NaN-poisoned
    or garbage buffer cannot leak in); the reference does the same."""
    dev = kernel_device
    rng = np.random.default_rng(sum(sizes))
    dy = randn(rng, 2, 3, 3, sum(sizes))
    prior = [randn(rng, 2, 3, 3, s) if i % 2 == 0 else None for i, s in enumerate(sizes)]
    plain = cpu.split_channels(dy, sizes)
    want = [p + d if p is not None else d for p, d in zip(prior, plain)]
    for ops, put, get in ((dev.ops, dev.put, dev.get), (cpu, np.asarray, np.asarray)):
        acc = [put(p.copy()) if p is not None else None for p in prior]
        parts = ops.split_channels(put(dy), sizes, accumulate=acc)
        for got, a, w in zip(parts, acc, want):
            if a is not None:
                assert got is a
            np.testing.assert_array_equal(get(got), w)


def test_split_accumulate_refuses_bad_targets(kernel_device, cpu):
    dev = kernel_device
    for ops, put in ((dev.ops, dev.put), (cpu, np.asarray)):
        dy = put(np.ones((2, 6), np.float32))
        with pytest.raises(ValueError, match="split_channels: accumulate has 1 entries for 2 parts"):
            ops.split_channels(dy, [3, 3], accumulate=[None])
        with pytest.raises(ValueError, match=r"split_channels: accumulate\[1\] must have shape \(2, 3\)"):
            ops.split_channels(dy, [3, 3], accumulate=[None, put(np.ones((2, 4), np.float32))])
        with pytest.raises(TypeError, match=r"split_channels: accumulate\[0\] has dtype float64"):
            ops.split_channels(dy, [3, 3], accumulate=[put(np.ones((2, 3))), None])
