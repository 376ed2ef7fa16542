"""Dropout (csrc/dropout.cuh) and the device Philox4x32-10 (csrc/philox.cuh): the kernel's
masks must be the reference's bit for bit (cuda_convnet/random.py states the contract),
in both modes, train and test, forward and backward."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet.random import dropout_keep_mask, philox4x32

# Random123 kat_vectors, philox4x32_10 (also in cuda_convnet/random.py's docstring).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

U64 = st.integers(0, 2**64 - 1)


def test_device_philox_known_answers(kernel_device):
    counters = np.array([c for c, _, _ in KAT], np.uint32)
    keys = np.array([k for _, k, _ in KAT], np.uint32)
    out = kernel_device.get(kernel_device.ops.philox4x32(kernel_device.put(counters), kernel_device.put(keys)))
    assert [tuple(int(v) for v in row) for row in out] == [e for _, _, e in KAT]


def test_device_philox_matches_numpy_on_random_words(kernel_device):
    rng = np.random.default_rng(123)
    counters = rng.integers(0, 2**32, (1000, 4), dtype=np.uint64).astype(np.uint32)
    keys = rng.integers(0, 2**32, (1000, 2), dtype=np.uint64).astype(np.uint32)
    out = kernel_device.get(kernel_device.ops.philox4x32(kernel_device.put(counters), kernel_device.put(keys)))
    np.testing.assert_array_equal(out, philox4x32(counters, keys))


def run_dropout(dev, x, **kw):
    return dev.get(dev.ops.dropout(dev.put(x), **kw))


def check_all_modes(dev, cpu, x, p, seed, offset):
    """Every (mode, train) forward and both backwards, bit for bit against the float32
    reference, and against float64 with the table's tolerance."""
    for mode in ("paper", "inverted"):
        for train in (True, False):
            kw = dict(p=p, seed=seed, offset=offset, mode=mode, train=train)
            y = run_dropout(dev, x, **kw)
            np.testing.assert_array_equal(y, cpu.dropout(x, **kw), err_msg=str(kw))
            np.testing.assert_allclose(y, cpu.dropout(x.astype(np.float64), **kw),
                                       **tol("dropout", "kernel_vs_reference"))
        kw = dict(p=p, seed=seed, offset=offset, mode=mode)
        dx = dev.get(dev.ops.dropout_backward(dev.put(x), **kw))
        np.testing.assert_array_equal(dx, cpu.dropout_backward(x, **kw), err_msg=str(kw))
        np.testing.assert_allclose(dx, cpu.dropout_backward(x.astype(np.float64), **kw),
                                   **tol("dropout_backward", "kernel_vs_reference"))


@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       p=st.one_of(st.sampled_from([0.0, 0.5, 0.3, 0.9]), st.floats(0, 0.999)),
       seed=U64, offset=U64, data_seed=st.integers(0, 2**31))
def test_dropout_matches_reference_bit_for_bit(kernel_device, cpu, shape, p, seed, offset, data_seed):
    x = randn(np.random.default_rng(data_seed), *shape)
    check_all_modes(kernel_device, cpu, x, p, seed, offset)


def test_dropout_mask_is_the_contract(kernel_device):
    """The zeros of training-mode output are exactly ~dropout_keep_mask (inputs are never 0)."""
    x = randn(np.random.default_rng(0), 2, 4096)
    for seed, offset in ((0, 0), (7, 3), (2**64 - 1, 2**64 - 1), (2**32 + 5, 2**33)):
        y = run_dropout(kernel_device, x, p=0.5, seed=seed, offset=offset)
        np.testing.assert_array_equal(y != 0, dropout_keep_mask(x.shape, 0.5, seed, offset))
    # Different offsets draw different masks.
    a = run_dropout(kernel_device, x, p=0.5, seed=1, offset=0) != 0
    b = run_dropout(kernel_device, x, p=0.5, seed=1, offset=1) != 0
    assert 0.4 < (a != b).mean() < 0.6


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 1021])
def test_dropout_vector_and_tail(kernel_device, cpu, n):
    """Every remainder of n mod 4: the last Philox block is partial."""
    x = randn(np.random.default_rng(n), n)
    check_all_modes(kernel_device, cpu, x, 0.5, 99, 5)


def test_dropout_fc_shapes(kernel_device, cpu):
    """fc6 and fc7 outputs at batch 2 (2 x 4096), the layers the paper drops (§4.2)."""
    rng = np.random.default_rng(6)
    for layer in (6, 7):
        x = randn(rng, 2, 4096)
        check_all_modes(kernel_device, cpu, x, 0.5, 2012, layer)


@pytest.mark.emu
@pytest.mark.parametrize("n", [5, 37, 1001])
def test_dropout_unaligned_pointers_take_the_scalar_path(cpu, n):
    emu = ccn.backend("emu")
    x = unaligned(randn(np.random.default_rng(n), n))
    for mode in ("paper", "inverted"):
        kw = dict(p=0.4, seed=n, offset=1, mode=mode)
        np.testing.assert_array_equal(emu.dropout(x, **kw), cpu.dropout(x, **kw))
        np.testing.assert_array_equal(emu.dropout_backward(x, **kw), cpu.dropout_backward(x, **kw))


def test_dropout_empty_array(kernel_device):
    y = kernel_device.get(kernel_device.ops.dropout(kernel_device.put(np.ones((0, 3), np.float32)), seed=1))
    assert y.shape == (0, 3)


def test_dropout_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    x = put(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.dropout(put(np.ones((2, 3))), seed=1)
    with pytest.raises(ValueError, match="p must be < 1"):
        ops.dropout(x, p=1.0, seed=1)
    with pytest.raises(ValueError, match="seed must be <="):
        ops.dropout(x, seed=2**64)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        ops.dropout_backward(x, seed=1, offset=-1)
    with pytest.raises(ValueError, match="mode must be"):
        ops.dropout(x, seed=1, mode="alexnet")
    with pytest.raises(TypeError, match="train must be a bool"):
        ops.dropout(x, seed=1, train=1)
    with pytest.raises(ValueError, match=r"counter must have shape \(n, 4\)"):
        ops.philox4x32(put(np.zeros((2, 3), np.uint32)), put(np.zeros((2, 2), np.uint32)))
