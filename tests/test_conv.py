"""The convolution's op family (paper §3; cuda_convnet/reference/conv.py and the float32
implicit-GEMM kernels of csrc/conv_fwd.cuh, conv_dgrad.cuh, conv_wgrad.cuh), every level in
one file: the reference (definition, gradients, PyTorch oracle, float32 within the kernel
tolerance, argument errors, index bounds), then the kernels against it on the emu backend
(and cuda when a GPU is present), outputs poisoned, every kernel version. The dgrad fast
path's own hazards and mutants: tests/test_conv_dgrad_kernel2.py; the tensor-core
convolutions: tests/test_conv_tc.py."""
from __future__ import annotations

import contextlib
import os
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_kernel_close, randn
from reference_support import F32, arr, assert_attains, both
from tolerances import tol
from torch_oracle import F, assert_close, nchw, needs_torch, nhwc, torch

import cuda_convnet as ccn
from cuda_convnet import checks, shapes
from cuda_convnet import reference as R
from cuda_convnet.alexnet_shapes import conv_layers
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
# Wall-clock bound of the huge-padding cases: a reference that walked the padding (~2^31
# rows) would take hours; the bound leaves room for a loaded 2-core machine running the
# suite on two workers (measured 0.3-2.2 s there).
WALL_LIMIT_S = 15


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
    assert y.shape == (2, 2, 1, 4) and seconds < WALL_LIMIT_S and peak < PEAK_BYTES, (seconds, peak)
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
    assert seconds < WALL_LIMIT_S and peak < PEAK_BYTES, (seconds, peak)
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
    assert seconds < WALL_LIMIT_S and peak < PEAK_BYTES, (seconds, peak)
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
CONV_FWD3_WINDOW_TAPS = 640  # conv_fwd_kernel3's tap-table window (csrc/conv_fwd.cuh, kConvFwd3WindowTaps)


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


# ============================================================================= kernels

# Under an ASan build preloaded into Python (LD_PRELOAD=libasan.so, as .ci/run does) a C++
# exception aborts the process ("CHECK failed: asan_interceptors.cpp:320 real___cxa_throw")
# unless libstdc++.so is preloaded too. Tests whose point is a launcher's throw skip then.
_PRELOAD = os.environ.get("LD_PRELOAD", "")
cxx_throw_works = pytest.mark.skipif(
    "libasan" in _PRELOAD and "libstdc++" not in _PRELOAD,
    reason="libasan preloaded without libstdc++: a C++ throw aborts (preload libstdc++.so as well)")


def up(a):
    return None if a is None else a.astype(np.float64)


@contextlib.contextmanager
def setting(ops, name, value):
    """Set a ConvOps knob (wgrad_chunk_rows) on the backend for a while."""
    old = ops.__dict__.get(name)
    setattr(ops, name, value)
    try:
        yield
    finally:
        if old is None:
            delattr(ops, name)
        else:
            setattr(ops, name, old)


@contextlib.contextmanager
def forced_version(ops, op, version):
    """Force `op`'s kernel version through the backend's kernel_versions for a while."""
    old = dict(ops.kernel_versions)
    ops.kernel_versions[op] = version
    try:
        yield
    finally:
        ops.kernel_versions.clear()
        ops.kernel_versions.update(old)


def wgrad_chunk_rows(ops, rows):
    """Force the wgrad/bias reduction's chunk length (0: the launcher's automatic plan)."""
    return setting(ops, "wgrad_chunk_rows", rows)


def check_conv(dev, cpu, x, w, b, *, stride, padding, groups, relu=False, backward=True, chunk_rows=0, what="",
               both_kernels=True):
    """Forward (with b and the relu epilogue as given) and backward against the reference.
    Where the forward takes conv_fwd_kernel2 or kernel3, kernel1 must give the same bits."""
    kw = dict(stride=stride, padding=padding, groups=groups)
    what = what or f"x{x.shape} w{w.shape} b={b is not None} {kw} relu={relu}"
    args = dev.put(x), dev.put(w), dev.put(b)
    y = dev.get(dev.ops.conv2d(*args, relu=relu, **kw))
    want = cpu.conv2d(up(x), up(w), up(b), **kw)
    if relu:
        want = cpu.relu(want)
    version = dev.ops.kernel_version("conv2d", *args, **kw)
    assert_kernel_close("conv2d", y, want, what + f" forward (kernel{version})")
    if both_kernels and version in (2, 3):
        with forced_version(dev.ops, "conv2d", 1):
            assert dev.ops.kernel_version("conv2d", *args, **kw) == 1
            y1 = dev.get(dev.ops.conv2d(*args, relu=relu, **kw))
        np.testing.assert_array_equal(y1, y, err_msg=what + f": conv_fwd_kernel1 and kernel{version} differ")
    if both_kernels and version == 2:  # the scalar gather runs every shape the vector one does
        with forced_version(dev.ops, "conv2d", 3):
            y3 = dev.get(dev.ops.conv2d(*args, relu=relu, **kw))
        np.testing.assert_array_equal(y3, y, err_msg=what + ": conv_fwd_kernel3 and kernel2 differ")
    if not backward:
        return
    dy = randn(np.random.default_rng(zlib.crc32(what.encode())), *want.shape)
    with wgrad_chunk_rows(dev.ops, chunk_rows):
        dx, dw, db = (dev.get(a) for a in dev.ops.conv2d_backward(dev.put(x), dev.put(w), dev.put(dy), **kw))
        wgrad_version = dev.ops.kernel_version("conv2d_wgrad", dev.put(x), dev.put(dy), w.shape, **kw)
    rdx, rdw, rdb = cpu.conv2d_backward(up(x), up(w), up(dy), **kw)
    assert_kernel_close("conv2d_backward", dx, rdx, what + " dx")
    assert_kernel_close("conv2d_backward", dw, rdw, what + f" dw (wgrad kernel{wgrad_version})")
    assert_kernel_close("conv2d_backward", db, rdb, what + " db")
    if both_kernels and wgrad_version > 1:  # the general kernel, same plan: the same bits
        with wgrad_chunk_rows(dev.ops, chunk_rows), forced_version(dev.ops, "conv2d_wgrad", 1):
            dw1, db1 = (dev.get(a) for a in dev.ops.conv2d_wgrad(dev.put(x), dev.put(dy), w.shape, **kw))
        np.testing.assert_array_equal(dw1, dw, err_msg=what + f": conv_wgrad_kernel1 and kernel{wgrad_version} differ")
        np.testing.assert_array_equal(db1, db, err_msg=what + ": db differs between the wgrad kernels")
    if both_kernels and wgrad_version in (4, 5):  # the 128-filter tile of the same copies, same plan
        with wgrad_chunk_rows(dev.ops, chunk_rows), forced_version(dev.ops, "conv2d_wgrad", wgrad_version - 2):
            dw_128, _ = (dev.get(a) for a in dev.ops.conv2d_wgrad(dev.put(x), dev.put(dy), w.shape, **kw))
        np.testing.assert_array_equal(dw_128, dw, err_msg=what + f": conv_wgrad_kernel{wgrad_version - 2} and "
                                                              f"kernel{wgrad_version} differ")
    # need_dx=False (an input that needs no gradient): no dgrad, dw and db the same bits.
    with wgrad_chunk_rows(dev.ops, chunk_rows):
        none, dw2, db2 = dev.ops.conv2d_backward(dev.put(x), dev.put(w), dev.put(dy), need_dx=False, **kw)
    assert none is None
    np.testing.assert_array_equal(dev.get(dw2), dw, err_msg=what + " dw, need_dx=False")
    np.testing.assert_array_equal(dev.get(db2), db, err_msg=what + " db, need_dx=False")
    rnone, rdw2, rdb2 = cpu.conv2d_backward(up(x), up(w), up(dy), need_dx=False, **kw)
    assert rnone is None
    np.testing.assert_array_equal(rdw2, rdw)
    np.testing.assert_array_equal(rdb2, rdb)
    if relu:
        np.testing.assert_array_equal(cpu.conv2d(up(x), up(w), up(b), relu=True, **kw), want)


# ----------------------------------------------------------------------------- drawn shapes

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 2))
    c = groups * draw(st.sampled_from([1, 2, 3, 4, 5, 6, 8]))
    k = groups * draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 12]))  # K/g % 4 == 0: wgrad kernel2
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))  # (top, bottom, left, right)
    # The filter must fit the padded input (else there is no output at all).
    h = draw(st.integers(max(1, r - pad[0] - pad[1]), 12))
    w = draw(st.integers(max(1, s - pad[2] - pad[3]), 12))
    n = draw(st.integers(1, 3))
    return dict(n=n, h=h, w=w, c=c, k=k, r=r, s=s, stride=stride, padding=pad, groups=groups,
                bias=draw(st.booleans()), relu=draw(st.booleans()),
                chunk_rows=draw(st.sampled_from([0, 16, 48])), seed=draw(st.integers(0, 2**31)))


@given(case=conv_cases())
def test_conv_matches_reference_on_drawn_shapes(kernel_device, cpu, case):
    rng = np.random.default_rng(case["seed"])
    x = randn(rng, case["n"], case["h"], case["w"], case["c"])
    w = randn(rng, case["k"], case["r"], case["s"], case["c"] // case["groups"])
    b = randn(rng, case["k"]) if case["bias"] else None
    check_conv(kernel_device, cpu, x, w, b, stride=case["stride"], padding=case["padding"], groups=case["groups"],
               relu=case["relu"], chunk_rows=case["chunk_rows"])


@pytest.mark.parametrize(
    "n,h,w,c,k,r,s,stride,padding,groups",
    [
        (1, 1, 1, 1, 1, 1, 1, 1, 0, 1),            # one pixel, one channel, one filter
        (2, 9, 8, 40, 70, 3, 3, 1, 1, 2),          # dgrad's 64 x 64 tile (C/g = 20), K/g = 35
        (1, 10, 7, 130, 66, 2, 3, 2, (0, 1, 2, 0), 1),  # 3 channel tiles in dgrad, 2 filter tiles
        (2, 12, 13, 17, 3, 4, 3, 3, (2, 0, 1, 1), 1),   # C/g = 17: the 64-wide tile, stride 3
        (1, 12, 12, 8, 136, 3, 3, 1, 1, 1),        # fwd kernel2: 2 x 2 tiles of 128, 5 K steps
        (1, 6, 6, 3, 5, 2, 2, 4, 0, 1),            # stride > R: dgrad phases with no taps (dx = 0)
        (1, 5, 9, 2, 4, 5, 5, 1, 2, 1),            # filter as large as the padded input
        (3, 9, 9, 3, 64, 11, 11, 4, 1, 1),         # conv1-like: C = 3, 11 x 11, stride 4
        (2, 7, 9, 16, 264, 3, 3, 1, (1, 0, 0, 1), 2),  # wgrad kernel2: 2 x 1 tiles of 128 per group
        (17, 2, 3, 8, 8, 2, 2, 1, 0, 1),           # wgrad kernel2: P = 1, Q = 2 (the row counter wraps images)
    ],
)
def test_conv_tile_edges(kernel_device, cpu, n, h, w, c, k, r, s, stride, padding, groups):
    rng = np.random.default_rng(n * 1000 + h * 100 + c)
    x, wt, b = randn(rng, n, h, w, c), randn(rng, k, r, s, c // groups), randn(rng, k)
    check_conv(kernel_device, cpu, x, wt, b, stride=stride, padding=padding, groups=groups, relu=False)


@cxx_throw_works
def test_conv2d_fast_path_falls_back_when_misaligned(kernel_device, cpu):
    """C/g % 4 == 0 but x starts 4 bytes past a 16-byte boundary: the launcher must take
    conv_fwd_kernel3 (and refuse a forced kernel2), with the same answer."""
    if kernel_device.name != "emu":
        pytest.skip("builds a misaligned NumPy view")
    rng = np.random.default_rng(8)
    x, w, b = randn(rng, 2, 7, 6, 8), randn(rng, 12, 3, 3, 4), randn(rng, 12)
    buf = np.empty(x.size + 4, np.float32)
    start = next(i for i in range(4) if (buf[i:].ctypes.data % 16) == 4)
    xm = buf[start:start + x.size].reshape(x.shape)
    xm[...] = x
    assert xm.flags.c_contiguous and xm.ctypes.data % 16 == 4
    ops, kw = kernel_device.ops, dict(stride=1, padding=1, groups=2)
    assert ops.kernel_version("conv2d", x, w, **kw) == 2 and ops.kernel_version("conv2d", xm, w, **kw) == 3
    np.testing.assert_array_equal(ops.conv2d(xm, w, b, **kw), ops.conv2d(x, w, b, **kw))
    with forced_version(ops, "conv2d", 2):
        assert ops.kernel_version("conv2d", x, w, **kw) == 2
        for call in (lambda: ops.conv2d(xm, w, b, **kw), lambda: ops.kernel_version("conv2d", xm, w, **kw)):
            with pytest.raises(ValueError, match="kernel2 needs"):
                call()
    for bad in (4, -1, True, "2"):
        with forced_version(ops, "conv2d", bad), pytest.raises(ValueError, match="version"):
            ops.conv2d(x, w, b, **kw)
    with forced_version(ops, "relu", 1), pytest.raises(ValueError, match="has no kernel versions"):
        ops.conv2d(x, w, b, **kw)
    check_conv(kernel_device, cpu, xm, w, b, backward=False, **kw)


def test_conv_fwd_kernel3_tap_table_windows(kernel_device, cpu):
    """conv_fwd_kernel3 decodes the taps into a shared-memory table of two windows of 640
    taps (40 K steps each), refilled alternately: R*S*C/g = 1280 (C = 5, 16 x 16) fills both
    exactly, 1287 (C = 143, 3 x 3: 81 K steps) reuses window 0's half for window 2."""
    rng = np.random.default_rng(9)
    ops, put = kernel_device.ops, kernel_device.put
    for shape_x, shape_w, kw in (((1, 18, 17, 5), (6, 16, 16, 5), dict(stride=1, padding=(1, 0, 0, 1), groups=1)),
                                 ((1, 5, 4, 143), (4, 3, 3, 143), dict(stride=1, padding=1, groups=1)),
                                 ((2, 9, 8, 286), (6, 3, 3, 143), dict(stride=2, padding=(0, 1, 1, 0), groups=2))):
        x, w, b = randn(rng, *shape_x), randn(rng, *shape_w, scale=1 / 36), randn(rng, shape_w[0])
        assert w[0].size > 2 * CONV_FWD3_WINDOW_TAPS - 16
        assert ops.kernel_version("conv2d", put(x), put(w), **kw) == 3
        check_conv(kernel_device, cpu, x, w, b, backward=False, **kw)


def test_conv_relu_epilogue(kernel_device, cpu):
    """relu=True is relu(conv + b) exactly where the reference is clearly away from 0."""
    rng = np.random.default_rng(4)
    x, w, b = randn(rng, 2, 8, 8, 6), randn(rng, 20, 3, 3, 3), randn(rng, 20)
    kw = dict(stride=1, padding=1, groups=2)
    y = kernel_device.get(kernel_device.ops.conv2d(*map(kernel_device.put, (x, w, b)), relu=True, **kw))
    lin = kernel_device.get(kernel_device.ops.conv2d(*map(kernel_device.put, (x, w, b)), **kw))
    np.testing.assert_array_equal(y, np.where(lin > 0, lin, 0))  # the epilogue is exactly relu(.)
    assert (y == 0).mean() > 0.3 and (y > 0).mean() > 0.3
    check_conv(kernel_device, cpu, x, w, b, relu=True, backward=False, **kw)


# ----------------------------------------------------------------------------- AlexNet

# The paper's five conv layers (§3.5), on 227 x 227 crops (conv1 needs no padding there;
# cuda_convnet/alexnet_shapes.py): name: (H, W, C, K, R, stride, padding, groups).
ALEXNET = {L.name: (L.hw, L.hw, L.c, L.k, L.r, L.stride, L.pad, L.groups) for L in conv_layers()}


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("layer", list(ALEXNET))
def test_conv_alexnet_layer_shapes(kernel_device, cpu, layer, capsys):
    """Every AlexNet conv layer's real shape at batch 2, nothing cut: forward (with bias),
    dgrad, wgrad and the bias gradient (on the emulator, about 12 s for all five on 2 cores;
    conv1's dgrad takes the 256 x 16 tile and the stride-4 phase split, without which it
    alone took ~130 s). Weights scaled by 1/sqrt(R*S*C/g) to keep outputs O(1)."""
    h, w, c, k, r, stride, pad, groups = ALEXNET[layer]
    rng = np.random.default_rng(sum(map(ord, layer)))
    x = randn(rng, 2, h, w, c)
    wt = randn(rng, k, r, r, c // groups, scale=1 / np.sqrt(r * r * c // groups))
    b = randn(rng, k)
    t = time.perf_counter()
    kw = dict(stride=stride, padding=pad, groups=groups)
    version = kernel_device.ops.kernel_version("conv2d", kernel_device.put(x), kernel_device.put(wt), **kw)
    assert version == (3 if layer == "conv1" else 2)  # C = 3 takes the scalar gather
    g = checks.check_conv_args(x, wt, None, stride, pad, groups)
    dy = kernel_device.put(np.empty((2, g.p, g.q, k), np.float32))
    # wgrad: conv1 (C = 3) copies x element by element (kernel3), conv2-5 in quads (kernel2);
    # K/g = 192 (conv4) in 96-filter tiles (kernel4); conv1's kernel5 runs only when forced
    assert kernel_device.ops.kernel_version("conv2d_wgrad", kernel_device.put(x), dy, wt.shape, **kw) == \
        {"conv1": 3, "conv4": 4}.get(layer, 2)
    check_conv(kernel_device, cpu, x, wt, b, what=layer, both_kernels=False, **kw)
    with capsys.disabled():
        print(f"\n[{kernel_device.name}] {layer} batch 2 forward + backward (with the reference): "
              f"{time.perf_counter() - t:.2f} s", end="")


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("layer,wide", [("conv1", 5), ("conv4", 4)])
def test_wgrad_wide_tile_alexnet_layers(kernel_device, cpu, layer, wide):
    """conv1's and conv4's dw at batch 2 through the 96-filter tile (kernel5, kernel4), the
    128-filter tile of the same copies (kernel3, kernel2) and the general kernel1 under the
    same plan: the same bits, within tolerance of the reference. The launcher picks kernel4
    for conv4 and kernel3 for conv1 (kernel5's main loop is below the SASS gate's floor)."""
    h, w, c, k, r, stride, pad, groups = ALEXNET[layer]
    rng = np.random.default_rng(sum(map(ord, layer)) + 1)
    x = randn(rng, 2, h, w, c)
    g = checks.check_conv_args(x, np.empty((k, r, r, c // groups), np.float32), None, stride, pad, groups)
    dy = randn(rng, 2, g.p, g.q, k)
    kw = dict(stride=stride, padding=pad, groups=groups)
    ops, put = kernel_device.ops, kernel_device.put
    wshape = (k, r, r, c // groups)
    assert ops.kernel_version("conv2d_wgrad", put(x), put(dy), wshape, **kw) == {"conv1": 3, "conv4": 4}[layer]
    got = {}
    for version in (wide, wide - 2, 1):
        with forced_version(ops, "conv2d_wgrad", version):
            got[version] = [kernel_device.get(a) for a in ops.conv2d_wgrad(put(x), put(dy), wshape, **kw)]
    _, rdw, rdb = cpu.conv2d_backward(up(x), up(randn(rng, *wshape)), up(dy), need_dx=False, **kw)
    assert_kernel_close("conv2d_backward", got[wide][0], rdw, f"{layer} dw (kernel{wide})")
    assert_kernel_close("conv2d_backward", got[wide][1], rdb, f"{layer} db")
    for version in (wide - 2, 1):
        for a, ref, what in zip(got[version], got[wide], ("dw", "db")):
            np.testing.assert_array_equal(a, ref, err_msg=f"{layer} {what}: kernel{version} and kernel{wide} differ")


@st.composite
def wide_wgrad_cases(draw):
    """Shapes for the 96-filter wgrad tile: K/g a whole tile, two, or a ragged one."""
    case = draw(conv_cases())
    case["k"] = case["groups"] * draw(st.sampled_from([4, 96, 104, 192]))
    return case


@given(case=wide_wgrad_cases())
def test_wgrad_wide_tile_on_drawn_shapes(kernel_device, cpu, case):
    """conv_wgrad_kernel4 (C/g % 4 == 0) and kernel5 (any C/g) forced on drawn shapes (odd
    sizes, stride, asymmetric padding, groups, C = 3, N = 1): kernel1's bits under the same
    plan, within tolerance of the reference."""
    rng = np.random.default_rng(case["seed"])
    n, groups, k = case["n"], case["groups"], case["k"]
    x = randn(rng, n, case["h"], case["w"], case["c"])
    wshape = (k, case["r"], case["s"], case["c"] // groups)
    kw = dict(stride=case["stride"], padding=case["padding"], groups=groups)
    g = checks.check_conv_args(x, np.empty(wshape, np.float32), None, **kw)
    dy = randn(rng, n, g.p, g.q, k)
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    versions = (1, 5, 4) if (case["c"] // groups) % 4 == 0 else (1, 5)
    got = {}
    with wgrad_chunk_rows(ops, case["chunk_rows"]):
        for version in versions:
            with forced_version(ops, "conv2d_wgrad", version):
                got[version] = get(ops.conv2d_wgrad(put(x), put(dy), wshape, **kw)[0])
    _, rdw, _ = cpu.conv2d_backward(up(x), up(randn(rng, *wshape)), up(dy), need_dx=False, **kw)
    assert_kernel_close("conv2d_backward", got[5], rdw, f"{case} dw (kernel5)")
    for version in versions[2:] + (1,):
        np.testing.assert_array_equal(got[version], got[5], err_msg=f"{case}: kernel{version} and kernel5 differ")


# ----------------------------------------------------------------------------- determinism

def _determinism_case():
    rng = np.random.default_rng(11)
    # N*P*Q = 2*12*12 = 288 rows: two chunks in the automatic plan, 18 with chunk_rows=16.
    x, w, b = randn(rng, 2, 12, 12, 6), randn(rng, 10, 3, 3, 3), randn(rng, 10)
    dy = randn(rng, 2, 12, 12, 10)
    return x, w, b, dy, dict(stride=1, padding=1, groups=2)


@pytest.mark.parametrize("chunk_rows", [0, 16])
def test_conv_backward_is_deterministic(kernel_device, chunk_rows):
    """No atomics in the reductions: two runs give bit-identical dx, dw, db."""
    x, w, _, dy, kw = _determinism_case()
    ops = kernel_device.ops
    args = [kernel_device.put(a) for a in (x, w, dy)]
    with wgrad_chunk_rows(ops, chunk_rows):
        plan = ops.conv2d_wgrad_plan(checks.check_conv_backward_args(x, w, dy, **kw))
        assert plan["chunks"] > 1 and plan["bias_chunks"] > 1, plan  # the split path
        first = [kernel_device.get(a) for a in ops.conv2d_backward(*args, **kw)]
        second = [kernel_device.get(a) for a in ops.conv2d_backward(*args, **kw)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def _determinism_case_kernel2():
    rng = np.random.default_rng(12)
    # C/g = 4, K/g = 8: wgrad kernel2 (and forward kernel2); N*P*Q = 3*9*7 = 189 rows.
    x, w, b = randn(rng, 3, 9, 7, 8), randn(rng, 16, 3, 2, 4), randn(rng, 16)
    dy = randn(rng, 3, 9, 7, 16)
    return x, w, b, dy, dict(stride=1, padding=(1, 1, 0, 1), groups=2)


@pytest.mark.emu
@pytest.mark.parametrize("case", [_determinism_case, _determinism_case_kernel2], ids=["kernel1", "kernel2"])
def test_conv_identical_in_every_thread_order(monkeypatch, cpu, case):
    """The emulator's thread order between barriers must not change any conv output, bit
    for bit: each is one thread's fixed-order sum, and the chunk partials of dw and db are
    added in chunk order (both wgrad kernels)."""
    emu = ccn.backend("emu")
    x, w, b, dy, kw = case()
    assert emu.kernel_version("conv2d_wgrad", x, dy, w.shape, **kw) == (2 if case is _determinism_case_kernel2 else 1)
    results = {}
    for order in ("forward", "reverse", "shuffle:5"):
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        with wgrad_chunk_rows(emu, 16):
            results[order] = [emu.conv2d(x, w, b, relu=True, **kw), *emu.conv2d_backward(x, w, dy, **kw)]
    for order, outs in results.items():
        for name, a, ref in zip(("y", "dx", "dw", "db"), outs, results["forward"]):
            np.testing.assert_array_equal(a, ref, err_msg=f"{name} in order {order}")
    _, rdw, _ = cpu.conv2d_backward(up(x), up(w), up(dy), **kw)
    assert_kernel_close("conv2d_backward", results["forward"][2], rdw, "dw")


def _misaligned(a):
    """A copy of `a` whose data start 4 bytes past a 16-byte boundary."""
    buf = np.empty(a.size + 4, np.float32)
    start = next(i for i in range(4) if (buf[i:].ctypes.data % 16) == 4)
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


@cxx_throw_works
def test_wgrad_fast_paths_fall_back_when_misaligned(kernel_device, cpu):
    """C/g and K/g % 4 == 0 but x or dy starts 4 bytes past a 16-byte boundary: a misaligned
    x takes conv_wgrad_kernel3 (x copied element by element), a misaligned dy kernel1, both
    under the same plan (the same bits); a forced kernel that cannot run is refused."""
    if kernel_device.name != "emu":
        pytest.skip("builds a misaligned NumPy view")
    x, w, _, dy, kw = _determinism_case_kernel2()
    xm, dym = _misaligned(x), _misaligned(dy)
    ops = kernel_device.ops
    want = ops.conv2d_wgrad(x, dy, w.shape, **kw)
    for xa, dya, version in ((x, dy, 2), (xm, dy, 3), (x, dym, 1), (xm, dym, 1)):
        assert ops.kernel_version("conv2d_wgrad", xa, dya, w.shape, **kw) == version
        for got, ref in zip(ops.conv2d_wgrad(xa, dya, w.shape, **kw), want):
            np.testing.assert_array_equal(got, ref, err_msg=f"kernel{version}")
    for version, xa, dya in ((2, xm, dy), (3, x, dym)):
        with forced_version(ops, "conv2d_wgrad", version):
            with pytest.raises(ValueError, match=f"conv_wgrad_kernel{version} needs"):
                ops.conv2d_wgrad(xa, dya, w.shape, **kw)
            with pytest.raises(ValueError, match=f"conv_wgrad_kernel{version} needs"):
                ops.kernel_version("conv2d_wgrad", xa, dya, w.shape, **kw)
    for version, xa, dya in ((4, xm, dy), (5, x, dym)):  # kernel4/5 run where kernel2/3 do
        with forced_version(ops, "conv2d_wgrad", version), \
                pytest.raises(ValueError, match=f"conv_wgrad_kernel{version} needs"):
            ops.conv2d_wgrad(xa, dya, w.shape, **kw)
    with forced_version(ops, "conv2d_wgrad", 6), pytest.raises(ValueError, match="version must be 0"):
        ops.conv2d_wgrad(x, dy, w.shape, **kw)


# The automatic plan's model of the card (csrc/conv_wgrad.cu): 132 SMs; blocks resident per
# SM on sm_90, as tests/test_sass.py keeps them (MIN_BLOCKS_PER_SM): kernel2 and kernel3 2
# (128 x 128 tiles, planned for wherever K/groups % 4 == 0; kernel4 and kernel5's 96 x 128
# where K/groups % 96 == 0 and % 128 != 0, also 2), kernel1 5 (64 x 64).
PLAN_SMS, PLAN_TILES = 132, {True: (128, 2), False: (64, 5)}


def plan_tile_rows(kg):
    """The filter rows of the tile the wgrad plan assumes for K/groups = kg."""
    return 96 if kg % 96 == 0 and kg % 128 != 0 else 128


@pytest.mark.parametrize("layers", ["grouped", "towers"])
def test_wgrad_plan_fills_whole_waves_for_alexnet(layers):
    """At batch 128 every AlexNet layer's dw grid fills >= 95 % of the waves it takes on a
    132-SM H100 (before this plan: 1.16-1.9 waves of 64 x 64 tiles, 58-95 % filled), with
    chunks of >= 256 rows."""
    from cuda_convnet.alexnet_shapes import tower_layers
    ops = ccn.backend("emu")
    for L in conv_layers() if layers == "grouped" else tower_layers():
        x = np.empty((128, L.hw, L.hw, L.c), np.float32)
        w = np.empty((L.k, L.r, L.r, L.c // L.groups), np.float32)
        g = checks.check_conv_args(x, w, None, L.stride, L.pad, L.groups)
        plan = ops.conv2d_wgrad_plan(g)
        tile, per_sm = PLAN_TILES[(g.k // g.groups) % 4 == 0]
        assert tile == 128
        rows = plan_tile_rows(g.k // g.groups)
        if layers == "grouped":
            assert (rows == 96) == (L.name in ("conv1", "conv4")), (L.name, rows)
        blocks = -(-g.k // g.groups // rows) * -(-g.r * g.s * (g.c // g.groups) // tile) * g.groups * plan["chunks"]
        slots = PLAN_SMS * per_sm
        fill = blocks / (-(-blocks // slots) * slots)
        assert fill >= 0.95, f"{L.name}: {blocks} blocks on {slots} slots per wave: {fill:.2f} of the waves used"
        assert plan["chunks"] > 1 and plan["chunk_rows"] >= 256, (L.name, plan)


def test_wgrad_plan_depends_on_the_shape_only(kernel_device):
    """The split (hence dw's rounding) is a function of the shape: the same on every device.
    The automatic plan keeps chunks >= 256 rows and <= 128 chunks; the workspace holds the
    partials of every split reduction."""
    ops = kernel_device.ops
    rng = np.random.default_rng(0)
    for (n, h, c, k, r, stride, pad, groups) in [(2, 227, 3, 96, 11, 4, 0, 1), (128, 27, 96, 256, 5, 1, 2, 2),
                                                 (1, 5, 3, 4, 3, 1, 0, 1)]:
        x = np.empty((n, h, h, c), np.float32)
        w = np.empty((k, r, r, c // groups), np.float32)
        g = checks.check_conv_args(x, w, None, stride, pad, groups)
        plan = ops.conv2d_wgrad_plan(g)
        rows = g.n * g.p * g.q
        assert plan["chunk_rows"] % 16 == 0 and (plan["chunks"] - 1) * plan["chunk_rows"] < rows
        assert plan["chunks"] * plan["chunk_rows"] >= rows
        assert plan["chunks"] <= 128 and (plan["chunks"] == 1 or plan["chunk_rows"] >= 256)
        want = (plan["chunks"] * w.size if plan["chunks"] > 1 else 0) + \
               (plan["bias_chunks"] * k if plan["bias_chunks"] > 1 else 0)
        assert plan["workspace_floats"] == want
    del rng


# ----------------------------------------------------------------------------- bad input

def test_conv_rejects_bad_input(kernel_device):
    rng = np.random.default_rng(0)
    ops, put = kernel_device.ops, kernel_device.put
    x, w, dy = randn(rng, 1, 5, 5, 4), randn(rng, 6, 3, 3, 2), randn(rng, 1, 3, 3, 6)
    with pytest.raises(TypeError, match="float32"):
        ops.conv2d(put(x.astype(np.float64)), put(w.astype(np.float64)), groups=2)
    with pytest.raises(TypeError, match="float32"):
        ops.conv2d_backward(put(x.astype(np.float64)), put(w.astype(np.float64)), put(dy.astype(np.float64)),
                            groups=2)
    with pytest.raises(ValueError, match="input channels per group"):
        ops.conv2d(put(x), put(w))  # w has 2 channels per group, x has 4 with groups=1
    with pytest.raises(ValueError, match="not divisible by groups"):
        ops.conv2d(put(x), put(randn(rng, 6, 3, 3, 4)), groups=3)
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.conv2d_backward(put(x), put(w), put(randn(rng, 1, 4, 3, 6)), groups=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(put(x), put(randn(rng, 6, 7, 3, 2)), groups=2)


@pytest.mark.parametrize("n,c,k", [(0, 4, 6), (2, 0, 6), (2, 4, 0)])
def test_conv_empty_sizes_match_reference(kernel_device, cpu, n, c, k):
    """An empty batch, no input channels or no filters: no kernel runs, and the answers
    are the reference's (y = b, zero gradients, db = sum of dy)."""
    rng = np.random.default_rng(2)
    x, w, b = randn(rng, n, 5, 6, c), randn(rng, k, 3, 2, c), randn(rng, k)
    dy = randn(rng, n, 3, 5, k)
    put, get, ops = kernel_device.put, kernel_device.get, kernel_device.ops
    np.testing.assert_array_equal(get(ops.conv2d(put(x), put(w), put(b))), cpu.conv2d(x, w, b))
    np.testing.assert_array_equal(get(ops.conv2d(put(x), put(w), put(b), relu=True)), cpu.relu(cpu.conv2d(x, w, b)))
    for got, want in zip(ops.conv2d_backward(put(x), put(w), put(dy)), cpu.conv2d_backward(x, w, dy)):
        assert get(got).dtype == np.float32
        np.testing.assert_allclose(get(got), want, **tol("conv2d_backward", "kernel_vs_reference"))


@cxx_throw_works
def test_launcher_checks_reach_python(kernel_device):
    """The C++ launchers' own preconditions raise ValueError (std::invalid_argument)."""
    ext = kernel_device.ops.ext
    shape = dict(n=1, h=20, w=20, c=2, k=2, r=3, s=3, stride=1, pad_top=0, pad_bottom=0, pad_left=0,
                 pad_right=0, groups=1)
    plan = ext.conv2d_wgrad_plan(**shape, chunk_rows=16)
    assert plan["chunks"] > 1 and plan["workspace_floats"] > 0
    with pytest.raises(ValueError, match="workspace too small"):
        ext.conv2d_wgrad(x=1, dy=1, dw=1, db=0, workspace=0, workspace_floats=plan["workspace_floats"] - 1, **shape,
                         chunk_rows=16)
    with pytest.raises(ValueError, match="divisible by groups"):
        ext.conv2d(x=1, wt=1, b=0, y=1, **dict(shape, groups=3))
    with pytest.raises(ValueError, match="larger than the padded input"):
        ext.conv2d_dgrad(dy=1, wt=1, dx=1, **dict(shape, h=2))
    with pytest.raises(ValueError, match="version must be"):
        ext.conv2d(x=16, wt=16, b=0, y=16, **shape, version=4)


@pytest.mark.parametrize("stride,padding,groups", [(1, 1, 1), (2, (0, 1, 1, 0), 2), (3, 0, 1)])
def test_dgrad_and_wgrad_alone_equal_conv2d_backward(kernel_device, cpu, stride, padding, groups):
    """conv2d_dgrad / conv2d_wgrad (what conv_bench times one direction at a time) give
    conv2d_backward's dx and (dw, db) bit for bit, on the kernels and on the reference."""
    rng = np.random.default_rng(41 + stride)
    x, w = randn(rng, 2, 9, 8, 4), randn(rng, 6, 3, 3, 4 // groups)
    g = checks.check_conv_args(x, w, None, stride, padding, groups)
    dy = randn(rng, 2, g.p, g.q, 6)
    kw = dict(stride=stride, padding=padding, groups=groups)
    for ops, put, get in ((kernel_device.ops, kernel_device.put, kernel_device.get), (cpu, np.asarray, np.asarray)):
        xd, wd, dyd = (put(a) for a in (x, w, dy))
        dx, dw, db = (get(a) for a in ops.conv2d_backward(xd, wd, dyd, **kw))
        np.testing.assert_array_equal(get(ops.conv2d_dgrad(dyd, wd, x.shape, **kw)), dx)
        dw1, db1 = ops.conv2d_wgrad(xd, dyd, w.shape, **kw)
        np.testing.assert_array_equal(get(dw1), dw)
        np.testing.assert_array_equal(get(db1), db)
    # and the kernels' halves against the float64 reference
    dx64, dw64, db64 = cpu.conv2d_backward(up(x), up(w), up(dy), **kw)
    ops = kernel_device.ops
    dx = kernel_device.get(ops.conv2d_dgrad(kernel_device.put(dy), kernel_device.put(w), x.shape, **kw))
    assert_kernel_close("conv2d_backward", dx, dx64, "dx")
    dw1, db1 = ops.conv2d_wgrad(kernel_device.put(x), kernel_device.put(dy), w.shape, **kw)
    assert_kernel_close("conv2d_backward", kernel_device.get(dw1), dw64, "dw")
    assert_kernel_close("conv2d_backward", kernel_device.get(db1), db64, "db")


@pytest.mark.parametrize("backend_name", ["cpu", "emu"])
def test_dgrad_wgrad_reject_bad_shapes(backend_name):
    ops = ccn.backend(backend_name)
    rng = np.random.default_rng(5)
    x, w, dy = randn(rng, 1, 5, 5, 2), randn(rng, 3, 3, 3, 2), randn(rng, 1, 3, 3, 3)
    with pytest.raises(ValueError, match="conv2d_dgrad: x_shape must be 4 non-negative ints"):
        ops.conv2d_dgrad(dy, w, (1, 5, 5))
    with pytest.raises(TypeError, match="conv2d_wgrad: w_shape must be a shape"):
        ops.conv2d_wgrad(x, dy, None)
    with pytest.raises(ValueError, match="conv2d_dgrad: dy must have shape"):
        ops.conv2d_dgrad(dy, w, (1, 7, 7, 2))
