"""Convolution (paper §3.2, §3.5; cuda_convnet/reference/conv.py), the reference side of the family: the
definition (explicit loops, padding forms, groups as towers), the padding the reference allocates
(windows wholly in the padding, paddings near checks.MAX_EXTENT), the gradient (central
differences, float64), PyTorch's conv2d as the independent oracle, float32 within the kernel
tolerance, argument errors and index bounds. The kernels against this reference:
tests/test_kernels_conv*.py."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn
from reference_support import F32, arr, assert_attains, both
from torch_oracle import F, assert_close, nchw, needs_torch, nhwc, torch

import cuda_convnet as ccn
from cuda_convnet import checks, shapes
from cuda_convnet import reference as R
from cuda_convnet.reference import conv as rconv

# ----------------------------------------------------------------------------- reference: definition

def conv2d_loops(x, w, b, stride, pad, groups):
    """The docstring formula, one output element at a time."""
    n, h, wd, c = x.shape
    k, r, s, cg = w.shape
    top, bottom, left, right = pad
    p = (h + top + bottom - r) // stride + 1
    q = (wd + left + right - s) // stride + 1
    kg = k // groups
    y = np.zeros((n, p, q, k))
    for ni, pi, qi, ki in np.ndindex(n, p, q, k):
        gi = ki // kg
        acc = b[ki]
        for ri, si, ci in np.ndindex(r, s, cg):
            hi, wi = pi * stride + ri - top, qi * stride + si - left
            if 0 <= hi < h and 0 <= wi < wd:
                acc += w[ki, ri, si, ci] * x[ni, hi, wi, gi * cg + ci]
        y[ni, pi, qi, ki] = acc
    return y


@pytest.mark.parametrize("stride,pad,groups", [(1, (0, 0, 0, 0), 1), (2, (1, 2, 0, 1), 2),
                                               (3, (2, 0, 1, 1), 3)])
def test_conv2d_is_the_documented_cross_correlation(stride, pad, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3 * groups))
    w = rng.standard_normal((2 * groups, 3, 2, 3))
    b = rng.standard_normal(2 * groups)
    np.testing.assert_allclose(R.conv2d(x, w, b, stride=stride, padding=pad, groups=groups),
                               conv2d_loops(x, w, b, stride, pad, groups), rtol=1e-12,
                               atol=1e-12)


def test_conv2d_padding_forms_agree():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 3, 2))
    y = R.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(y, R.conv2d(x, w, padding=(1, 1)))
    np.testing.assert_array_equal(y, R.conv2d(x, w, padding=(1, 1, 1, 1)))


def test_groups_are_independent_towers():
    """groups=2 equals two separate convolutions on the channel halves (§3.2, §3.5)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 8))
    w = rng.standard_normal((6, 3, 3, 4))
    b = rng.standard_normal(6)
    y = R.conv2d(x, w, b, padding=1, groups=2)
    top = R.conv2d(np.ascontiguousarray(x[..., :4]), w[:3], b[:3], padding=1)
    bottom = R.conv2d(np.ascontiguousarray(x[..., 4:]), w[3:], b[3:], padding=1)
    np.testing.assert_allclose(y, np.concatenate([top, bottom], axis=-1), rtol=1e-13)


# ---------------------------------------------------------- reference: only the padding some window reads is allocated

def _padded_conv(x, w, b, dy, stride, pad, groups):
    """(y, dx, dw, db) straight from the definition: pad the whole input with np.pad, then
    one einsum per filter tap over every output."""
    top, bottom, left, right = pad
    n, h, wd, c = x.shape
    k, r, s, cg = w.shape
    kg = k // groups
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    P, Q = (h + top + bottom - r) // stride + 1, (wd + left + right - s) // stride + 1
    y = np.zeros((n, P, Q, k), x.dtype)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(r):
        for j in range(s):
            rows, cols = slice(i, i + stride * (P - 1) + 1, stride), slice(j, j + stride * (Q - 1) + 1, stride)
            for gi in range(groups):
                ks, cs = slice(gi * kg, (gi + 1) * kg), slice(gi * cg, (gi + 1) * cg)
                tap = xp[:, rows, cols, cs]
                y[..., ks] += np.einsum("npqc,kc->npqk", tap, w[ks, i, j, :])
                dxp[:, rows, cols, cs] += np.einsum("npqk,kc->npqc", dy[..., ks], w[ks, i, j, :])
                dw[ks, i, j, :] += np.einsum("npqk,npqc->kc", dy[..., ks], tap)
    y += b
    return y, dxp[:, top:top + h, left:left + wd, :], dw, dy.sum(axis=(0, 1, 2))


@st.composite
def _padded_case(draw):
    groups = draw(st.sampled_from([1, 2]))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, wd = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3 * max(r, s) + 2))
    # Paddings up to three kernels past the edge: some windows see only padding.
    pad = tuple(draw(st.integers(0, 3 * e + 2)) for e in (r, r, s, s))
    if h + pad[0] + pad[1] < r or wd + pad[2] + pad[3] < s:
        pad = (pad[0] + r, pad[1], pad[2] + s, pad[3])
    return dict(n=draw(st.integers(1, 2)), h=h, w=wd, cg=draw(st.integers(1, 2)),
                kg=draw(st.integers(1, 2)), r=r, s=s, stride=stride, pad=pad, groups=groups,
                seed=draw(st.integers(0, 2**16)))


@given(_padded_case())
def test_matches_the_whole_padded_input(case):
    rng = np.random.default_rng(case["seed"])
    g, stride, pad = case["groups"], case["stride"], case["pad"]
    x = randn(rng, case["n"], case["h"], case["w"], case["cg"] * g, dtype=np.float64)
    w = randn(rng, case["kg"] * g, case["r"], case["s"], case["cg"], dtype=np.float64)
    b = randn(rng, case["kg"] * g, dtype=np.float64)
    kw = dict(stride=stride, padding=pad, groups=g)
    y = ccn.reference.conv2d(x, w, b, **kw)
    dy = randn(rng, *y.shape, dtype=np.float64)
    want_y, want_dx, want_dw, want_db = _padded_conv(x, w, b, dy, stride, pad, g)
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, want_y, **tol)
    dx, dw, db = ccn.reference.conv2d_backward(x, w, dy, **kw)
    np.testing.assert_allclose(dx, want_dx, **tol)
    np.testing.assert_allclose(dw, want_dw, **tol)
    np.testing.assert_array_equal(db, want_db)
    np.testing.assert_array_equal(ccn.reference.conv2d_dgrad(dy, w, x.shape, **kw), dx)
    for got, want in zip(ccn.reference.conv2d_wgrad(x, dy, w.shape, **kw), (dw, db)):
        np.testing.assert_array_equal(got, want)


def test_windows_in_the_padding_give_the_bias_and_no_gradient():
    # stride 4, 2x3 kernel, top 5: output row 0 reads padded rows 0-1 (padding), row 1
    # rows 4-5 (padding, image row 0), row 2 rows 8-9 (image rows 3-4). Left and right 5:
    # column 0 reads padded columns 0-2 (padding), column 1 columns 4-6 (padding, image
    # columns 0-1), column 2 columns 8-10 (padding: the image is columns 5-7).
    rng = np.random.default_rng(11)
    x, w, b = randn(rng, 2, 5, 3, 2), randn(rng, 3, 2, 3, 2), randn(rng, 3)
    kw = dict(stride=4, padding=(5, 0, 5, 5))
    y = ccn.reference.conv2d(x, w, b, **kw)
    assert y.shape == (2, 3, 3, 3)
    for part in (y[:, 0], y[:, :, 0], y[:, :, 2]):
        np.testing.assert_array_equal(part, np.broadcast_to(b, part.shape))
    np.testing.assert_allclose(y[:, 2, 1], np.einsum("nrsc,krsc->nk", x[:, 3:5, 0:2], w[:, :, 1:3]) + b,
                               rtol=1e-6)
    dy = randn(rng, *y.shape)
    dy_inner = np.zeros_like(dy)
    dy_inner[:, 1:, 1] = dy[:, 1:, 1]
    # dy at the padding-only outputs changes neither dx nor dw.
    for got, want in zip(ccn.reference.conv2d_backward(x, w, dy, **kw)[:2],
                         ccn.reference.conv2d_backward(x, w, dy_inner, **kw)[:2]):
        np.testing.assert_array_equal(got, want)


def test_nonfinite_values_meet_the_padding_as_in_the_kernels():
    # A window of padding still multiplies its zeros by every filter tap: an inf tap makes
    # that output NaN, and an inf dy there makes its filter's dw NaN (0 * inf).
    rng = np.random.default_rng(12)
    x, w, b = randn(rng, 1, 3, 3, 2), randn(rng, 3, 2, 2, 2), randn(rng, 3)
    w[1, 1, 0, 1] = np.inf
    kw = dict(stride=3, padding=(5, 0, 0, 0))
    cpu, emu = ccn.backend("cpu"), ccn.backend("emu")
    with np.errstate(invalid="ignore"):
        y = cpu.conv2d(x, w, b, **kw)
        assert np.isnan(y[0, 0, 0, 1]) and y[0, 0, 0, 0] == b[0]
        np.testing.assert_allclose(emu.conv2d(x, w, b, **kw), y, rtol=1e-6, atol=1e-6)
        dy = randn(rng, *y.shape)
        dy[0, 1, 0, 2] = -np.inf  # output row 1 reads padded rows 3-4: padding only
        dw, db = cpu.conv2d_wgrad(x, dy, w.shape, **kw)
        assert np.isnan(dw[2]).all() and np.isfinite(dw[:2]).all() and db[2] == -np.inf
        emu_dw, emu_db = emu.conv2d_wgrad(x, dy, w.shape, **kw)
        np.testing.assert_allclose(emu_dw, dw, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(emu_db, db)
        np.testing.assert_allclose(emu.conv2d_dgrad(dy, w, x.shape, **kw),
                                   cpu.conv2d_dgrad(dy, w, x.shape, **kw), rtol=1e-5, atol=1e-5)


TOP = 2**31 - 1030  # H + TOP stays under checks.MAX_EXTENT


PEAK_BYTES = 4 << 20


def _traced(fn):
    """(fn(), seconds, peak bytes allocated while it ran)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
        return out, time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_padding_forward_agrees_with_emu():
    # stride = TOP: output row 0 is all padding, row 1 starts at image row 0.
    rng = np.random.default_rng(13)
    x, w, b = randn(rng, 2, 3, 4, 3), randn(rng, 4, 2, 2, 3), randn(rng, 4)
    kw = dict(stride=TOP, padding=(TOP, 0, 1, 1))
    y, seconds, peak = _traced(lambda: ccn.backend("cpu").conv2d(x, w, b, **kw))
    assert y.shape == (2, 2, 1, 4) and seconds < 2 and peak < PEAK_BYTES, (seconds, peak)
    np.testing.assert_array_equal(y[:, 0], np.broadcast_to(b, (2, 1, 4)))
    np.testing.assert_allclose(y, ccn.backend("emu").conv2d(x, w, b, **kw), rtol=1e-6, atol=1e-6)
    want = ccn.backend("cpu").conv2d(np.ascontiguousarray(x[:, :2]), w, b, stride=7, padding=(0, 0, 1, 1))
    np.testing.assert_allclose(y[:, 1:], want, rtol=1e-6, atol=1e-6)


# Backward strides are at most 255 (groups * stride^2 dgrad phases), so a huge padding
# means millions of outputs. A 300x5 kernel over a 40x4 image with top = 255j + 240 and
# bottom 300: output j reads padding, the whole image and 20 rows of bottom padding,
# output j + 1 image rows 15-39 and bottom padding; the outputs before j only padding.
BWD_STRIDE, BWD_R, BWD_H = 255, 300, 40


BWD_TOP = BWD_STRIDE * ((TOP - 600) // BWD_STRIDE) + 240


def _bwd_inputs(top):
    rng = np.random.default_rng(14)
    x, w = randn(rng, 1, BWD_H, 4, 2), randn(rng, 2, BWD_R, 5, 2)
    kw = dict(stride=BWD_STRIDE, padding=(top, 300, 1, 0))
    p, q = shapes.conv_output_size(BWD_H, 4, BWD_R, 5, BWD_STRIDE, kw["padding"])
    return x, w, randn(rng, 1, p, q, 2), kw


def test_huge_padding_dgrad_agrees_with_emu():
    x, w, dy, kw = _bwd_inputs(BWD_TOP)
    assert dy.shape[1] > 8_000_000
    dx, seconds, peak = _traced(lambda: ccn.backend("cpu").conv2d_dgrad(dy, w, x.shape, **kw))
    assert seconds < 2 and peak < PEAK_BYTES, (seconds, peak)
    assert np.count_nonzero(dx) == dx.size
    np.testing.assert_allclose(dx, ccn.backend("emu").conv2d_dgrad(dy, w, x.shape, **kw), rtol=1e-5, atol=1e-5)


def test_huge_padding_wgrad_is_the_moderate_padding_wgrad():
    # The emu wgrad reduces over every output (millions at BWD_TOP: minutes), so it is
    # compared at a padding of ~2^16 with the same alignment; the reference at BWD_TOP
    # must give bit for bit what it gives there, the extra outputs all being padding.
    small_top = BWD_STRIDE * 256 + 240
    x, w, dy_small, kw_small = _bwd_inputs(small_top)
    cpu = ccn.backend("cpu")
    dw_small, db_small = cpu.conv2d_wgrad(x, dy_small, w.shape, **kw_small)
    emu_dw, emu_db = ccn.backend("emu").conv2d_wgrad(x, dy_small, w.shape, **kw_small)
    np.testing.assert_allclose(dw_small, emu_dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db_small, emu_db, rtol=1e-4, atol=1e-4)
    x, w, dy, kw = _bwd_inputs(BWD_TOP)
    # Align dy's last outputs (those meeting the image) with the small case's.
    dy[:, -dy_small.shape[1]:] = dy_small
    (dw, db), seconds, peak = _traced(lambda: cpu.conv2d_wgrad(x, dy, w.shape, **kw))
    assert seconds < 2 and peak < PEAK_BYTES, (seconds, peak)
    np.testing.assert_array_equal(dw, dw_small)
    # Taps that reach the image: rows 240-279 (output j), rows 0-24 (output j + 1), and
    # every column but 0 (the left padding).
    reach = np.zeros(dw.shape, bool)
    reach[:, list(range(25)) + list(range(240, 280)), 1:] = True
    np.testing.assert_array_equal(dw != 0, reach)
    np.testing.assert_array_equal(db, dy.sum(axis=(0, 1, 2)))


def test_region_is_the_whole_output_for_padding_below_the_kernel():
    # Ordinary shapes (every padding < kernel) take the unchanged full-output path.
    x, w = np.zeros((2, 13, 13, 4)), np.zeros((8, 3, 3, 4))
    for stride, pad in [(1, 1), (2, (2, 0, 1, 2)), (4, 0), (3, (0, 2, 2, 0))]:
        g = checks.check_conv_args(x, w, None, stride, pad, 1)
        assert rconv._Region(g).full, (stride, pad)


# ----------------------------------------------------------------------------- reference: gradient check (float64)

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))    # asymmetric
    top, bottom, left, right = pad
    h = draw(st.integers(max(1, r - top - bottom), r + 5))
    w = draw(st.integers(max(1, s - left - right), s + 5))
    n = draw(st.integers(1, 3))
    return dict(n=n, h=h, w=w, c=cg * groups, k=kg * groups, r=r, s=s, stride=stride,
                padding=pad, groups=groups, bias=draw(st.booleans()))


def _conv_check(case, rng, elementwise=False):
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c"]))
    wt = rng.standard_normal((case["k"], case["r"], case["s"], case["c"] // case["groups"]))
    b = rng.standard_normal(case["k"])
    kw = dict(stride=case["stride"], padding=case["padding"], groups=case["groups"])
    bwd = lambda ins, y, dy: R.conv2d_backward(ins[0], ins[1], dy, **kw)
    if case["bias"]:
        check_op("conv2d", lambda x, w, b: R.conv2d(x, w, b, **kw), bwd, [x, wt, b],
                 rng=rng, elementwise=elementwise)
    else:
        check_op("conv2d", lambda x, w: R.conv2d(x, w, **kw),
                 lambda ins, y, dy: bwd(ins, y, dy)[:2], [x, wt], rng=rng,
                 elementwise=elementwise)


@SETTINGS
@given(case=conv_cases(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_gradcheck(case, seed):
    _conv_check(case, rng_from(seed))


@pytest.mark.parametrize("case", [
    dict(n=2, h=5, w=4, c=2, k=3, r=3, s=2, stride=1, padding=(1, 0, 0, 2), groups=1, bias=True),
    dict(n=1, h=6, w=7, c=4, k=2, r=2, s=3, stride=2, padding=(0, 1, 2, 0), groups=2, bias=True),
    dict(n=1, h=7, w=5, c=3, k=3, r=3, s=3, stride=3, padding=1, groups=3, bias=False),
])
def test_conv2d_elementwise(case):
    _conv_check(case, rng_from(1), elementwise=True)


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

CONV_CASES = [
    # (n, h, w, c, k, r, s, stride, padding (top, bottom, left, right), groups)
    (2, 7, 9, 6, 4, 3, 2, 2, (1, 0, 2, 1), 2),
    (3, 11, 10, 3, 6, 5, 5, 3, (2, 2, 0, 1), 3),
    (1, 5, 5, 2, 2, 5, 5, 1, (0, 0, 0, 0), 1),
    (2, 13, 12, 4, 6, 3, 4, 4, (3, 0, 1, 2), 2),
    (2, 6, 6, 3, 5, 1, 1, 1, (1, 1, 1, 1), 1),
    (1, 19, 19, 3, 4, 11, 11, 4, (0, 0, 0, 0), 1),       # conv1-like, 11x11 stride 4
    (1, 9, 9, 4, 8, 3, 3, 1, (1, 1, 1, 1), 2),           # conv4-like, two towers
]


@needs_torch
@pytest.mark.parametrize("n,h,w,c,k,r,s,stride,pad,groups", CONV_CASES)
def test_conv2d_vs_torch(n, h, w, c, k, r, s, stride, pad, groups):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((n, h, w, c))
    wt = rng.standard_normal((k, r, s, c // groups))
    b = rng.standard_normal(k)
    y = R.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups)

    xt, wtt = nchw(x), nchw(wt)
    bt = torch.from_numpy(b).requires_grad_()
    top, bottom, left, right = pad
    # F.pad takes (left, right, top, bottom) for the last two dims.
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wtt, bt, stride=stride,
                  groups=groups)
    assert_close(y, nhwc(yt), "conv2d")

    dy = rng.standard_normal(y.shape)
    yt.backward(nchw(dy).detach())
    dx, dw, db = R.conv2d_backward(x, wt, dy, stride=stride, padding=pad, groups=groups)
    assert_close(dx, nhwc(xt.grad), "conv2d_backward")
    assert_close(dw, nhwc(wtt.grad), "conv2d_backward")
    assert_close(db, bt.grad.numpy(), "conv2d_backward")


@needs_torch
def test_conv2d_batch_chunking_matches_torch(monkeypatch):
    """Force one image per im2col chunk: results must not depend on the chunking."""
    import importlib
    conv_module = importlib.import_module("cuda_convnet.reference.conv")
    monkeypatch.setattr(conv_module, "IM2COL_CHUNK_BYTES", 1)
    test_conv2d_vs_torch(*CONV_CASES[0])
    test_conv2d_vs_torch(*CONV_CASES[3])


# ---------------------------------------------------------------------- reference: float32 within the kernel tolerance

@pytest.mark.parametrize("stride,padding,groups", [(1, 2, 1), (2, (1, 2, 0, 1), 2), (1, 1, 2)])
def test_conv2d_float32_attains_the_kernel_tolerance(stride, padding, groups):
    rng = np.random.default_rng(0)
    c, k, r = 16, 32, 5
    x = rng.uniform(-1, 1, (4, 16, 16, c)).astype(F32)
    w = (rng.standard_normal((k, r, r, c // groups)) / np.sqrt(r * r * c / groups)).astype(F32)
    b = rng.uniform(-1, 1, k).astype(F32)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y32, y64 = both(R.conv2d, x, w, b, **kw)
    assert_attains("conv2d", y32, y64)
    dy = rng.uniform(-1, 1, y32.shape).astype(F32)
    assert_attains("conv2d_backward", *both(R.conv2d_backward, x, w, dy, **kw))


# ----------------------------------------------------------------------------- bad input

def test_conv_wrong_rank():
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D \(N, H, W, C\)"):
        R.conv2d(arr(4, 4, 3), arr(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: w must be 4-D"):
        R.conv2d(arr(1, 4, 4, 3), arr(3, 3, 3))


def test_conv_channel_mismatch_message():
    with pytest.raises(ValueError) as e:
        R.conv2d(arr(1, 8, 8, 6), arr(4, 3, 3, 5))
    assert str(e.value) == ("conv2d: w has 5 input channels per group but x has 6 "
                            "channels with groups=1 (expected 6)")
    with pytest.raises(ValueError, match="w has 3 input channels per group.*groups=2"):
        R.conv2d(arr(1, 8, 8, 4), arr(4, 3, 3, 3), groups=2)


def test_conv_groups_must_divide():
    with pytest.raises(ValueError, match="x has 6 channels, not divisible by groups=4"):
        R.conv2d(arr(1, 8, 8, 6), arr(4, 3, 3, 1), groups=4)
    with pytest.raises(ValueError, match="w has 3 output channels.*groups=2"):
        R.conv2d(arr(1, 8, 8, 4), arr(3, 3, 3, 2), groups=2)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        R.conv2d(arr(1, 8, 8, 4), arr(3, 3, 3, 4), groups=0)


def test_conv_window_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: filter window 11x11 is larger than "
                                         r"the padded input 9x9"):
        R.conv2d(arr(1, 7, 7, 3), arr(2, 11, 11, 3), padding=1)


def test_conv_bad_stride_padding_and_bias():
    x, w = arr(1, 8, 8, 3), arr(2, 3, 3, 3)
    with pytest.raises(ValueError, match="conv2d: stride must be >= 1"):
        R.conv2d(x, w, stride=0)
    with pytest.raises(TypeError, match="conv2d: stride must be an int"):
        R.conv2d(x, w, stride=1.5)
    with pytest.raises(TypeError, match="conv2d: stride must be an int, got bool"):
        R.conv2d(x, w, stride=True)
    with pytest.raises(ValueError, match="conv2d: padding must be non-negative"):
        R.conv2d(x, w, padding=(0, -1, 0, 0))
    with pytest.raises(ValueError, match=r"conv2d: b must have shape \(2\)"):
        R.conv2d(x, w, arr(3))


def test_conv_backward_dy_shape():
    x, w = arr(2, 8, 8, 3), arr(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d_backward: dy must have shape \(2, 6, 6, 4\)"):
        R.conv2d_backward(x, w, arr(2, 6, 6, 3))


# ----------------------------------------------------------------------------- index bounds

BACKENDS = ("cpu", "emu")


MAX = checks.MAX_EXTENT


def test_conv_with_padding_near_the_limit_reads_only_the_image():
    # pad_top = 2^31 - 1030: the first window lies wholly in the padding, the second at the
    # image's top. C = 3 makes R*S*C = 12 < 16, so the K tile has columns past Kgemm, whose
    # off-image origin used to be added to -pad_top (signed overflow).
    rng = np.random.default_rng(6)
    x, w, b = randn(rng, 2, 3, 4, 3), randn(rng, 4, 2, 2, 3), randn(rng, 4)
    top = 2**31 - 1030
    emu, cpu = ccn.backend("emu"), ccn.backend("cpu")
    y = emu.conv2d(x, w, b, stride=top, padding=(top, 0, 1, 1))
    assert y.shape == (2, 2, 1, 4)
    np.testing.assert_array_equal(y[:, 0], np.broadcast_to(b, (2, 1, 4)))
    want = cpu.conv2d(np.ascontiguousarray(x[:, :2]), w, b, stride=top, padding=(0, 0, 1, 1))
    np.testing.assert_allclose(y[:, 1:], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_stride_at_the_limit(backend):
    rng = np.random.default_rng(7)
    x, w, b = randn(rng, 2, 5, 6, 4), randn(rng, 3, 2, 3, 4), randn(rng, 3)
    ops = ccn.backend(backend)
    np.testing.assert_allclose(ops.conv2d(x, w, b, stride=MAX, padding=1),
                               ccn.backend("cpu").conv2d(x, w, b, stride=100, padding=1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_stride_256_forward_is_legal(backend):
    rng = np.random.default_rng(8)
    x, w = randn(rng, 1, 3, 3, 2), randn(rng, 2, 1, 1, 2)
    y = ccn.backend(backend).conv2d(x, w, stride=256)
    np.testing.assert_allclose(y[0, 0, 0], w[:, 0, 0, :] @ x[0, 0, 0], rtol=1e-6)
