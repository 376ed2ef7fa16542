"""The FC layers' kernels (csrc/gemm.cuh) against the NumPy reference: linear and
linear_backward on the emu backend (and cuda when a GPU is present), on random float32
inputs, outputs poisoned with NaN before every launch (conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_kernel_close, randn

import cuda_convnet as ccn


def reference(cpu, x, w, b=None, dy=None):
    """The reference in float64 on the same float32 values."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    if dy is None:
        return cpu.linear(x64, w64, None if b is None else b.astype(np.float64))
    return cpu.linear_backward(x64, w64, dy.astype(np.float64))


def check_linear(dev, cpu, n, fan_in, fan_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    # Weights scaled by 1/sqrt(fan_in) keep outputs O(1), the scale tests/tolerances.py assumes.
    x, dy = randn(rng, n, fan_in), randn(rng, n, fan_out)
    w = randn(rng, fan_out, fan_in) / np.float32(np.sqrt(fan_in))
    b = randn(rng, fan_out) if with_bias else None
    y = dev.get(dev.ops.linear(dev.put(x), dev.put(w), dev.put(b)))
    assert y.shape == (n, fan_out) and y.dtype == np.float32
    assert_kernel_close("linear", y, reference(cpu, x, w, b))
    dx, dw, db = (dev.get(a) for a in dev.ops.linear_backward(dev.put(x), dev.put(w), dev.put(dy)))
    rdx, rdw, rdb = reference(cpu, x, w, dy=dy)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert_kernel_close("linear_backward", got, want)
    # The ReLU in the GEMM's epilogue: max(0, y) of the same bits (the reference's relu=True
    # is max(0, its y)); need_dx=False: no dx, and dw and db the same bits as with it.
    yr = dev.get(dev.ops.linear(dev.put(x), dev.put(w), dev.put(b), relu=True))
    np.testing.assert_array_equal(yr, np.maximum(y, 0))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    np.testing.assert_array_equal(cpu.linear(x64, w64, b64, relu=True), np.maximum(cpu.linear(x64, w64, b64), 0))
    none, dw2, db2 = dev.ops.linear_backward(dev.put(x), dev.put(w), dev.put(dy), need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dev.get(dw2), dw)
    np.testing.assert_array_equal(dev.get(db2), db)
    rnone, rdw2, rdb2 = cpu.linear_backward(x64, w64, dy.astype(np.float64), need_dx=False)
    assert rnone is None
    np.testing.assert_array_equal(rdw2, rdw)
    np.testing.assert_array_equal(rdb2, rdb)


@given(
    n=st.integers(1, 70),
    fan_in=st.integers(1, 150),
    fan_out=st.integers(1, 140),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_linear_matches_reference_on_drawn_shapes(kernel_device, cpu, n, fan_in, fan_out, with_bias, seed):
    check_linear(kernel_device, cpu, n, fan_in, fan_out, with_bias, seed)


@pytest.mark.parametrize(
    "n,fan_in,fan_out",
    [
        (1, 1, 1),      # K = 1, a single output
        (64, 16, 64),   # exactly one tile
        (65, 17, 63),   # one past / one short of every tile edge
        (3, 1, 200),    # K = 1 with many columns
        # gemm_kernel2 (M, N >= 128): forward N=out; dgrad N=in; wgrad M=out, N=in
        (128, 128, 128),  # one 128 x 128 tile, float4 loads everywhere
        (130, 133, 131),  # ragged, K and N not multiples of 4: scalar loads and stores
        (257, 160, 200),  # 3 row tiles; forward, dgrad and wgrad all on kernel2
    ],
)
def test_linear_tile_edges(kernel_device, cpu, n, fan_in, fan_out):
    check_linear(kernel_device, cpu, n, fan_in, fan_out, True, seed=n * fan_in + fan_out)


@pytest.mark.parametrize("n,fan_in,fan_out,auto", [(5, 7, 9, 1), (130, 133, 131, 2)])
def test_linear_each_gemm_kernel_version(kernel_device, cpu, monkeypatch, n, fan_in, fan_out, auto):
    """kernel_versions["linear"/"linear_backward"] forces gemm_kernel1 or 2 on any shape (both
    zero-fill ragged edges); 0 lets the launcher pick (2 where M, N >= 128)."""
    ops, put = kernel_device.ops, kernel_device.put
    x, w = put(np.ones((n, fan_in), np.float32)), put(np.ones((fan_out, fan_in), np.float32))
    assert ops.kernel_version("linear", x, w) == auto
    for version in (1, 2):
        monkeypatch.setitem(ops.kernel_versions, "linear", version)
        monkeypatch.setitem(ops.kernel_versions, "linear_backward", version)
        assert ops.kernel_version("linear", x, w) == version
        check_linear(kernel_device, cpu, n, fan_in, fan_out, True, seed=version)
    with pytest.raises(ValueError, match="precision 'tf32' runs gemm_tc"):
        ops.linear(x, w, precision="tf32")
    with pytest.raises(ValueError, match="'linear_backward' launches several kernels"):
        ops.kernel_version("linear_backward", x, w, put(np.ones((n, fan_out), np.float32)))
    with pytest.raises(ValueError, match="'bias_grad' has no kernel versions"):
        ops.kernel_version("bias_grad", x, w)


@pytest.mark.alexnet_shapes
def test_linear_alexnet_fc_shapes(kernel_device, cpu):
    """The paper's FC layers at batch 2: fc6 9216->4096 forward (the whole layer), and
    fc6 cut to 512 outputs plus fc7/fc8 shapes through the backward pass."""
    rng = np.random.default_rng(6)
    x, w, b = randn(rng, 2, 9216), randn(rng, 4096, 9216) * 0.01, randn(rng, 4096)
    y = kernel_device.get(kernel_device.ops.linear(kernel_device.put(x), kernel_device.put(w), kernel_device.put(b)))
    assert_kernel_close("linear", y, reference(cpu, x, w, b))
    check_linear(kernel_device, cpu, 2, 9216, 512, True, seed=7)
    check_linear(kernel_device, cpu, 2, 4096, 1000, True, seed=8)


def test_linear_backward_is_deterministic(kernel_device):
    """No atomics in the reductions: two runs give bit-identical gradients."""
    rng = np.random.default_rng(3)
    x, w, dy = randn(rng, 130, 70), randn(rng, 90, 70), randn(rng, 130, 90)
    args = [kernel_device.put(a) for a in (x, w, dy)]
    first = [kernel_device.get(a) for a in kernel_device.ops.linear_backward(*args)]
    second = [kernel_device.get(a) for a in kernel_device.ops.linear_backward(*args)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.emu
def test_linear_identical_in_every_thread_order(monkeypatch, cpu):
    """The emulator's thread order between barriers must not change a correct kernel's
    result, bit for bit (each output element is one thread's fixed-order sum)."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(11)
    x, w, b, dy = randn(rng, 67, 45), randn(rng, 70, 45), randn(rng, 70), randn(rng, 67, 70)
    results = {}
    for order in ("forward", "reverse", "shuffle:5"):
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        results[order] = [emu.linear(x, w, b), *emu.linear_backward(x, w, dy)]
    for order, outs in results.items():
        for a, ref in zip(outs, results["forward"]):
            np.testing.assert_array_equal(a, ref, err_msg=order)
    assert_kernel_close("linear", results["forward"][0], reference(cpu, x, w, b))


def test_linear_rejects_bad_input(kernel_device):
    rng = np.random.default_rng(0)
    x, w = randn(rng, 4, 5), randn(rng, 3, 5)
    ops, put = kernel_device.ops, kernel_device.put
    with pytest.raises(TypeError, match="float32"):
        ops.linear(put(x.astype(np.float64)), put(w.astype(np.float64)))
    with pytest.raises(ValueError, match="w has 6 inputs"):
        ops.linear(put(x), put(randn(rng, 3, 6)))
    with pytest.raises(ValueError, match="contiguous"):
        ops.linear(put(randn(rng, 5, 4)).T, put(w))
    with pytest.raises(ValueError, match="b must have shape"):
        ops.linear(put(x), put(w), put(randn(rng, 4)))
    with pytest.raises(TypeError, match="must be an array"):
        ops.linear(x.tolist(), put(w))


@pytest.mark.emu
def test_emu_refuses_device_arrays_it_cannot_read():
    emu = ccn.backend("emu")

    class Fake:
        shape, dtype, ndim = (2, 2), np.dtype(np.float32), 2

        class flags:
            c_contiguous = True

    with pytest.raises(TypeError, match="NumPy arrays"):
        emu.linear(Fake(), np.ones((2, 2), np.float32))
