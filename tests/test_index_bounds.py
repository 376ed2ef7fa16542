"""No 32-bit overflow and no out-of-bounds access for any legal argument, and legal but
absurd arguments (a window of 2^30, an LRN size of 2^62) finish in milliseconds.

Every extent an op accepts is at most checks.MAX_EXTENT (2^31 - 1025) on every backend,
so a kernel's int index plus one tile step never wraps; larger ones are refused with the
same message on cpu and emu before anything is allocated (the tests pass zero-size arrays
with one huge dimension). The launchers refuse the same extents themselves (the
bindings are called directly with tiny arrays and huge sizes), and where a kernel forms
sums of extents (pool window bounds, conv origins) it does so in 64 bits.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from kernel_inputs import randn

import cuda_convnet as ccn
from cuda_convnet import checks

BACKENDS = ("cpu", "emu")
MAX = checks.MAX_EXTENT
INT_MAX = 2**31 - 1


def _ext():
    return ccn.backend("emu").ext


def _ptr(a):
    return a.ctypes.data


# ------------------------------------------------------------------------------ pooling

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
    _ext().max_pool_backward(_ptr(x), _ptr(y), _ptr(dy), _ptr(dx), 2, 3, 3, 1, 1, INT_MAX, 0, 0, 0, 0, 1, 1)
    want = np.zeros_like(x)
    want[:, 0, 0, :] = dy[:, 0, 0, :]
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("backend", BACKENDS)
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


@pytest.mark.parametrize("backend", BACKENDS)
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


# ------------------------------------------------------------------------------ LRN

@pytest.mark.parametrize("backend", BACKENDS)
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


def test_lrn_launcher_accepts_any_size_and_refuses_huge_channel_counts():
    rng = np.random.default_rng(5)
    x = randn(rng, 3, 6)
    y1, y2 = np.full_like(x, np.nan), np.full_like(x, np.nan)
    lrn = dict(alpha=0.01, neg_beta=-0.75, k=2.0)
    _ext().lrn(x=_ptr(x), y=_ptr(y1), rows=3, channels=6, size=2**62, **lrn)
    _ext().lrn(x=_ptr(x), y=_ptr(y2), rows=3, channels=6, size=11, **lrn)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match=rf"channels = {INT_MAX} is larger than {MAX}"):
        _ext().lrn(x=_ptr(x), y=_ptr(y1), rows=1, channels=INT_MAX, size=5, **lrn, version=1)


# ------------------------------------------------------------------------------ GEMM, softmax

@pytest.mark.parametrize("which", ["M", "N", "K"])
def test_gemm_launcher_refuses_extents_whose_tile_loop_would_wrap(which):
    # K near 2^31: `k0 += 16` would pass INT_MAX. Refused before any pointer is read.
    a = np.ones(4, np.float32)
    dims = {"M": 1, "N": 1, "K": 1, which: INT_MAX - 3}
    with pytest.raises(ValueError, match=rf"gemm: {which} = {INT_MAX - 3} is larger than {MAX}"):
        _ext().gemm(a=_ptr(a), b=_ptr(a), c=_ptr(a), bias=0, **dims, trans_a=False, trans_b=False)


def test_versioned_launchers_refuse_unknown_versions():
    a = np.ones(16, np.float32)
    gemm = dict(a=_ptr(a), b=_ptr(a), c=_ptr(a), bias=0, M=4, N=4, K=1, trans_a=False, trans_b=False)
    assert [_ext().gemm_version(M=m, N=n) for m, n in ((127, 500), (128, 128))] == [1, 2]
    for version in (-1, 3):
        with pytest.raises(ValueError, match="version must be 0"):
            _ext().gemm(**gemm, version=version)
        with pytest.raises(ValueError, match="version must be 0"):
            _ext().lrn(x=_ptr(a), y=_ptr(a), rows=4, channels=4, size=5, alpha=0.01, neg_beta=-0.75, k=2.0,
                       version=version)
        with pytest.raises(ValueError, match="version must be 0"):
            _ext().lrn_version(rows=4, channels=4, version=version)


def test_softmax_launchers_refuse_class_counts_whose_loop_would_wrap():
    a, labels, counts = np.ones(4, np.float32), np.zeros(1, np.int32), np.zeros(2, np.int32)
    with pytest.raises(ValueError, match=rf"classes = {INT_MAX} is larger than {MAX}"):
        _ext().softmax_cross_entropy(logits=_ptr(a), labels=_ptr(labels), probs=_ptr(a), row_loss=_ptr(a), loss=_ptr(a),
                                     rows=1, classes=INT_MAX)
    with pytest.raises(ValueError, match=rf"classes = {INT_MAX} is larger than {MAX}"):
        _ext().topk_errors(probs=_ptr(a), labels=_ptr(labels), rows=1, classes=INT_MAX, ks=[1, 5], counts=_ptr(counts))


# ------------------------------------------------------------------------------ conv

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


# ------------------------------------------------------------------------------ refusals

def _zero(*shape):
    return np.zeros(shape, np.float32)


REFUSED = {
    "pool H": (lambda o: o.max_pool(_zero(0, MAX + 1, 1, 1), size=1, stride=1),
               rf"max_pool: x.shape\[1\] \(H\) = {MAX + 1} is larger than {MAX}"),
    "pool padded W": (lambda o: o.max_pool(_zero(0, 1, 2, 1), size=MAX, stride=1, padding=(0, 0, MAX - 1, 0)),
                      rf"max_pool: W \+ left \+ right = {MAX + 1} is larger than {MAX}"),
    "linear in": (lambda o: o.linear(_zero(0, MAX + 1), _zero(0, MAX + 1)),
                  rf"linear: x.shape\[1\] \(in\) = {MAX + 1} is larger than {MAX}"),
    "linear N": (lambda o: o.linear(_zero(checks.GEMM_MAX_ROWS + 1, 0), _zero(2, 0)),
                 rf"linear: N = {checks.GEMM_MAX_ROWS + 1} is larger than {checks.GEMM_MAX_ROWS}"),
    "conv R*S*C": (lambda o: o.conv2d(_zero(0, 2, 1, 2**30), _zero(0, 2, 1, 2**30)),
                   rf"conv2d: R\*S\*C/groups = {2**31} is larger than {checks.CONV_MAX_GEMM}"),
    "conv padded H": (lambda o: o.conv2d(_zero(0, 3, 3, 1), _zero(1, 1, 1, 1), padding=(MAX, 0, 0, 0)),
                      rf"conv2d: H \+ top \+ bottom = {MAX + 3} is larger than {MAX}"),
    "dgrad phases": (lambda o: o.conv2d_backward(_zero(1, 3, 3, 1), _zero(1, 1, 1, 1), _zero(1, 1, 1, 1),
                                                 stride=256),
                     r"conv2d_backward: groups \* stride\^2 = 65536 is larger than 65535"),
    "lrn C": (lambda o: o.lrn(_zero(0, 1, 1, MAX + 1)),
              rf"lrn: x.shape\[3\] \(C\) = {MAX + 1} is larger than {MAX}"),
    "softmax classes": (lambda o: o.softmax_cross_entropy(_zero(0, MAX + 1), np.zeros(0, np.int64)),
                        rf"softmax_cross_entropy: classes = {MAX + 1} is larger than {MAX}"),
    "concat channels": (lambda o: o.concat_channels([_zero(0, 2**30), _zero(0, 2**30)]),
                        rf"concat_channels: total channels = {2**31} is larger than {MAX}"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(REFUSED))
def test_extents_past_the_limit_are_refused_alike_before_allocation(backend, case):
    call, message = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        call(ccn.backend(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_stride_256_forward_is_legal(backend):
    rng = np.random.default_rng(8)
    x, w = randn(rng, 1, 3, 3, 2), randn(rng, 2, 1, 1, 2)
    y = ccn.backend(backend).conv2d(x, w, stride=256)
    np.testing.assert_allclose(y[0, 0, 0], w[:, 0, 0, :] @ x[0, 0, 0], rtol=1e-6)
