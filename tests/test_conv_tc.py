"""The convolutions on tensor cores (csrc/conv_tc_fwd.cuh, conv_tc_dgrad.cuh,
conv_tc_wgrad.cuh over the main loop of tc_mainloop.cuh): forward (bias, fused ReLU),
dgrad and wgrad (with db) at precision "tf32", "3xtf32" and "bf16" on the emu backend (and
cuda when a GPU is present), through the bindings conv2d_tc, conv2d_dgrad_tc and
conv2d_wgrad_tc.

The reference is the NumPy convolution (cuda_convnet/reference/conv.py) in float64 on the
operands rounded exactly as the kernels round them (reference/precision.py: x, w and dy
to TF32 or BF16; 3xtf32 unrounded), so kernel and reference agree to float32 accumulation
error and the comparison is at the float32 tolerances of tests/tolerances.py, not at the
formats' 10- or 7-bit mantissas; test_the_precisions_really_differ shows that tf32 and
bf16 are off the unrounded result by more than that tolerance (the rounding is real and
the rounded reference tracks it). db is a float32 column sum of dy, never rounded. Inputs
are random N(0, 1); outputs are NaN-poisoned before every launch (the conftest's poison
for backend arrays; np.full(..., nan) here)."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import simt_build as sb
from hypothesis import given
from hypothesis import strategies as st
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet import checks
from cuda_convnet.alexnet_shapes import conv_layers
from cuda_convnet.backends.device import BackendDevice
from cuda_convnet.reference import conv as ref
from cuda_convnet.reference.precision import round_bf16, round_tf32

TC = ("tf32", "3xtf32", "bf16")
ORDERS = ("forward", "reverse", "shuffle:5")
DRIVER = sb.SIMT_DIR / "conv_tc_driver.cpp"
MAINLOOP = sb.CSRC / "tc_mainloop.cuh"
ROUND = {"tf32": round_tf32, "bf16": round_bf16, "3xtf32": np.asarray}


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def shape_args(g: checks.ConvGeometry) -> dict:
    top, bottom, left, right = g.padding
    return dict(n=g.n, h=g.h, w=g.w, c=g.c, k=g.k, r=g.r, s=g.s, stride=g.stride, pad_top=top,
                pad_bottom=bottom, pad_left=left, pad_right=right, groups=g.groups)


def nan_array(dev, shape):
    return dev.put(np.full(shape, np.nan, np.float32))


def tc_forward(dev, x, w, b, precision, relu=False, **kw):
    ops = dev.ops
    g = checks.check_conv_args(x, w, b, kw["stride"], kw["padding"], kw["groups"])
    y = nan_array(dev, (g.n, g.p, g.q, g.k))
    dx_, dw_, db_ = dev.put(x), dev.put(w), dev.put(b)  # alive until the launch is done
    ops.ext.conv2d_tc(ops._ptr(dx_), ops._ptr(dw_), ops._ptr(db_) if b is not None else 0, ops._ptr(y),
                      **shape_args(g), relu=relu, precision=precision, stream=ops._stream())
    return dev.get(y)


def tc_dgrad(dev, dy, w, x_shape, precision, **kw):
    ops = dev.ops
    g = checks.check_conv_backward_args(np.empty(x_shape, np.float32), w, dy, kw["stride"], kw["padding"],
                                        kw["groups"])
    dx = nan_array(dev, x_shape)
    ddy, dw_ = dev.put(dy), dev.put(w)
    ops.ext.conv2d_dgrad_tc(ops._ptr(ddy), ops._ptr(dw_), ops._ptr(dx), **shape_args(g), precision=precision,
                            stream=ops._stream())
    return dev.get(dx)


def tc_wgrad(dev, x, dy, w_shape, precision, chunk_rows=0, **kw):
    ops = dev.ops
    g = checks.check_conv_backward_args(x, np.empty(w_shape, np.float32), dy, kw["stride"], kw["padding"],
                                        kw["groups"])
    plan = ops.ext.conv2d_wgrad_tc_plan(**shape_args(g), chunk_rows=chunk_rows)
    ws = nan_array(dev, (max(plan["workspace_floats"], 1),))
    dw, db = nan_array(dev, w_shape), nan_array(dev, (g.k,))
    dx_, ddy = dev.put(x), dev.put(dy)
    ops.ext.conv2d_wgrad_tc(ops._ptr(dx_), ops._ptr(ddy), ops._ptr(dw), ops._ptr(db), ops._ptr(ws),
                            plan["workspace_floats"], **shape_args(g), chunk_rows=chunk_rows, precision=precision,
                            stream=ops._stream())
    return dev.get(dw), dev.get(db)


def assert_close(op, got, want, what=""):
    assert got.shape == want.shape and got.dtype == np.float32, what
    assert not np.isnan(got).any(), f"{what}: an output element was never written (still NaN poison)"
    np.testing.assert_allclose(got, want, err_msg=what, **tol(op, "kernel_vs_reference"))


def check_all(dev, precision, x, w, b, dy, *, chunk_rows=0, what="", directions=("fwd", "dgrad", "wgrad"), **kw):
    """Each direction against the float64 reference on the operands rounded as `precision`."""
    rnd = ROUND[precision]
    rx, rw, rdy = (rnd(a).astype(np.float64) for a in (x, w, dy))
    if "fwd" in directions:
        want = np.maximum(ref.conv2d(rx, rw, b.astype(np.float64), **kw), 0)
        assert_close("conv2d", tc_forward(dev, x, w, b, precision, relu=True, **kw), want, f"{what} fwd")
    if "dgrad" in directions:
        assert_close("conv2d_backward", tc_dgrad(dev, dy, w, x.shape, precision, **kw),
                     ref.conv2d_dgrad(rdy, rw, x.shape, **kw), f"{what} dgrad")
    if "wgrad" in directions:
        dw, db = tc_wgrad(dev, x, dy, w.shape, precision, chunk_rows=chunk_rows, **kw)
        want_dw, _ = ref.conv2d_wgrad(rx, rdy, w.shape, **kw)
        assert_close("conv2d_backward", dw, want_dw, f"{what} wgrad dw")
        assert_close("conv2d_backward", db, dy.astype(np.float64).sum(axis=(0, 1, 2)), f"{what} wgrad db")


def case(rng, n, h, w, c, k, r, s, groups, stride, padding):
    x = rand(rng, n, h, w, c)
    wt = rand(rng, k, r, s, c // groups, scale=1 / np.sqrt(r * s * c // groups))
    b = rand(rng, k)
    g = checks.check_conv_args(x, wt, b, stride, padding, groups)
    dy = rand(rng, n, g.p, g.q, k)
    return x, wt, b, dy


# ---------------------------------------------------------------- kernels vs reference
@st.composite
def conv_shapes(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.one_of(st.sampled_from([3, 4, 8]), st.integers(1, 20)))
    kg = draw(st.one_of(st.sampled_from([4, 8, 64]), st.integers(1, 70)))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, r - pads[0] - pads[1]), 13))
    w = draw(st.integers(max(1, s - pads[2] - pads[3]), 13))
    n = draw(st.integers(1, 3))
    return n, h, w, cg * groups, kg * groups, r, s, groups, stride, pads


@given(precision=st.sampled_from(TC), shape=conv_shapes(), chunk_rows=st.sampled_from([0, 16, 48]),
       seed=st.integers(0, 2**31))
def test_conv_tc_matches_rounded_reference_on_drawn_shapes(kernel_device, precision, shape, chunk_rows, seed):
    """Odd sizes, C = 3, N = 1, stride 1-3, asymmetric padding, groups, both copy widths
    (C/g and K/g multiples of 4 or not), wgrad in one chunk or many."""
    n, h, w, c, k, r, s, groups, stride, pads = shape
    x, wt, b, dy = case(np.random.default_rng(seed), n, h, w, c, k, r, s, groups, stride, pads)
    check_all(kernel_device, precision, x, wt, b, dy, chunk_rows=chunk_rows, what=str(shape), stride=stride,
              padding=pads, groups=groups)


@pytest.mark.parametrize("precision", TC)
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1, 1, 1, 1, 1, 1, 1, 0),           # one output, one product
        (2, 9, 11, 8, 68, 3, 3, 1, 1, (1, 1, 1, 1)),  # 16-byte copies, 2 filter tiles, a K tail
        (2, 16, 16, 4, 130, 1, 1, 1, 1, 0),        # 1x1 filters: 512 rows = 4 whole M tiles
        (1, 13, 10, 3, 7, 5, 3, 1, 2, (2, 0, 1, 3)),  # C = 3: 4-byte copies, asymmetric padding
        (2, 7, 8, 16, 24, 3, 3, 2, 2, (1, 2, 0, 1)),  # grouped, stride 2
        (1, 12, 12, 6, 9, 5, 5, 3, 4, (2, 1, 2, 1)),  # stride 4 > R - 1: dgrad rows with no tap
    ],
)
def test_conv_tc_tile_edges(kernel_device, precision, shape):
    n, h, w, c, k, r, s, groups, stride, pads = shape
    x, wt, b, dy = case(np.random.default_rng(h * w + k), n, h, w, c, k, r, s, groups, stride, pads)
    check_all(kernel_device, precision, x, wt, b, dy, chunk_rows=16, what=str(shape), stride=stride, padding=pads,
              groups=groups)


# The paper's five conv layers (§3.5), on 227 x 227 crops (cuda_convnet/alexnet_shapes.py).
ALEXNET = {L.name: (L.hw, L.c, L.k, L.r, L.stride, L.pad, L.groups) for L in conv_layers()}


@pytest.mark.alexnet_shapes
@pytest.mark.slow
@pytest.mark.parametrize("precision", TC)
@pytest.mark.parametrize("layer", list(ALEXNET))
def test_conv_tc_alexnet_layer_shapes(kernel_device, precision, layer, capsys):
    """Every AlexNet conv layer's real shape at batch 2, nothing cut: forward with bias and
    ReLU, dgrad, wgrad and db. conv1's dgrad is left out: its input is the data, so
    training never computes it (ConvOps need_dx=False), and the zero-filled stride-4 gather
    makes it 16x the work of the others (tested at stride 4 on the smaller shapes above)."""
    hw, c, k, r, stride, pad, groups = ALEXNET[layer]
    x, wt, b, dy = case(np.random.default_rng(sum(map(ord, layer))), 2, hw, hw, c, k, r, r, groups, stride, pad)
    t = time.perf_counter()
    directions = ("fwd", "wgrad") if layer == "conv1" else ("fwd", "dgrad", "wgrad")
    check_all(kernel_device, precision, x, wt, b, dy, what=layer, directions=directions, stride=stride, padding=pad,
              groups=groups)
    with capsys.disabled():
        print(f"\n[{kernel_device.name}] {layer} {precision} batch 2 {'+'.join(directions)} (with the reference): "
              f"{time.perf_counter() - t:.2f} s", end="")


def test_the_precisions_really_differ(kernel_device):
    """The comparisons above are not vacuous: tf32 and bf16 outputs are off the unrounded
    float64 result by more than the float32 tolerance in every direction, 3xtf32 is within it."""
    rng = np.random.default_rng(12)
    kw = dict(stride=1, padding=1, groups=1)
    x, w, b, dy = case(rng, 2, 8, 8, 16, 32, 3, 3, 1, 1, 1)
    exact = {"fwd": ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw),
             "dgrad": ref.conv2d_dgrad(dy.astype(np.float64), w.astype(np.float64), x.shape, **kw),
             "wgrad": ref.conv2d_wgrad(x.astype(np.float64), dy.astype(np.float64), w.shape, **kw)[0]}
    for precision in TC:
        got = {"fwd": tc_forward(kernel_device, x, w, b, precision, **kw),
               "dgrad": tc_dgrad(kernel_device, dy, w, x.shape, precision, **kw),
               "wgrad": tc_wgrad(kernel_device, x, dy, w.shape, precision, **kw)[0]}
        for d in got:
            t = tol("conv2d" if d == "fwd" else "conv2d_backward", "kernel_vs_reference")
            off = np.abs(got[d] - exact[d]) > t["atol"] + t["rtol"] * np.abs(exact[d])
            if precision == "3xtf32":
                assert not off.any(), (precision, d)
            else:
                assert off.mean() > 0.05, (precision, d, off.mean())


@pytest.mark.emu
@pytest.mark.parametrize("precision", TC)
def test_conv_tc_identical_across_runs_and_thread_orders(monkeypatch, precision):
    """Every output is one fixed sequence of float32 operations (the split-K wgrad's chunks
    are added in chunk order, no atomics): bit-identical in every thread order and on a
    second run, for a one-chunk and a many-chunk wgrad."""
    dev = BackendDevice("emu")
    kw = dict(stride=2, padding=(1, 0, 2, 1), groups=2)
    x, w, b, dy = case(np.random.default_rng(3), 2, 11, 9, 8, 12, 3, 3, 2, 2, (1, 0, 2, 1))

    def run():
        return [tc_forward(dev, x, w, b, precision, relu=True, **kw), tc_dgrad(dev, dy, w, x.shape, precision, **kw),
                *tc_wgrad(dev, x, dy, w.shape, precision, **kw),
                *tc_wgrad(dev, x, dy, w.shape, precision, chunk_rows=16, **kw)]

    results = {}
    for order in ORDERS:
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        results[order] = run()
    results["again"] = run()
    for order, outs in results.items():
        for a, want in zip(outs, results["forward"]):
            np.testing.assert_array_equal(a, want, err_msg=order)


@pytest.mark.emu
def test_conv_tc_plan_splits_by_shape_only():
    ext = ccn.backend("emu").ext
    shape = dict(n=2, h=12, w=12, c=6, k=10, r=3, s=3, stride=1, pad_top=1, pad_bottom=1, pad_left=1, pad_right=1,
                 groups=2)
    # 288 rows, at least 256 per chunk when split: 2 chunks of (|dw| = 10*3*3*3) + K floats.
    assert ext.conv2d_wgrad_tc_plan(**shape, chunk_rows=0) == {"chunk_rows": 144, "chunks": 2,
                                                                "workspace_floats": 2 * (270 + 10)}
    # chunks of 20 rows -> 32 (a multiple of the K step): 9 chunks.
    assert ext.conv2d_wgrad_tc_plan(**shape, chunk_rows=20) == {"chunk_rows": 32, "chunks": 9,
                                                                 "workspace_floats": 9 * (270 + 10)}


@pytest.mark.emu
@pytest.mark.parametrize("binding", ["conv2d_tc", "conv2d_dgrad_tc", "conv2d_wgrad_tc"])
@pytest.mark.parametrize("bad", ["fp32", "TF32", ""])
def test_conv_tc_bindings_refuse_other_precisions(binding, bad):
    """The tensor-core launchers have no "fp32" (that is the SIMT kernels of conv.h)."""
    ext = ccn.backend("emu").ext
    shape = dict(n=1, h=3, w=3, c=1, k=1, r=1, s=1, stride=1, pad_top=0, pad_bottom=0, pad_left=0, pad_right=0,
                 groups=1)
    ptrs = {"conv2d_tc": (0, 0, 0, 0), "conv2d_dgrad_tc": (0, 0, 0), "conv2d_wgrad_tc": (0, 0, 0, 0, 0, 0)}[binding]
    with pytest.raises(ValueError, match=rf"^{binding}: precision must be 'tf32', '3xtf32' or 'bf16', got '{bad}'"):
        getattr(ext, binding)(*ptrs, **shape, precision=bad)


@pytest.mark.emu
def test_conv_tc_wgrad_refuses_a_small_workspace():
    ext = ccn.backend("emu").ext
    shape = dict(n=2, h=12, w=12, c=6, k=10, r=3, s=3, stride=1, pad_top=1, pad_bottom=1, pad_left=1, pad_right=1,
                 groups=2)
    a = np.ones(4096, np.float32)
    with pytest.raises(ValueError, match=r"workspace too small: 100 floats given, 2520 needed"):
        ext.conv2d_wgrad_tc(a.ctypes.data, a.ctypes.data, a.ctypes.data, 0, a.ctypes.data, 100, **shape,
                            chunk_rows=20, precision="tf32")


# ---------------------------------------------------------------- the pipeline's hazards
@pytest.mark.emu
def test_conv_tc_driver_matches_in_every_order(tmp_path):
    """Every direction, precision and copy width on ragged, strided, grouped shapes
    (tests/simt/conv_tc_driver.cpp)."""
    exe = sb.build([DRIVER], tmp_path)
    for order in ORDERS:
        r = sb.run(exe, order)
        assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{order}:\n{r.stdout}{r.stderr[-2000:]}"
        assert r.stdout.count("match") == 36


@pytest.mark.emu
@pytest.mark.parametrize("pattern", [r"\b__syncthreads\(\)\s*;", r"\bcp_async_wait_group<[^>]*>\(\)\s*;"],
                         ids=["barrier", "wait_group"])
def test_dropped_barrier_or_wait_is_caught(tmp_path, pattern):
    """Delete each __syncthreads / cp_async_wait_group of the shared pipeline in turn: the
    convolution driver must fail in every thread order (a stage read before its copy
    landed reads NaN)."""
    n = 0
    for line, mutant_dir in sb.text_mutants(MAINLOOP, pattern, ";", tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if sb.run(exe, o).returncode == 0]
        assert not passed, f"tc_mainloop.cuh:{line} with {pattern!r} deleted passes in {passed}"
        n += 1
    assert n >= 1


@pytest.mark.emu
@pytest.mark.parametrize(
    "header,pattern,replacement",
    [
        # the tf32 fragment of A with the row and k halves swapped (the [m][k] layout of
        # forward and dgrad, and the [k][m] layout of wgrad)
        ("tc_mainloop.cuh", r"g \+ \(r & 1\) \* 8, kk \+ t \+ \(r >> 1\) \* 4",
         "g + (r >> 1) * 8, kk + t + (r & 1) * 4"),
        # the bf16 pair of the B fragment in the wrong order (dgrad's and wgrad's [k][n] B)
        ("tc_mainloop.cuh", r"cvt_rn_bf16x2\(b_at\(k, n\), b_at\(k \+ 1, n\)\)",
         "cvt_rn_bf16x2(b_at(k + 1, n), b_at(k, n))"),
        # the 128-bit fragment loads of the forward: a 3xtf32 sub-step swapped
        ("tc_mainloop.cuh", r"\(hi \? v\.z : v\.x\)", "(hi ? v.x : v.z)"),
        # the tap walker (forward and dgrad gathers) carries a column too late: into the
        # next filter column, into the next filter row, or without the offset's carry
        ("conv_tc_tap.cuh", r"while \(c >= cg\)", "while (c > cg)"),
        ("conv_tc_tap.cuh", r"if \(\+\+s == sdim\)", "if (++s == sdim + 1)"),
        ("conv_tc_tap.cuh", r"off \+= carry_c;", ";"),
        # a gather's tap not advanced (each site in turn: forward A 16- and 4-byte; dgrad A
        # and B, 16- and 4-byte)
        ("conv_tc_fwd.cuh", r"^\s*advance\(\);", ";"),
        ("conv_tc_dgrad.cuh", r"^\s*advance_(a\(\)|b\(b_tap\[\w\]\));", ";"),
        # dgrad taps between output positions not skipped (stride > 1)
        ("conv_tc_dgrad.cuh", r"if \(ph % g\.stride \|\| pw % g\.stride\) return -1;", ";"),
        # dgrad's 4-byte B rows walked one row apart instead of two
        ("conv_tc_dgrad.cuh", r"DB = VEC \? BK : 2;", "DB = VEC ? BK : 1;"),
        # dgrad's 16-byte B rows start one row off
        ("conv_tc_dgrad.cuh", r"VEC \? tid / 16 \+ 8 \* i :", "VEC ? tid / 16 + 8 * i + 1 :"),
        # a wgrad chunk runs one K tile into the next chunk
        ("conv_tc_wgrad.cuh", r"kt_begin \+ chunk_rows / BK\)", "kt_begin + chunk_rows / BK + 1)"),
        # the wgrad partials summed without the last chunk (the chunk sum both wgrads share)
        ("conv_wgrad_reduce.cuh", r"ch < chunks; \+\+ch", "ch < chunks - 1; ++ch"),
    ],
    ids=["tf32_fragment", "bf16_b_pair", "3xtf32_substep_128bit", "tap_carry_column", "tap_carry_row",
         "tap_carry_offset", "fwd_tap_advance", "dgrad_tap_advance", "dgrad_stride_phase", "dgrad_filter_walk",
         "dgrad_filter_rows", "wgrad_chunk_bound", "wgrad_chunk_sum"],
)
def test_planted_kernel_bugs_are_caught(tmp_path, header, pattern, replacement):
    for line, mutant_dir in sb.text_mutants(sb.CSRC / header, pattern, replacement, tmp_path):
        r = sb.run(sb.build([DRIVER], mutant_dir, include_first=mutant_dir))
        # Caught: a wrong result, or a gather walked off the array: a fault in the plain build
        # (where it lands depends on the heap's layout), AddressSanitizer's report in the
        # sanitizer build.
        caught = ("MISMATCH" in r.stdout or r.returncode in (-signal.SIGSEGV, -signal.SIGBUS)
                  or "ERROR: AddressSanitizer" in r.stderr)
        assert r.returncode != 0 and caught, f"{header}:{line} mutated passes ({r.returncode}):\n{r.stdout}"


@pytest.mark.emu
@pytest.mark.slow
def test_conv_tc_driver_under_sanitizers(tmp_path):
    """AddressSanitizer and UBSan over every case of the driver: no copy or fragment read
    outside its shared-memory stage or its tensor (the zero-fill path reads nothing)."""
    r = sb.run(sb.build([DRIVER], tmp_path, sanitize=True), "shuffle:2", env={"ASAN_OPTIONS": "detect_leaks=0"},
               timeout=600)
    assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{r.stdout}{r.stderr[-3000:]}"
    assert "runtime error" not in r.stderr, r.stderr[-3000:]


# ---------------------------------------------------------------- the kernel backend's precision
@pytest.mark.parametrize("precision", TC)
def test_conv_ops_precision_runs_the_tensor_core_kernels(kernel_device, precision):
    """ConvOps.conv2d / conv2d_backward / conv2d_dgrad / conv2d_wgrad at a tensor-core
    precision are the tc bindings' results, bit for bit (dw split into many chunks by
    wgrad_chunk_rows as well), and match the rounded reference."""
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    kw = dict(stride=2, padding=(1, 0, 2, 1), groups=2)
    x, w, b, dy = case(np.random.default_rng(8), 2, 11, 9, 8, 12, 3, 3, 2, 2, (1, 0, 2, 1))
    y = get(ops.conv2d(put(x), put(w), put(b), relu=True, precision=precision, **kw))
    np.testing.assert_array_equal(y, tc_forward(kernel_device, x, w, b, precision, relu=True, **kw))
    dx, dw, db = (get(a) for a in ops.conv2d_backward(put(x), put(w), put(dy), precision=precision, **kw))
    np.testing.assert_array_equal(dx, tc_dgrad(kernel_device, dy, w, x.shape, precision, **kw))
    want_dw, want_db = tc_wgrad(kernel_device, x, dy, w.shape, precision, **kw)
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)
    np.testing.assert_array_equal(get(ops.conv2d_dgrad(put(dy), put(w), x.shape, precision=precision, **kw)), dx)
    old = ops.wgrad_chunk_rows
    try:
        ops.wgrad_chunk_rows = 16
        split = [get(a) for a in ops.conv2d_wgrad(put(x), put(dy), w.shape, precision=precision, **kw)]
    finally:
        ops.wgrad_chunk_rows = old
    for got, want in zip(split, tc_wgrad(kernel_device, x, dy, w.shape, precision, chunk_rows=16, **kw)):
        np.testing.assert_array_equal(got, want)
    check_all(kernel_device, precision, x, w, b, dy, what="ops", **kw)


@pytest.mark.parametrize("chunk_rows", [16, 48])
def test_conv_tc_db_is_the_float32_db_bit_for_bit(kernel_device, chunk_rows):
    """Both wgrads reduce db (and add their chunk partials) with the same two kernels
    (conv_wgrad_reduce.cuh): under the same chunk length the tensor-core wgrad's db is the
    float32 wgrad's, bit for bit, at every precision (db is a float32 sum of dy whatever
    the GEMM's operand rounding), and dy's column sums within float32 rounding."""
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    kw = dict(stride=2, padding=(1, 0, 2, 1), groups=2)
    x, w, b, dy = case(np.random.default_rng(11), 3, 13, 11, 8, 12, 3, 3, 2, 2, (1, 0, 2, 1))
    old = ops.wgrad_chunk_rows
    try:
        ops.wgrad_chunk_rows = chunk_rows
        _, want_db = (get(a) for a in ops.conv2d_wgrad(put(x), put(dy), w.shape, **kw))
    finally:
        ops.wgrad_chunk_rows = old
    assert not np.isnan(want_db).any()
    np.testing.assert_allclose(want_db, dy.astype(np.float64).sum(axis=(0, 1, 2)),
                               **tol("conv2d_backward", "kernel_vs_reference"))
    for precision in TC:
        plan = ops.ext.conv2d_wgrad_tc_plan(**shape_args(checks.check_conv_backward_args(
            x, w, dy, kw["stride"], kw["padding"], kw["groups"])), chunk_rows=chunk_rows)
        assert plan["chunks"] > 1, plan  # the split path: partials, then the chunk sum
        _, db = tc_wgrad(kernel_device, x, dy, w.shape, precision, chunk_rows=chunk_rows, **kw)
        np.testing.assert_array_equal(db, want_db, err_msg=precision)


def test_conv_ops_fp32_is_the_default_and_the_simt_kernels(kernel_device):
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    kw = dict(stride=1, padding=1, groups=1)
    x, w, b, dy = case(np.random.default_rng(9), 2, 7, 6, 4, 8, 3, 3, 1, 1, 1)
    np.testing.assert_array_equal(get(ops.conv2d(put(x), put(w), put(b), **kw)),
                                  get(ops.conv2d(put(x), put(w), put(b), precision="fp32", **kw)))
    for a, c in zip(ops.conv2d_backward(put(x), put(w), put(dy), **kw),
                    ops.conv2d_backward(put(x), put(w), put(dy), precision="fp32", **kw)):
        np.testing.assert_array_equal(get(a), get(c))


@pytest.mark.parametrize("bad", ["TF32", "fp16", "", None, 32])
def test_conv_ops_refuse_a_bad_precision(kernel_device, bad):
    ops, put = kernel_device.ops, kernel_device.put
    kw = dict(stride=1, padding=0, groups=1)
    x, w, b, dy = case(np.random.default_rng(0), 1, 4, 4, 2, 3, 3, 3, 1, 1, 0)
    msg = r"precision must be one of 'fp32', '3xtf32', 'tf32', 'bf16'"
    with pytest.raises(ValueError, match=r"^conv2d: " + msg):
        ops.conv2d(put(x), put(w), put(b), precision=bad, **kw)
    with pytest.raises(ValueError, match=r"^conv2d_backward: " + msg):
        ops.conv2d_backward(put(x), put(w), put(dy), precision=bad, **kw)
    with pytest.raises(ValueError, match=r"^conv2d_dgrad: " + msg):
        ops.conv2d_dgrad(put(dy), put(w), x.shape, precision=bad, **kw)
    with pytest.raises(ValueError, match=r"^conv2d_wgrad: " + msg):
        ops.conv2d_wgrad(put(x), put(dy), w.shape, precision=bad, **kw)


def test_conv_ops_tensor_core_forward_has_one_kernel_version(kernel_device):
    """kernel_version reports conv_tc_fwd_kernel1 for a tensor-core precision; a forced
    fp32 kernel version (kernel_versions["conv2d"]) cannot apply to it: ValueError."""
    ops, put = kernel_device.ops, kernel_device.put
    kw = dict(stride=1, padding=1, groups=1)
    x, w, b, _ = case(np.random.default_rng(4), 1, 5, 5, 4, 4, 3, 3, 1, 1, 1)
    assert ops.kernel_version("conv2d", put(x), put(w), precision="tf32", **kw) == 1
    old = dict(ops.kernel_versions)
    ops.kernel_versions["conv2d"] = 2
    try:
        msg = r"^conv2d: kernel_versions\['conv2d'\] picks a conv_fwd_kernel<n> \(precision 'fp32'\); precision " \
              r"'bf16' runs conv_tc_fwd_kernel1, which has one version"
        with pytest.raises(ValueError, match=msg):
            ops.conv2d(put(x), put(w), put(b), precision="bf16", **kw)
        with pytest.raises(ValueError, match=msg):
            ops.kernel_version("conv2d", put(x), put(w), precision="bf16", **kw)
    finally:
        ops.kernel_versions.clear()
        ops.kernel_versions.update(old)


@pytest.mark.emu
@pytest.mark.parametrize("pattern,replacement", [(r"PAD_K = PREC == kGemmTcBF16 \? 4 : 8", "PAD_K = 8"),
                                                 (r"PAD_K = PREC == kGemmTcBF16 \? 4 : 8", "PAD_K = 4")],
                         ids=["bf16_padded_as_tf32", "tf32_padded_as_bf16"])
def test_bank_conflicting_padding_does_not_compile(tmp_path, pattern, replacement):
    """The k-major shared tiles' padding is checked at compile time (tc_kmajor_conflict_free):
    bf16 with tf32's + 8 (rows 2t and 2t + 4 share banks) or tf32 with bf16's + 4 is refused."""
    for _line, mutant_dir in sb.text_mutants(MAINLOOP, pattern, replacement, tmp_path):
        with pytest.raises(RuntimeError, match="fragment reads would conflict"):
            sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
