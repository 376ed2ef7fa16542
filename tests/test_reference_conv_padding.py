"""The reference convolution allocates only the padding some window reads with the image.

Outputs whose window lies wholly in the padding are the bias (forward) and add nothing
to dx, dw (backward); the rest is computed on the part of the padded input their windows
read, so a padding of 2^31 costs what the image costs. Checked against a straightforward
implementation that materialises the whole padded input (small shapes, paddings and
strides larger than the kernel), and against the emu kernels at paddings near
checks.MAX_EXTENT.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import cuda_convnet as ccn
from cuda_convnet import checks, shapes
from cuda_convnet.reference import conv as rconv
from tests.kernel_inputs import randn


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


# ------------------------------------------------------------------- padding near the limit

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
