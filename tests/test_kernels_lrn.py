"""Cross-channel LRN (csrc/lrn.cuh) against the float64 reference, both alpha conventions,
both kernel versions (1: general, window read from global memory; 2: whole rows in shared
memory, float4 where aligned), AlexNet's two LRN layers, every thread order."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_same_in_every_order, in_every_thread_order, randn, unaligned
from tolerances import tol

import cuda_convnet as ccn


@pytest.fixture(params=[1, 2])
def lrn_version(request, kernel_device, monkeypatch):
    """Run the test with kernel version 1 and then 2 (the launcher picks 2 for C <= 2048)."""
    for op in ("lrn", "lrn_backward"):
        monkeypatch.setitem(kernel_device.ops.kernel_versions, op, request.param)
    return request.param


def check_lrn(dev, cpu, x, dy, **kw):
    y = dev.get(dev.ops.lrn(dev.put(x), **kw))
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64 = cpu.lrn(x64, **kw)
    np.testing.assert_allclose(y, y64, **tol("lrn", "kernel_vs_reference"))
    dx = dev.get(dev.ops.lrn_backward(dev.put(x), dev.put(y), dev.put(dy), **kw))
    np.testing.assert_allclose(dx, cpu.lrn_backward(x64, y64, dy64, **kw), **tol("lrn_backward", "kernel_vs_reference"))
    return y, dx


@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 20)),
       size=st.integers(1, 8), alpha=st.sampled_from([1e-4, 0.1, 1.0]), beta=st.sampled_from([0.75, 0.5, 1.0]),
       k=st.sampled_from([2.0, 1.0]), divide=st.booleans(), seed=st.integers(0, 2**31))
def test_lrn_matches_reference(kernel_device, cpu, lrn_version, shape, size, alpha, beta, k, divide, seed):
    rng = np.random.default_rng(seed)
    check_lrn(kernel_device, cpu, randn(rng, *shape), randn(rng, *shape), size=size, alpha=alpha, beta=beta, k=k,
              divide_alpha_by_size=divide)


@pytest.mark.parametrize("shape", [(1, 7, 5, 3), (1, 1, 1, 1), (3, 3, 5, 97)])
def test_lrn_ragged_small_shapes(kernel_device, cpu, lrn_version, shape):
    """N = 1, C = 3, odd H and W, one channel, an odd C above 96."""
    rng = np.random.default_rng(sum(shape))
    check_lrn(kernel_device, cpu, randn(rng, *shape), randn(rng, *shape), alpha=1.0)


@pytest.mark.parametrize("divide", [True, False])
def test_lrn_window_wider_than_the_channels(kernel_device, cpu, lrn_version, divide):
    rng = np.random.default_rng(1)
    x, dy = randn(rng, 1, 2, 3, 3), randn(rng, 1, 2, 3, 3)
    for size in (5, 6, 7, 100):
        check_lrn(kernel_device, cpu, x, dy, size=size, alpha=0.5, divide_alpha_by_size=divide)
    # Any window past the whole row is the whole row (the reference would need memory for
    # the zero-padded window; the kernels clip): size 2^40 gives the result of size 100.
    huge, whole = (kernel_device.get(kernel_device.ops.lrn(kernel_device.put(x), size=s, alpha=0.5, beta=1.0,
                                                           divide_alpha_by_size=False)) for s in (2**40, 100))
    np.testing.assert_array_equal(huge, whole)


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("h,c", [(55, 96), (27, 256)])
def test_lrn_alexnet_layers(kernel_device, cpu, h, c):
    """§3.3's LRN after conv1 (55x55x96) and conv2 (27x27x256), batch 2, the paper's
    hyper-parameters in both conventions; inputs on the scale of ReLU outputs."""
    rng = np.random.default_rng(c)
    x = np.abs(randn(rng, 2, h, h, c)) * 10
    dy = randn(rng, 2, h, h, c)
    for divide in (True, False):
        check_lrn(kernel_device, cpu, x, dy, divide_alpha_by_size=divide)


def test_lrn_many_channels_uses_the_general_kernel(kernel_device, cpu):
    """C > 2048 (no whole row fits the shared tile): the launcher falls back to kernel 1."""
    rng = np.random.default_rng(2)
    x, dy = randn(rng, 1, 1, 2, 2051), randn(rng, 1, 1, 2, 2051)
    ops, put = kernel_device.ops, kernel_device.put
    assert ops.kernel_version("lrn", put(np.ascontiguousarray(x[..., :2048]))) == 2
    assert ops.kernel_version("lrn", put(x)) == 1 and ops.kernel_version("lrn_backward", put(x), put(x), put(dy)) == 1
    check_lrn(kernel_device, cpu, x, dy, alpha=1.0)
    # A C++ exception from the launcher. Skipped under the ASan build: with only libasan
    # preloaded (as .ci/run does), ASan's __cxa_throw interceptor finds no libstdc++ and
    # aborts the process on any throw (preloading libstdc++.so after libasan.so fixes it).
    if not ccn.build_info()["sanitize"]:
        with pytest.raises(ValueError, match="kernel2 needs channels <= 2048"):
            ops.ext.lrn(x=0, y=0, rows=1, channels=2051, size=5, alpha=1e-4, neg_beta=-0.75, k=2.0, version=2)
        for op, args in (("lrn", (x,)), ("lrn_backward", (x, x, dy))):
            with pytest.MonkeyPatch.context() as mp:
                mp.setitem(ops.kernel_versions, op, 2)
                for call in (ops.kernel_version, lambda name, *a: getattr(ops, name)(*a)):
                    with pytest.raises(ValueError, match="kernel2 needs channels <= 2048"):
                        call(op, *map(put, args))


@pytest.mark.emu
def test_lrn_unaligned_pointers_take_the_scalar_path(cpu, monkeypatch):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(3)
    x, dy = unaligned(randn(rng, 2, 3, 3, 8)), unaligned(randn(rng, 2, 3, 3, 8))
    for version in (1, 2):
        monkeypatch.setitem(emu.kernel_versions, "lrn", version)
        monkeypatch.setitem(emu.kernel_versions, "lrn_backward", version)
        y = emu.lrn(x, alpha=1.0)
        np.testing.assert_allclose(y, cpu.lrn(x.astype(np.float64), alpha=1.0), **tol("lrn", "kernel_vs_reference"))
        dx = emu.lrn_backward(x, unaligned(y), dy, alpha=1.0)
        want = cpu.lrn_backward(x.astype(np.float64), y.astype(np.float64), dy.astype(np.float64), alpha=1.0)
        np.testing.assert_allclose(dx, want, **tol("lrn_backward", "kernel_vs_reference"))


@pytest.mark.emu
@pytest.mark.parametrize("c", [96, 13])
def test_lrn_identical_in_every_thread_order(monkeypatch, c):
    """Kernel 2 reads neighbours' channels from shared memory after a barrier: a missing
    __syncthreads would differ between orders (and read the NaN-poisoned tile)."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(c)
    x, dy = randn(rng, 2, 5, 7, c), randn(rng, 2, 5, 7, c)
    y = emu.lrn(x, alpha=1.0)
    results = in_every_thread_order(monkeypatch, lambda: [emu.lrn(x, alpha=1.0), emu.lrn_backward(x, y, dy, alpha=1.0)])
    assert_same_in_every_order(results)
    assert not np.isnan(results["forward"][1]).any()


def test_lrn_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    x = put(np.ones((1, 2, 2, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.lrn(put(np.ones((1, 2, 2, 4))))
    with pytest.raises(ValueError, match="4-D"):
        ops.lrn(put(np.ones((2, 4), np.float32)))
    with pytest.raises(ValueError, match="k must be > 0"):
        ops.lrn(x, k=0.0)
    with pytest.raises(ValueError, match="size must be >= 1"):
        ops.lrn(x, size=0)
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 2, 2, 4\)"):
        ops.lrn_backward(x, x, put(np.ones((1, 2, 2, 3), np.float32)))
