"""Max pooling (paper §3.4), the whole op family: the reference's definition (explicit
loops, the tie rule, padding as -inf), its gradient (central differences, float64),
PyTorch's max_pool2d as the independent oracle, argument errors, index bounds (strides and
windows near 2^31), and the kernels of csrc/pool.cuh against the reference. Forward is
exact; the backward kernel is a gather that adds each input's windows in the reference's
order, so it is bit for bit the float32 reference too, including the tie rule (first max
in row-major window order) and padding, and identical in every thread order."""
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
    shuffled_arange,
    unaligned,
)
from tolerances import tol
from torch_oracle import F, assert_close, nchw, needs_torch, nhwc

import cuda_convnet as ccn
from cuda_convnet import checks, shapes
from cuda_convnet import reference as R

REF_AND_EMU = ("cpu", "emu")
MAX = checks.MAX_EXTENT
INT_MAX = 2**31 - 1


def ones(*shape, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


# ----------------------------------------------------------------------------- reference: definition

def max_pool_loops(x, size, stride, pad, dy):
    """Forward and the tie rule of the docstring, one window at a time."""
    n, h, w, c = x.shape
    top, bottom, left, right = pad
    p = (h + top + bottom - size) // stride + 1
    q = (w + left + right - size) // stride + 1
    y = np.full((n, p, q, c), -np.inf)
    dx = np.zeros_like(x)
    for ni, pi, qi, ci in np.ndindex(n, p, q, c):
        best = None
        for ri, si in np.ndindex(size, size):     # row-major: first max wins ties
            hi, wi = pi * stride + ri - top, qi * stride + si - left
            inside = 0 <= hi < h and 0 <= wi < w
            if inside and (best is None or x[ni, hi, wi, ci] > y[ni, pi, qi, ci]):
                y[ni, pi, qi, ci], best = x[ni, hi, wi, ci], (hi, wi)
        dx[ni, best[0], best[1], ci] += dy[ni, pi, qi, ci]
    return y, dx


@pytest.mark.parametrize("size,stride,pad", [(3, 2, (0, 0, 0, 0)), (2, 2, (0, 0, 0, 0)),
                                             (3, 1, (1, 1, 0, 2)), (4, 3, (1, 2, 3, 0))])
def test_max_pool_ties_go_to_the_first_max(size, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 7, 8, 3)).astype(np.float64)   # many ties
    y = R.max_pool(x, size=size, stride=stride, padding=pad)
    dy = rng.standard_normal(y.shape)
    y_loop, dx_loop = max_pool_loops(x, size, stride, pad, dy)
    np.testing.assert_array_equal(y, y_loop)
    np.testing.assert_allclose(R.max_pool_backward(x, y, dy, size=size, stride=stride,
                                                   padding=pad), dx_loop, rtol=1e-14)


def test_max_pool_constant_input_by_hand():
    """All-equal 5x5 input, 3x3 windows at stride 2: each window's top-left tap wins."""
    x = np.zeros((1, 5, 5, 1))
    y = R.max_pool(x)
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dx = R.max_pool_backward(x, y, dy)
    expected = np.zeros((5, 5))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 2, 2, 1)) * 5          # all negative: padding at -inf must lose
    y = R.max_pool(x, size=2, stride=1, padding=1)
    assert (y == -5).all()


# ----------------------------------------------------------------------------- reference: gradient check (float64)

@st.composite
def pool_cases(draw):
    size, stride = draw(st.sampled_from([(3, 2), (2, 2), (3, 1), (1, 1), (4, 3), (3, 3),
                                         (2, 1), (5, 2)]))
    pad = tuple(draw(st.integers(0, size - 1)) for _ in range(4))
    top, bottom, left, right = pad
    h = draw(st.integers(max(1, size - top - bottom), size + 5))
    w = draw(st.integers(max(1, size - left - right), size + 5))
    return dict(shape=(draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3))),
                size=size, stride=stride, padding=pad)


def _pool_check(case, rng, elementwise=False):
    kw = dict(size=case["size"], stride=case["stride"], padding=case["padding"])
    x = shuffled_arange(rng, case["shape"])
    check_op("max_pool", lambda x: R.max_pool(x, **kw),
             lambda ins, y, dy: (R.max_pool_backward(ins[0], y, dy, **kw),), [x], rng=rng,
             elementwise=elementwise)


@SETTINGS
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_max_pool_gradcheck(case, seed):
    _pool_check(case, rng_from(seed))


@pytest.mark.parametrize("size,stride,padding", [(3, 2, 0), (2, 2, 0), (3, 2, (1, 0, 2, 1))])
def test_max_pool_elementwise(size, stride, padding):
    _pool_check(dict(shape=(1, 6, 5, 2), size=size, stride=stride, padding=padding),
                rng_from(4), elementwise=True)


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

@needs_torch
@pytest.mark.parametrize("size,stride,pad", [
    (3, 2, (0, 0, 0, 0)), (2, 2, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1)), (4, 3, (2, 2, 2, 2)),
    (3, 2, (1, 0, 1, 0)), (3, 2, (0, 2, 1, 2)), (5, 2, (2, 1, 0, 2)),   # asymmetric
])
def test_max_pool_vs_torch(size, stride, pad):
    rng = np.random.default_rng(15)
    x = shuffled_arange(rng, (2, 9, 8, 3))     # no ties: the argmax is unambiguous
    y = R.max_pool(x, size=size, stride=stride, padding=pad)
    xt = nchw(x)
    top, bottom, left, right = pad
    # Pad with -inf ourselves (torch's own padding must be symmetric and <= size/2).
    xpt = F.pad(xt, (left, right, top, bottom), value=float("-inf"))
    yt = F.max_pool2d(xpt, size, stride)
    assert_close(y, nhwc(yt), "max_pool")
    dy = rng.standard_normal(y.shape)
    yt.backward(nchw(dy).detach())
    assert_close(R.max_pool_backward(x, y, dy, size=size, stride=stride, padding=pad),
                 nhwc(xt.grad), "max_pool_backward")


# ----------------------------------------------------------------------------- bad input

def test_pool_errors():
    with pytest.raises(ValueError, match="max_pool: pool window 3x3 is larger than the "
                                         "padded input 2x2"):
        R.max_pool(ones(1, 2, 2, 1), size=3, stride=2)
    with pytest.raises(ValueError, match="max_pool: pool padding .* smaller than the window"):
        R.max_pool(ones(1, 5, 5, 1), size=2, stride=2, padding=2)
    with pytest.raises(ValueError, match=r"max_pool_backward: dy must have shape"):
        R.max_pool_backward(ones(1, 5, 5, 2), ones(1, 2, 2, 2), ones(1, 3, 3, 2))
    with pytest.raises(ValueError, match="max_pool: x must be 4-D"):
        R.max_pool(ones(5, 5, 2))


def test_pool_padding_must_be_smaller_than_window():
    assert shapes.pool_output_size(5, 5, 3, 2, 2) == (4, 4)
    with pytest.raises(ValueError, match="smaller than the window size"):
        shapes.pool_output_size(5, 5, 3, 2, (0, 3, 0, 0))


# ----------------------------------------------------------------------------- index bounds

def test_pool_backward_with_stride_int_max_visits_only_window_0():
    # hp - size + stride passes 2^31 for input row 2 (hp = 2, size 1): in 32 bits it wrapped
    # to window -1, read y and dy before the arrays and added image 0's gradient into
    # image 1's dx. The launcher accepts the stride (the one window is at the origin).
    rng = np.random.default_rng(0)
    x = randn(rng, 2, 3, 3, 1)
    # Image 1's last row and column equal image 0's window maximum: a visit of window -1
    # from image 1 (which is image 0's window) would take image 0's gradient.
    x[1, 2, :, :] = x[0, 0, 0, :]
    x[1, :, 2, :] = x[0, 0, 0, :]
    y = np.ascontiguousarray(x[:, :1, :1, :])
    dy = randn(rng, 2, 1, 1, 1)
    dx = np.full_like(x, np.nan)
    emu_ext().max_pool_backward(host_ptr(x), host_ptr(y), host_ptr(dy), host_ptr(dx), 2, 3, 3, 1, 1, INT_MAX,
                                0, 0, 0, 0, 1, 1)
    want = np.zeros_like(x)
    want[:, 0, 0, :] = dy[:, 0, 0, :]
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("backend", REF_AND_EMU)
def test_pool_stride_at_the_limit_is_legal(backend):
    rng = np.random.default_rng(1)
    x = randn(rng, 2, 4, 5, 3)
    ops = ccn.backend(backend)
    y = ops.max_pool(x, size=2, stride=MAX, padding=(1, 0, 0, 1))
    np.testing.assert_array_equal(y, ops.max_pool(x, size=2, stride=7, padding=(1, 0, 0, 1)))
    dy = randn(rng, *y.shape)
    np.testing.assert_array_equal(ops.max_pool_backward(x, y, dy, size=2, stride=MAX, padding=(1, 0, 0, 1)),
                                  ccn.backend("cpu").max_pool_backward(x, y, dy, size=2, stride=7,
                                                                       padding=(1, 0, 0, 1)))
    with pytest.raises(ValueError, match=rf"max_pool: stride = {MAX + 1} is larger than {MAX}"):
        ops.max_pool(x, size=2, stride=MAX + 1)


def _brute_pool(x, size, stride, pad):
    """Window maxima and the first-max gradient routing, straight from the definition."""
    n, h, w, c = x.shape
    top, bottom, left, right = pad
    P, Q = (h + top + bottom - size) // stride + 1, (w + left + right - size) // stride + 1
    y = np.full((n, P, Q, c), -np.inf, np.float32)
    first = {}
    for p in range(P):
        for q in range(Q):
            r0, s0 = p * stride - top, q * stride - left
            rows = range(max(r0, 0), min(r0 + size, h))
            cols = range(max(s0, 0), min(s0 + size, w))
            block = x[:, rows.start:rows.stop, cols.start:cols.stop, :]
            y[:, p, q, :] = block.max(axis=(1, 2))
            first[p, q] = (rows, cols)
    return y, first


@pytest.mark.parametrize("backend", REF_AND_EMU)
def test_pool_with_a_huge_window_is_fast_and_exact(backend):
    # A 2^30 - 600 window, padding 2^30 - 601 on each side, stride 2^28: three overlapping
    # windows per axis over a 3x4 image. Scanning the window's size^2 taps would take hours.
    rng = np.random.default_rng(2)
    x = randn(rng, 2, 3, 4, 5)
    size = 2**30 - 600
    pad = (size - 1, size - 2, size - 3, size - 1)
    stride = 2**28
    ops = ccn.backend(backend)
    t0 = time.perf_counter()
    y = ops.max_pool(x, size=size, stride=stride, padding=pad)
    dy = randn(rng, *y.shape)
    dx = ops.max_pool_backward(x, y, dy, size=size, stride=stride, padding=pad)
    elapsed = time.perf_counter() - t0
    want_y, windows = _brute_pool(x, size, stride, pad)
    np.testing.assert_array_equal(y, want_y)
    # Each dy goes to the first maximum (row-major) of the image part of its window.
    want_dx = np.zeros_like(x)
    for (p, q), (rows, cols) in windows.items():
        block = x[:, rows.start:rows.stop, cols.start:cols.stop, :]
        flat = block.reshape(x.shape[0], -1, x.shape[3]).argmax(axis=1)
        for i in range(x.shape[0]):
            for ch in range(x.shape[3]):
                r, c = divmod(int(flat[i, ch]), len(cols))
                want_dx[i, rows.start + r, cols.start + c, ch] += dy[i, p, q, ch]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6, atol=1e-6)  # summation order differs
    assert len({(len(r), len(c)) for r, c in windows.values()}) > 1  # partial and whole windows
    assert elapsed < 20, f"{backend}: {elapsed:.1f} s for a 2^30 window"


def test_pool_huge_window_backends_agree_bit_for_bit():
    rng = np.random.default_rng(3)
    x = randn(rng, 1, 3, 3, 4)
    x[0, 1, 1, :2] = -np.inf  # the -inf tie rule at the padding boundary
    x[0, :, :, 3] = -np.inf   # a channel that is -inf everywhere: every dy goes to padding
    kw = dict(size=2**29, stride=2**28 + 3, padding=(2**29 - 1, 2**29 - 1, 1, 2**29 - 1))
    cpu, emu = ccn.backend("cpu"), ccn.backend("emu")
    y = cpu.max_pool(x, **kw)
    np.testing.assert_array_equal(emu.max_pool(x, **kw), y)
    dy = randn(rng, *y.shape)
    np.testing.assert_array_equal(emu.max_pool_backward(x, y, dy, **kw), cpu.max_pool_backward(x, y, dy, **kw))
    assert not np.any(cpu.max_pool_backward(x, y, dy, **kw)[..., 3])


# ----------------------------------------------------------------------------- kernels vs the reference

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
    check_pool_relu_mask(dev, cpu, x, y, dy, dx, **kw)
    return y, dx


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def check_pool_relu_mask(dev, cpu, x, y, dy, dx, **kw):
    """max_pool_backward(..., relu_mask=True) (the backward of the ReLU producing x, fused)
    is relu_backward(x, dx) bit for bit, on the kernel and the reference alike."""
    fused = dev.get(dev.ops.max_pool_backward(dev.put(x), dev.put(y), dev.put(dy), relu_mask=True, **kw))
    unfused = dev.get(dev.ops.relu_backward(dev.put(x), dev.put(dx)))
    np.testing.assert_array_equal(bits(fused), bits(unfused))
    want = cpu.max_pool_backward(x, y, dy, relu_mask=True, **kw)
    np.testing.assert_array_equal(bits(want), bits(cpu.relu_backward(x, cpu.max_pool_backward(x, y, dy, **kw))))
    np.testing.assert_array_equal(bits(fused), bits(want))
    assert (fused[~(x > 0)] == 0).all() and np.array_equal(fused[x > 0], dx[x > 0])


def relu_like(rng, *shape):
    """Random values with exact zeros (+0 and -0) and negatives: the mask's boundary."""
    x = randn(rng, *shape)
    u = rng.random(shape)
    x[u < 0.25] = 0.0
    x[(u >= 0.25) & (u < 0.3)] = -0.0
    return x


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


@given(g=geometry, kind=st.sampled_from([distinct, tied, relu_like, lambda rng, s: randn(rng, *s)]),
       seed=st.integers(0, 2**31))
def test_max_pool_matches_reference(kernel_device, cpu, g, kind, seed):
    n, h, w, c, size, stride, pad = g
    pad = tuple(min(p, size - 1) for p in pad)
    assume(h + pad[0] + pad[1] >= size and w + pad[2] + pad[3] >= size)
    rng = np.random.default_rng(seed)
    shape = (n, h, w, c)
    check_pool(kernel_device, cpu, relu_like(rng, *shape) if kind is relu_like else kind(rng, shape), seed,
               size=size, stride=stride, padding=pad)


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("h,c", [(55, 96), (27, 256), (13, 256)])
def test_max_pool_alexnet_layers(kernel_device, cpu, h, c):
    """§3.4's overlapping pooling (3/2) after conv1, conv2, conv5, batch 2."""
    rng = np.random.default_rng(h)
    # pool5 follows relu5 (its backward masks with relu_mask=True, checked by check_pool): zeros included.
    y, _ = check_pool(kernel_device, cpu, relu_like(rng, 2, h, h, c), size=3, stride=2)
    assert y.shape[1:3] == shapes.pool_output_size(h, h, 3, 2, 0)


def test_max_pool_backward_relu_mask_drops_the_gradient_routed_to_dead_units(kernel_device, cpu):
    """A dead ReLU channel (all zeros) and an all-negative one: every window's first max
    is an x <= 0, so the plain backward routes dy there and relu_mask drops all of it; the
    live channels keep the plain dx where x > 0."""
    rng = np.random.default_rng(6)
    x = relu_like(rng, 2, 7, 9, 8)
    x[..., 0] = 0.0
    x[..., 3] = -np.abs(x[..., 3]) - 0.5
    for kw in (dict(size=3, stride=2), dict(size=2, stride=1, padding=(1, 0, 0, 1))):
        y, dx = check_pool(kernel_device, cpu, x, **kw)
        assert np.all(dx[..., [0, 3]].sum(axis=(1, 2)) != 0)  # the plain backward routes there
        dev = kernel_device
        dy = randn(np.random.default_rng(0), *y.shape)  # check_pool's dy (dy_seed 0)
        fused = dev.get(dev.ops.max_pool_backward(dev.put(x), dev.put(y), dev.put(dy), relu_mask=True, **kw))
        assert (fused[..., [0, 3]] == 0).all() and np.any(fused[x > 0] != 0)


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
    xm = unaligned(relu_like(rng, 2, 9, 9, 8))
    ym = unaligned(emu.max_pool(xm))
    np.testing.assert_array_equal(bits(emu.max_pool_backward(xm, ym, dy, relu_mask=True)),
                                  bits(cpu.max_pool_backward(xm, ym, dy, relu_mask=True)))


@pytest.mark.emu
def test_max_pool_backward_identical_in_every_thread_order(monkeypatch):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(4)
    x = tied(rng, (2, 13, 13, 12))
    y = emu.max_pool(x, padding=1)
    dy = randn(rng, *y.shape)
    assert_same_in_every_order(in_every_thread_order(
        monkeypatch, lambda: [emu.max_pool(x, padding=1), emu.max_pool_backward(x, y, dy, padding=1),
                              emu.max_pool_backward(x, y, dy, padding=1, relu_mask=True)]))


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
