"""Local response normalisation (paper §3.3), the whole op family: the reference's
definition (explicit loops, the two alpha conventions, channel groups), its gradient
(central differences, float64), PyTorch's local_response_norm as the independent oracle,
argument errors, index bounds (absurd sizes), and the kernels of csrc/lrn.cuh against the
reference on every kernel backend: both kernel versions (1: general, window read from
global memory; 2: whole rows in shared memory, float4 where aligned), AlexNet's two LRN
layers, every thread order."""
from __future__ import annotations

import time

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import assume, given
from hypothesis import strategies as st
from kernel_inputs import (
    assert_same_in_every_order,
    emu_ext,
    host_ptr,
    in_every_thread_order,
    randn,
    unaligned,
)
from tolerances import tol
from torch_oracle import F, assert_close, nchw, needs_torch, nhwc

import cuda_convnet as ccn
from cuda_convnet import checks
from cuda_convnet import reference as R

REF_AND_EMU = ("cpu", "emu")
MAX = checks.MAX_EXTENT
INT_MAX = 2**31 - 1


def ones(*shape, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


# ----------------------------------------------------------------------------- reference: definition

def lrn_loops(x, size, alpha, beta, k, divide):
    a = alpha / size if divide else alpha
    n, h, w, c = x.shape
    y = np.empty_like(x)
    for idx in np.ndindex(n, h, w):
        for ci in range(c):
            lo, hi = max(0, ci - size // 2), min(c - 1, ci + (size - 1) // 2)
            s = sum(x[idx + (j,)] ** 2 for j in range(lo, hi + 1))
            y[idx + (ci,)] = x[idx + (ci,)] / (k + a * s) ** beta
    return y


@pytest.mark.parametrize("size", [1, 2, 4, 5, 11])
@pytest.mark.parametrize("divide", [True, False])
def test_lrn_window_definition(size, divide):
    x = np.random.default_rng(4).standard_normal((1, 2, 3, 6))
    np.testing.assert_allclose(
        R.lrn(x, size=size, alpha=0.5, beta=0.75, k=2.0, divide_alpha_by_size=divide),
        lrn_loops(x, size, 0.5, 0.75, 2.0, divide), rtol=1e-13)


def test_lrn_paper_formula_differs_from_code_by_alpha_over_n():
    """The two conventions are the same op with alpha scaled by n (ARCHITECTURE.md §3)."""
    x = np.random.default_rng(5).standard_normal((1, 2, 2, 8)) * 10
    np.testing.assert_allclose(R.lrn(x, alpha=5e-4, divide_alpha_by_size=True),
                               R.lrn(x, alpha=1e-4, divide_alpha_by_size=False), rtol=1e-14)


# ----------------------------------------------------------------------------- reference: gradient check (float64)

@st.composite
def lrn_cases(draw):
    groups = draw(st.integers(1, 3))
    return dict(
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
               groups * draw(st.integers(1, 5))),
        groups=groups,
        size=draw(st.integers(1, 7)),                 # odd and even, larger than C too
        # alpha large enough that the normalisation is far from the identity, so a wrong
        # cross-channel term shows (at the paper's 1e-4 it would hide below tolerance).
        alpha=draw(st.floats(0.05, 3.0)),
        beta=draw(st.floats(0.25, 1.5)),
        k=draw(st.floats(0.5, 3.0)),
        divide_alpha_by_size=draw(st.booleans()),
    )


def _lrn_check(case, rng, elementwise=False):
    params = {k: v for k, v in case.items() if k != "shape"}
    x = rng.standard_normal(case["shape"])
    check_op("lrn", lambda x: R.lrn(x, **params),
             lambda ins, y, dy: (R.lrn_backward(ins[0], y, dy, **params),), [x], rng=rng,
             elementwise=elementwise)


@SETTINGS
@given(case=lrn_cases(), seed=st.integers(0, 2**32 - 1))
def test_lrn_gradcheck(case, seed):
    _lrn_check(case, rng_from(seed))


@pytest.mark.parametrize("divide", [True, False])
@pytest.mark.parametrize("size", [2, 5])
def test_lrn_elementwise(size, divide):
    case = dict(shape=(1, 2, 2, 7), size=size, alpha=0.7, beta=0.75, k=2.0,
                divide_alpha_by_size=divide)
    _lrn_check(case, rng_from(3), elementwise=True)


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

@needs_torch
@pytest.mark.parametrize("divide_alpha_by_size", [True, False])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 9])   # even sizes and size > C too
def test_lrn_vs_torch(size, divide_alpha_by_size):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 4, 7)) * 2
    alpha, beta, k = 0.8, 0.75, 2.0   # big alpha: the normalisation must matter
    y = R.lrn(x, size=size, alpha=alpha, beta=beta, k=k,
              divide_alpha_by_size=divide_alpha_by_size)
    # torch.nn.functional.local_response_norm always uses alpha/size per term, so the
    # paper's printed formula (alpha per term) is torch's alpha = alpha * size.
    torch_alpha = alpha if divide_alpha_by_size else alpha * size
    xt = nchw(x)
    yt = F.local_response_norm(xt, size, alpha=torch_alpha, beta=beta, k=k)
    assert_close(y, nhwc(yt), "lrn")
    dy = rng.standard_normal(x.shape)
    yt.backward(nchw(dy).detach())
    dx = R.lrn_backward(x, y, dy, size=size, alpha=alpha, beta=beta, k=k,
                        divide_alpha_by_size=divide_alpha_by_size)
    assert_close(dx, nhwc(xt.grad), "lrn_backward")


@needs_torch
def test_lrn_paper_defaults():
    """The defaults are the paper's (n=5, alpha=1e-4, beta=0.75, k=2) in the code's
    alpha/n convention, i.e. torch's local_response_norm(x, 5, 1e-4, 0.75, 2)."""
    rng = np.random.default_rng(14)
    x = np.abs(rng.standard_normal((1, 2, 2, 16))) * 30    # post-ReLU magnitudes
    yt = F.local_response_norm(nchw(x), 5, alpha=1e-4, beta=0.75, k=2.0)
    assert_close(R.lrn(x), nhwc(yt), "lrn")


# ----------------------------------------------------------------------------- bad input

def test_lrn_errors():
    x = ones(1, 2, 2, 4)
    with pytest.raises(ValueError, match="lrn: size must be >= 1"):
        R.lrn(x, size=0)
    with pytest.raises(ValueError, match="lrn: k must be > 0"):
        R.lrn(x, k=0.0)
    with pytest.raises(ValueError, match="lrn: alpha must be >= 0"):
        R.lrn(x, alpha=-1.0)
    with pytest.raises(ValueError, match="lrn: beta must be finite"):
        R.lrn(x, beta=float("nan"))
    with pytest.raises(ValueError, match=r"lrn_backward: y must have shape"):
        R.lrn_backward(x, ones(1, 2, 2, 3), x)


@pytest.mark.parametrize("backend", REF_AND_EMU)
def test_lrn_k_that_rounds_to_zero_in_float32_is_refused_with_the_reason(backend):
    x = randn(np.random.default_rng(11), 1, 2, 2, 6)
    with pytest.raises(ValueError, match=r"lrn: k must be > 0.0, got 1e-50, which rounds to 0.0 in float32"):
        ccn.backend(backend).lrn(x, k=1e-50)


def test_lrn_tiny_k_is_fine_in_float64():
    x = randn(np.random.default_rng(12), 1, 2, 2, 6, dtype=np.float64)
    y = ccn.backend("cpu").lrn(x, k=1e-50, alpha=1e-4, beta=0.75, size=5)
    assert np.all(np.isfinite(y))
    sq = x * x
    c = x.shape[-1]
    want = np.empty_like(x)
    for ch in range(c):
        s = sq[..., max(0, ch - 2):min(c, ch + 3)].sum(axis=-1)
        want[..., ch] = x[..., ch] * (1e-50 + 1e-4 / 5 * s) ** -0.75
    np.testing.assert_allclose(y, want, rtol=1e-12)


# ----------------------------------------------------------------------------- index bounds

@pytest.mark.parametrize("backend", REF_AND_EMU)
@pytest.mark.parametrize("size", [2**62, 10**30])
def test_lrn_with_a_huge_size_is_the_whole_row_and_fast(backend, size):
    rng = np.random.default_rng(4)
    x, dy = randn(rng, 2, 2, 3, 7), randn(rng, 2, 2, 3, 7)
    ops = ccn.backend(backend)
    t0 = time.perf_counter()
    # divide_alpha_by_size=False: alpha' does not depend on size, so the whole-row window
    # (any size >= 2C - 1) must give exactly the same numbers.
    y = ops.lrn(x, size=size, alpha=1e-2, divide_alpha_by_size=False)
    dx = ops.lrn_backward(x, y, dy, size=size, alpha=1e-2, divide_alpha_by_size=False)
    assert time.perf_counter() - t0 < 10
    np.testing.assert_array_equal(y, ops.lrn(x, size=13, alpha=1e-2, divide_alpha_by_size=False))
    np.testing.assert_array_equal(dx, ops.lrn_backward(x, y, dy, size=13, alpha=1e-2, divide_alpha_by_size=False))
    s = (x * x).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, x * (2.0 + 1e-2 * s) ** -0.75, rtol=2e-6)


def test_lrn_launcher_refuses_a_window_past_the_group_and_huge_channel_counts():
    """The launcher takes the window clipped by shapes.lrn_window and refuses anything
    else (so its index sums stay in range), before any pointer is read."""
    rng = np.random.default_rng(5)
    x = randn(rng, 3, 6)
    y = np.full_like(x, np.nan)
    kw = dict(alpha=0.01, neg_beta=-0.75, k=2.0)
    for before, after in ((6, 0), (0, 6), (-1, 0), (3, 2)):  # (3, 2): groups=2 leaves 3 channels
        with pytest.raises(ValueError, match=r"(before|after) must be in \[0, channels / groups\)"):
            emu_ext().lrn(x=host_ptr(x), y=host_ptr(y), rows=3, channels=6, groups=2 if before == 3 else 1,
                          before=before, after=after, **kw)
    assert np.isnan(y).all()
    with pytest.raises(ValueError, match=rf"channels = {INT_MAX} is larger than {MAX}"):
        emu_ext().lrn(x=host_ptr(x), y=host_ptr(y), rows=1, channels=INT_MAX, groups=1, before=2, after=2, version=1,
                      **kw)


# ----------------------------------------------------------------------------- kernels vs the reference

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


def relu_like(rng, *shape):
    """Random values with exact zeros (+0 and -0) and negatives: the ReLU mask's boundary
    (x > 0 keeps, x == 0 and x < 0 drop), nonzero elsewhere."""
    x = randn(rng, *shape)
    u = rng.random(shape)
    x[u < 0.25] = 0.0
    x[(u >= 0.25) & (u < 0.3)] = -0.0
    return x


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def check_lrn_relu_mask(dev, cpu, x, dy, **kw):
    """lrn_backward(..., relu_mask=True) is relu_backward(x, lrn_backward(...)) bit for bit,
    on the kernels and the reference alike, and the kernels' within tolerance of the reference."""
    y = dev.get(dev.ops.lrn(dev.put(x), **kw))
    px, py, pdy = dev.put(x), dev.put(y), dev.put(dy)
    plain = dev.get(dev.ops.lrn_backward(px, py, pdy, **kw))
    fused = dev.get(dev.ops.lrn_backward(px, py, pdy, relu_mask=True, **kw))
    np.testing.assert_array_equal(bits(fused), bits(dev.get(dev.ops.relu_backward(px, dev.put(plain)))))
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64 = cpu.lrn(x64, **kw)
    want = cpu.lrn_backward(x64, y64, dy64, relu_mask=True, **kw)
    np.testing.assert_array_equal(want, cpu.relu_backward(x64, cpu.lrn_backward(x64, y64, dy64, **kw)))
    np.testing.assert_allclose(fused, want, **tol("lrn_backward", "kernel_vs_reference"))
    assert not np.signbit(fused[~(x > 0)]).any() and (fused[~(x > 0)] == 0).all()
    assert np.any(x > 0) == np.any(fused[x > 0] != 0)  # the kept entries are the op's dx, not zeros
    return fused


@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 20)),
       size=st.integers(1, 8), groups=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_lrn_backward_relu_mask_matches_reference(kernel_device, cpu, lrn_version, shape, size, groups, seed):
    assume(shape[-1] % groups == 0)
    rng = np.random.default_rng(seed)
    check_lrn_relu_mask(kernel_device, cpu, relu_like(rng, *shape), randn(rng, *shape), size=size, alpha=1.0,
                        groups=groups)


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
    # The Net fuses relu1/relu2's backward into norm1/norm2's: x is a ReLU output, zeros included.
    x[rng.random(x.shape) < 0.3] = 0.0
    check_lrn_relu_mask(kernel_device, cpu, x, dy)


def test_lrn_many_channels_uses_the_general_kernel(kernel_device, cpu):
    """C > 2048 (no whole row fits the shared tile): the launcher falls back to kernel 1."""
    rng = np.random.default_rng(2)
    x, dy = randn(rng, 1, 1, 2, 2051), randn(rng, 1, 1, 2, 2051)
    ops, put = kernel_device.ops, kernel_device.put
    assert ops.kernel_version("lrn", put(np.ascontiguousarray(x[..., :2048]))) == 2
    assert ops.kernel_version("lrn", put(x)) == 1 and ops.kernel_version("lrn_backward", put(x), put(x), put(dy)) == 1
    # Groups fold into the rows: 2051 channels as 7 groups of 293 fit kernel 2, ungrouped they do not.
    x7 = put(randn(rng, 1, 1, 2, 7 * 293))
    assert ops.kernel_version("lrn", x7, groups=7) == 2 and ops.kernel_version("lrn", x7) == 1
    check_lrn(kernel_device, cpu, x, dy, alpha=1.0)
    # A C++ exception from the launcher. Skipped under the ASan build: with only libasan
    # preloaded (as .ci/run does), ASan's __cxa_throw interceptor finds no libstdc++ and
    # aborts the process on any throw (preloading libstdc++.so after libasan.so fixes it).
    if not ccn.build_info()["sanitize"]:
        with pytest.raises(ValueError, match="kernel2 needs channels / groups <= 2048"):
            ops.ext.lrn(x=0, y=0, rows=1, channels=2051, groups=1, before=2, after=2, alpha=1e-4, neg_beta=-0.75,
                        k=2.0, version=2)
        for op, args in (("lrn", (x,)), ("lrn_backward", (x, x, dy))):
            with pytest.MonkeyPatch.context() as mp:
                mp.setitem(ops.kernel_versions, op, 2)
                for call in (ops.kernel_version, lambda name, *a: getattr(ops, name)(*a)):
                    with pytest.raises(ValueError, match="kernel2 needs channels / groups <= 2048"):
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
def test_lrn_backward_relu_mask_unaligned_pointers(cpu, monkeypatch):
    """The scalar (W = 1) path of kernel 2 and kernel 1 apply the mask too."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(5)
    x, dy = unaligned(relu_like(rng, 2, 3, 3, 8)), unaligned(randn(rng, 2, 3, 3, 8))
    for version in (1, 2):
        monkeypatch.setitem(emu.kernel_versions, "lrn_backward", version)
        y = unaligned(emu.lrn(x, alpha=1.0))
        fused = emu.lrn_backward(x, y, dy, alpha=1.0, relu_mask=True)
        np.testing.assert_array_equal(bits(fused), bits(emu.relu_backward(x, emu.lrn_backward(x, y, dy, alpha=1.0))))
        x64 = x.astype(np.float64)
        want = cpu.lrn_backward(x64, cpu.lrn(x64, alpha=1.0), dy.astype(np.float64), alpha=1.0, relu_mask=True)
        np.testing.assert_allclose(fused, want, **tol("lrn_backward", "kernel_vs_reference"))


@pytest.mark.emu
@pytest.mark.parametrize("c", [96, 13])
def test_lrn_identical_in_every_thread_order(monkeypatch, c):
    """Kernel 2 reads neighbours' channels from shared memory after a barrier: a missing
    __syncthreads would differ between orders (and read the NaN-poisoned tile)."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(c)
    x, dy = randn(rng, 2, 5, 7, c), randn(rng, 2, 5, 7, c)
    y = emu.lrn(x, alpha=1.0)
    results = in_every_thread_order(monkeypatch, lambda: [emu.lrn(x, alpha=1.0), emu.lrn_backward(x, y, dy, alpha=1.0),
                                                          emu.lrn_backward(x, y, dy, alpha=1.0, relu_mask=True)])
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


@pytest.mark.parametrize("c,groups", [(96, 2), (12, 3), (10, 2), (4, 4), (7, 1)])
def test_lrn_groups_equal_the_op_on_each_channel_range(kernel_device, cpu, lrn_version, c, groups):
    """groups=g is the op applied to each of g channel ranges and concatenated, bit for bit
    (the two towers' LRN in the one-device form, paper §3.5): one launch, no split/concat.
    C/g = 48 takes kernel 2's float4 path, 5 the scalar one, 1 a one-channel window."""
    dev = kernel_device
    rng = np.random.default_rng(c * 10 + groups)
    x, dy = np.abs(randn(rng, 2, 3, 5, c)) * 3, randn(rng, 2, 3, 5, c)
    kw = dict(size=5, alpha=0.5, beta=0.75, k=2.0)
    cg = c // groups
    for ops, get, put in ((dev.ops, dev.get, dev.put), (cpu, np.asarray, np.asarray)):
        y = get(ops.lrn(put(x), groups=groups, **kw))
        dx = get(ops.lrn_backward(put(x), put(y), put(dy), groups=groups, **kw))
        parts = [slice(g * cg, (g + 1) * cg) for g in range(groups)]
        ys = [get(ops.lrn(put(np.ascontiguousarray(x[..., p])), **kw)) for p in parts]
        np.testing.assert_array_equal(y, np.concatenate(ys, axis=-1))
        dxs = [get(ops.lrn_backward(*(put(np.ascontiguousarray(a[..., p])) for a in (x, y, dy)), **kw))
               for p in parts]
        np.testing.assert_array_equal(dx, np.concatenate(dxs, axis=-1))
    if groups > 1:  # the windows really would cross the group boundary
        assert not np.allclose(y, cpu.lrn(x, **kw))
    check_lrn(dev, cpu, x, dy, groups=groups, **kw)


def test_lrn_refuses_groups_that_do_not_divide_the_channels(kernel_device, cpu):
    for ops, put in ((kernel_device.ops, kernel_device.put), (cpu, np.asarray)):
        x = put(np.ones((1, 2, 2, 6), np.float32))
        with pytest.raises(ValueError, match=r"lrn: x.shape\[3\] \(C\) = 6 does not split into groups = 4"):
            ops.lrn(x, groups=4)
        with pytest.raises(ValueError, match=r"lrn_backward: groups must be >= 1, got 0"):
            ops.lrn_backward(x, x, x, groups=0)
        with pytest.raises(TypeError, match="lrn: groups must be an int"):
            ops.lrn(x, groups=2.0)


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("h,c", [(55, 96), (27, 256)])
def test_lrn_three_quarters_form_is_within_a_few_ulp(kernel_device, cpu, h, c):
    """beta = 0.75 runs r * sqrtf(r), r = rsqrtf(scale), instead of powf. Its relative error
    on the AlexNet LRN layers is far inside the lrn tolerance: measured 2.0 ulp (2.4e-7)
    through the emulator's correctly rounded rsqrtf; a GPU's rsqrtf (2 ulp) adds at most
    ~3 ulp, so 1e-6 (8.4 ulp) holds there too."""
    rng = np.random.default_rng(c)
    x = np.abs(randn(rng, 2, h, h, c)) * 10  # ReLU outputs: scale = k + alpha' * sum reaches ~4
    y = kernel_device.get(kernel_device.ops.lrn(kernel_device.put(x), groups=2))
    y64 = cpu.lrn(x.astype(np.float64), groups=2)
    nz = y64 != 0
    assert np.max(np.abs(y[nz] - y64[nz]) / np.abs(y64[nz])) < 1e-6


def test_lrn_window_is_the_one_clipping_rule():
    """shapes.lrn_window: size//2 before, (size-1)//2 after, each clipped to C - 1 (the
    reference and the kernel backends both take it; the launchers refuse anything wider)."""
    from cuda_convnet.shapes import lrn_window
    assert lrn_window(5, 96) == (2, 2)
    assert lrn_window(6, 10) == (3, 2)      # even size: one more before (PyTorch's rule)
    assert lrn_window(5, 2) == (1, 1)
    assert lrn_window(2**62, 7) == (6, 6)   # the whole group from any channel: width 2C - 1
    assert lrn_window(1, 1) == (0, 0)
    with pytest.raises(ValueError, match="LRN size must be >= 1, got 0"):
        lrn_window(0, 4)
