"""Preconditions of the tensor-core, split-K and pipelined paths, at the op and at the launcher:

* alignment: arrays 4- but not 16-byte aligned reach every kernel version the `version`
  switch can force (and every precision); each either takes its scalar copies, with the
  aligned run's bits, or is refused by name (never a misaligned 16-byte cp.async or
  float4, which the emulator and the GPU fault on);
* aliasing: an output that shares any byte with an input (accumulate buffers, split-K and
  wgrad workspaces, outputs of every launcher) is refused before a pointer is touched;
* 64-bit sizes: split-K and wgrad workspaces of extreme legal extents are refused, not
  wrapped into a small size that a workspace check would accept;
* options: kernel versions, split counts and chunk sizes out of range are refused naming
  the op and the argument;
* degenerate shapes (N = 0, N = 1, K not a multiple of a tile) give the cpu reference's
  result on the tensor-core paths.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from kernel_inputs import emu_ext, host_ptr, randn, unaligned
from tolerances import tol

import cuda_convnet as ccn

TC = ("tf32", "3xtf32", "bf16")
pytestmark = pytest.mark.emu


@pytest.fixture
def emu(monkeypatch):
    """The emulator backend with its tuning knobs restored after the test."""
    ops = ccn.backend("emu")
    monkeypatch.setattr(ops, "kernel_versions", {})
    monkeypatch.setattr(ops, "gemm_splits", ops.gemm_splits)
    monkeypatch.setattr(ops, "wgrad_chunk_rows", ops.wgrad_chunk_rows)
    return ops


def _conv_inputs(seed=0):
    """NHWC x, KRSC w and dy for a 3x3 stride-1 convolution with C/g = K/g = 8 (every
    vector path applies when aligned)."""
    rng = np.random.default_rng(seed)
    x, w = randn(rng, 2, 7, 7, 8), randn(rng, 8, 3, 3, 8, scale=0.3)
    dy = randn(rng, 2, 5, 5, 8)
    return x, w, dy


# ---------------------------------------------------------------- alignment

# (op, precision, forced version, refusal or None): with x, w, dy 4 bytes past a 16-byte
# boundary. The 128-tile kernels with 16-byte copies refuse; every other version runs.
MISALIGNED = [
    ("conv2d", "fp32", 0, None), ("conv2d", "fp32", 1, None), ("conv2d", "fp32", 3, None),
    ("conv2d", "fp32", 2, "conv_fwd_kernel2 needs C/groups % 4 == 0 and 16-byte aligned x and w"),
    ("conv2d_dgrad", "fp32", 0, None), ("conv2d_dgrad", "fp32", 1, None),
    ("conv2d_dgrad", "fp32", 2, "conv_dgrad_kernel2 needs K/groups % 4 == 0, C/groups % 4 == 0, 16-byte aligned"),
    ("conv2d_wgrad", "fp32", 0, None), ("conv2d_wgrad", "fp32", 1, None),
    ("conv2d_wgrad", "fp32", 2, "conv_wgrad_kernel2 needs C/groups % 4 == 0, K/groups % 4 == 0 and 16-byte"),
    ("conv2d_wgrad", "fp32", 3, "conv_wgrad_kernel3 needs K/groups % 4 == 0 and a 16-byte aligned dy"),
] + [(op, p, 0, None) for op in ("conv2d", "conv2d_dgrad", "conv2d_wgrad") for p in TC]


def _run_conv(ops, op, x, w, dy, precision):
    if op == "conv2d":
        return ops.conv2d(x, w, precision=precision)
    if op == "conv2d_dgrad":
        return ops.conv2d_dgrad(dy, w, x.shape, precision=precision)
    dw, db = ops.conv2d_wgrad(x, dy, w.shape, precision=precision)
    return np.concatenate([dw.ravel(), db])


@pytest.mark.parametrize("op,precision,version,refusal", MISALIGNED,
                         ids=[f"{o}-{p}-v{v}" for o, p, v, _ in MISALIGNED])
def test_conv_versions_on_arrays_4_but_not_16_byte_aligned(emu, cpu, op, precision, version, refusal):
    x, w, dy = _conv_inputs()
    xm, wm, dym = unaligned(x), unaligned(w), unaligned(dy)
    emu.kernel_versions = {op: version}
    if refusal is not None:
        with pytest.raises(ValueError, match=re.escape(refusal)):
            _run_conv(emu, op, xm, wm, dym, precision)
        return
    got = _run_conv(emu, op, xm, wm, dym, precision)
    emu.kernel_versions = {}
    aligned = _run_conv(emu, op, x, w, dy, precision)  # the vector path, where it applies
    assert not np.isnan(got).any()
    # Copy width changes no arithmetic: the scalar path gives the vector path's bits.
    np.testing.assert_array_equal(got, aligned)
    if precision == "fp32":
        want = _run_conv(cpu, op, x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), "fp32")
        np.testing.assert_allclose(got, want, **tol("conv2d", "kernel_vs_reference"))


def test_wgrad_kernel3_runs_with_only_x_misaligned(emu, cpu):
    """kernel3 copies x element by element: a misaligned x alone keeps it runnable (forced),
    with the aligned kernel2's bits."""
    x, w, dy = _conv_inputs(1)
    emu.kernel_versions = {"conv2d_wgrad": 3}
    got = emu.conv2d_wgrad(unaligned(x), dy, w.shape)
    emu.kernel_versions = {"conv2d_wgrad": 2}
    want = emu.conv2d_wgrad(x, dy, w.shape)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def _gemm_reference(a, b, c0, bias, trans_a, trans_b, alpha, beta):
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    return alpha * (opa.astype(np.float64) @ opb.astype(np.float64)) + beta * c0 + bias


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False)])
def test_gemm_versions_and_split_k_on_misaligned_operands(version, splits, trans_a, trans_b):
    """gemm_kernel1/2, split or not, with A, B, C and the workspace each 4 bytes past a
    16-byte boundary (kernel2's float4 loads and stores and its 16-byte cp.async must
    fall back): the float64 product within the kernel tolerance. M, N, K are multiples of
    4, so only the pointers keep the vector paths off."""
    ext = emu_ext()
    rng = np.random.default_rng(version * 10 + splits)
    M, N, K = 132, 136, 72
    opa, opb = randn(rng, M, K), randn(rng, K, N, scale=0.2)
    a = unaligned(opa.T.copy() if trans_a else opa)
    b = unaligned(opb.T.copy() if trans_b else opb)
    c0, bias = randn(rng, M, N), randn(rng, N)
    c = unaligned(c0)
    plan = ext.gemm_plan(M=M, N=N, K=K, version=version, splits=splits)
    assert plan["splits"] == splits and plan["version"] == version
    ws = unaligned(np.full(max(plan["workspace_floats"], 1), np.nan, np.float32))
    ext.gemm(a=host_ptr(a), b=host_ptr(b), c=host_ptr(c), bias=host_ptr(bias), M=M, N=N, K=K, trans_a=trans_a,
             trans_b=trans_b, alpha=0.5, beta=0.75, relu=False, version=version, workspace=host_ptr(ws),
             workspace_floats=plan["workspace_floats"], splits=splits)
    want = _gemm_reference(a, b, c0, bias, trans_a, trans_b, 0.5, 0.75)
    np.testing.assert_allclose(c, want, **tol("linear", "kernel_vs_reference"))


def test_split_channels_accumulates_into_misaligned_parts(emu, cpu):
    """accumulate= buffers 4 bytes off a 16-byte boundary: the scalar copy, the cpu result."""
    rng = np.random.default_rng(3)
    y = randn(rng, 3, 4, 4, 12)
    a0, a1 = randn(rng, 3, 4, 4, 8), randn(rng, 3, 4, 4, 4)
    want = cpu.split_channels(y, [8, 4], accumulate=[a0.copy(), a1.copy()])
    got = emu.split_channels(unaligned(y), [8, 4], accumulate=[unaligned(a0), unaligned(a1)])
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(g, w_)


# ---------------------------------------------------------------- aliasing at the ops

@pytest.mark.parametrize("backend", ["cpu", "emu"])
@pytest.mark.parametrize("victim", ["x", "w", "dy"])
def test_dx_accumulate_sharing_bytes_with_an_input_is_refused(backend, victim):
    """A view over the same buffer as x, w or dy (not the same object) is refused on every
    backend: the dx GEMM would read what its own tiles overwrite."""
    ops = ccn.backend(backend)
    rng = np.random.default_rng(4)
    n, fan_in, fan_out = 4, 6, 6
    buf = randn(rng, 2 * n * fan_in)
    arrays = {"x": randn(rng, n, fan_in), "w": randn(rng, fan_out, fan_in), "dy": randn(rng, n, fan_out)}
    arrays[victim] = buf[:arrays[victim].size].reshape(arrays[victim].shape)
    acc = buf[3:3 + n * fan_in].reshape(n, fan_in)  # shares bytes with the victim, starts elsewhere
    before = buf.copy()
    with pytest.raises(ValueError, match=f"linear_backward: dx_accumulate and {victim} overlap in memory"):
        ops.linear_backward(arrays["x"], arrays["w"], arrays["dy"], dx_accumulate=acc)
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("backend", ["cpu", "emu"])
def test_read_only_accumulate_buffers_are_refused(backend):
    ops = ccn.backend(backend)
    rng = np.random.default_rng(5)
    x, w, dy = randn(rng, 3, 5), randn(rng, 4, 5), randn(rng, 3, 4)
    acc = randn(rng, 3, 5)
    acc.flags.writeable = False
    with pytest.raises(ValueError, match="linear_backward: dx_accumulate is read-only"):
        ops.linear_backward(x, w, dy, dx_accumulate=acc)
    y = randn(rng, 2, 3, 6)
    part = randn(rng, 2, 3, 2)
    part.flags.writeable = False
    with pytest.raises(ValueError, match=r"split_channels: accumulate\[1\] is read-only"):
        ops.split_channels(y, [4, 2], accumulate=[None, part])


@pytest.mark.parametrize("backend", ["cpu", "emu"])
def test_split_accumulate_sharing_bytes_is_refused(backend):
    """accumulate entries that are views of y, or of one another, are refused by byte range."""
    ops = ccn.backend(backend)
    rng = np.random.default_rng(6)
    buf = randn(rng, 2 * 3 * 8 + 2 * 3 * 4)
    y = buf[:48].reshape(2, 3, 8)
    view_of_y = buf[40:40 + 24].reshape(2, 3, 4)  # overlaps y's last 8 floats
    with pytest.raises(ValueError, match=r"split_channels: accumulate\[1\] and y overlap in memory"):
        ops.split_channels(y, [4, 4], accumulate=[None, view_of_y])
    y2 = randn(rng, 2, 3, 8)
    shared = randn(rng, 2 * 3 * 4 + 4)
    a0, a1 = shared[:24].reshape(2, 3, 4), shared[4:28].reshape(2, 3, 4)
    before = shared.copy()
    with pytest.raises(ValueError, match=r"split_channels: accumulate\[0\] and accumulate\[1\] overlap"):
        ops.split_channels(y2, [4, 4], accumulate=[a0, a1])
    np.testing.assert_array_equal(shared, before)


def test_disjoint_views_of_one_buffer_are_accepted(emu, cpu):
    """Overlap means a shared byte: views of one buffer that share none run, with cpu's result."""
    rng = np.random.default_rng(7)
    n, fan_in, fan_out = 5, 8, 4
    buf = randn(rng, n * fan_out + n * fan_in)
    dy, acc = buf[:n * fan_out].reshape(n, fan_out), buf[n * fan_out:].reshape(n, fan_in)
    x, w = randn(rng, n, fan_in), randn(rng, fan_out, fan_in)
    want = cpu.linear_backward(x, w, dy.copy(), dx_accumulate=acc.copy())[0]
    got = emu.linear_backward(x, w, dy, dx_accumulate=acc)[0]
    assert got is acc
    np.testing.assert_allclose(got, want, **tol("linear", "kernel_vs_reference"))


# ---------------------------------------------------------------- aliasing at the launchers

def _conv_shape(n=2, h=7, w=7, c=8, k=8, r=3, s=3, stride=1, groups=1):
    return dict(n=n, h=h, w=w, c=c, k=k, r=r, s=s, stride=stride, pad_top=0, pad_bottom=0, pad_left=0, pad_right=0,
                groups=groups)


def test_launchers_refuse_outputs_that_overlap_inputs():
    """Every launcher of the new paths, called with an output that starts inside an input
    (the same buffer, a few floats in): std::invalid_argument -> ValueError naming both
    arrays, and nothing is written."""
    ext = emu_ext()
    rng = np.random.default_rng(8)
    buf = randn(rng, 4096)
    p = host_ptr(buf)
    shape = _conv_shape()  # x 784, w 576, y/dy 400 floats
    other = randn(rng, 4096)
    q = host_ptr(other)
    before = buf.copy()
    cases = {
        "gemm C/A": (lambda: ext.gemm(a=p, b=q, c=p + 64, bias=0, M=16, N=16, K=16, trans_a=False, trans_b=False),
                     "C and A overlap"),
        "gemm workspace/B": (lambda: ext.gemm(a=q, b=p, c=q + 4 * 2048, bias=0, M=16, N=16, K=64, trans_a=False,
                                              trans_b=False, version=1, workspace=p + 4 * 100,
                                              workspace_floats=2048, splits=4), "workspace and B overlap"),
        "gemm workspace/C": (lambda: ext.gemm(a=q, b=q + 4 * 1024, c=p, bias=0, M=16, N=16, K=64, trans_a=False,
                                              trans_b=False, version=1, workspace=p + 4 * 8,
                                              workspace_floats=2048, splits=4), "workspace and C overlap"),
        "gemm_tc C/B": (lambda: ext.gemm_tc(a=q, b=p, c=p + 4 * 10, bias=0, M=16, N=16, K=16, trans_a=False,
                                            trans_b=False, precision="tf32"), "C and B overlap"),
        "bias_grad": (lambda: ext.bias_grad(dy=p, db=p + 4 * 5, rows=4, cols=8), "db and dy overlap"),
        "conv2d y/x": (lambda: ext.conv2d(x=p, wt=q, b=0, y=p + 4 * 100, **shape), "y and x overlap"),
        "conv2d y/b": (lambda: ext.conv2d(x=q, wt=q + 4 * 1024, b=p + 4 * 396, y=p, **shape), "y and b overlap"),
        "conv2d_tc y/w": (lambda: ext.conv2d_tc(x=q, wt=p, b=0, y=p + 4 * 500, **shape, precision="bf16"),
                          "y and w overlap"),
        "conv2d_dgrad dx/dy": (lambda: ext.conv2d_dgrad(dy=p, wt=q, dx=p + 4 * 399, **shape), "dx and dy overlap"),
        "conv2d_dgrad_tc dx/w": (lambda: ext.conv2d_dgrad_tc(dy=q, wt=p + 4 * 700, dx=p, **shape),
                                 "dx and w overlap"),
        "conv2d_wgrad dw/x": (lambda: ext.conv2d_wgrad(x=p, dy=q, dw=p + 4 * 700, db=0, workspace=0,
                                                       workspace_floats=0, **shape), "dw and x overlap"),
        "conv2d_wgrad db/dy": (lambda: ext.conv2d_wgrad(x=q, dy=p, dw=q + 4 * 1024, db=p + 4 * 396, workspace=0,
                                                        workspace_floats=0, **shape), "db and dy overlap"),
        "conv2d_wgrad workspace/dw": (lambda: ext.conv2d_wgrad(x=q, dy=q + 4 * 1024, dw=p, db=0, workspace=p + 4,
                                                               workspace_floats=4096, **shape, chunk_rows=16),
                                      "workspace and dw overlap"),
        "conv2d_wgrad_tc workspace/x": (lambda: ext.conv2d_wgrad_tc(x=p, dy=q, dw=q + 4 * 1024, db=0,
                                                                    workspace=p + 4 * 700, workspace_floats=4096,
                                                                    **shape, chunk_rows=16),
                                        "workspace and x overlap"),
        "lrn y/x": (lambda: ext.lrn(x=p, y=p + 4 * 3, rows=4, channels=8, groups=1, before=2, after=2, alpha=1e-4,
                                    neg_beta=-0.75, k=2.0), "y and x overlap"),
        "split part/part": (lambda: ext.split_channels(whole=q, parts=[p, p + 4 * 4], channels=[8, 8], rows=4),
                            "parts 0 and 1 overlap"),
        "concat part/whole": (lambda: ext.concat_channels(whole=p, parts=[p + 4 * 8, q], channels=[4, 4], rows=4),
                              "part 0 and the whole array overlap"),
    }
    for name, (call, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            call()
            pytest.fail(f"{name}: ran")
        np.testing.assert_array_equal(buf, before, err_msg=name)


# ---------------------------------------------------------------- 64-bit sizes

def test_gemm_plan_refuses_a_split_k_workspace_beyond_64_bits():
    """A forced split of extents within every per-dimension limit: splits x M x N passed
    2^63 and wrapped (undefined behaviour; the wrapped size could pass the launcher's
    workspace check). Now refused by name; a large one that fits is exact."""
    ext = emu_ext()
    big = 2**31 - 1025
    with pytest.raises(ValueError, match=r"gemm_plan: split-K workspace: .* larger than 2\^60"):
        ext.gemm_plan(M=4194240, N=big, K=big, version=1, splits=1 << 20)
    p = ext.gemm_plan(M=1 << 20, N=1 << 20, K=big, version=1, splits=1024)
    assert p["splits"] == 1024
    assert p["workspace_floats"] == 1024 * (1 << 40)
    per_slice = (big + 1023) // 1024
    assert p["k_chunk"] == (per_slice + 15) // 16 * 16


# A legal geometry (every extent and product within cuda_convnet.checks' limits) whose dw
# has K * R*S*C/groups ~ 4.3e18 floats: with 4 chunks its workspace passes 2^63.
HUGE_DW = dict(n=64, h=31, w=31, c=2**31 - 2048, k=2**31 - 2048, r=31, s=31, stride=1, pad_top=0, pad_bottom=0,
               pad_left=0, pad_right=0, groups=1024)


@pytest.mark.parametrize("plan", ["conv2d_wgrad_plan", "conv2d_wgrad_tc_plan"])
def test_wgrad_plans_refuse_a_workspace_beyond_64_bits(plan):
    fn = getattr(emu_ext(), plan)
    with pytest.raises(ValueError, match=r"workspace: .* larger than 2\^60"):
        fn(**HUGE_DW, chunk_rows=16)
    one = fn(**HUGE_DW, chunk_rows=64)  # one chunk: nothing split, no workspace for dw
    assert one["chunks"] == 1


def test_huge_dw_geometry_is_legal_for_the_checks():
    """The geometry above passes every backend's argument checks (it is a launcher-level
    limit that refuses it, not a shape rule)."""
    from cuda_convnet import checks
    from cuda_convnet.reference.conv import ShapeOnly

    g = HUGE_DW
    x = ShapeOnly("conv2d_wgrad", "x", (g["n"], g["h"], g["w"], g["c"]), np.float32)
    w = ShapeOnly("conv2d_wgrad", "w", (g["k"], g["r"], g["s"], g["c"] // g["groups"]), np.float32)
    dy = ShapeOnly("conv2d_wgrad", "dy", (g["n"], 1, 1, g["k"]), np.float32)
    geo = checks.check_conv_backward_args(x, w, dy, 1, 0, g["groups"], op="conv2d_wgrad")
    assert geo.p == geo.q == 1


@pytest.mark.parametrize("which", ["conv2d_tc", "conv2d_dgrad_tc"])
def test_tensor_core_launchers_refuse_grids_past_their_limits(which):
    """K/groups (forward) or C/groups (dgrad) past 65535 tiles of 64: refused before the
    launch, as the float32 launchers do, not launched with a grid the device rejects."""
    ext = emu_ext()
    tiny = np.zeros(16, np.float32)
    p = host_ptr(tiny)
    wide = 65535 * 64 + 64
    if which == "conv2d_tc":
        with pytest.raises(ValueError, match="K/groups too large for the grid's y dimension"):
            ext.conv2d_tc(x=p, wt=p, b=0, y=p, **_conv_shape(n=1, h=1, w=1, c=1, k=wide, r=1, s=1))
    else:
        with pytest.raises(ValueError, match="C/groups too large for the grid's y dimension"):
            ext.conv2d_dgrad_tc(dy=p, wt=p, dx=p, **_conv_shape(n=1, h=1, w=1, c=wide, k=1, r=1, s=1))


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("op,bad", [("conv2d", 4), ("conv2d_dgrad", 3), ("conv2d_wgrad", 6), ("linear", 3),
                                    ("linear_backward", 3), ("lrn", 3), ("conv2d", -1), ("linear", True),
                                    ("conv2d", 1.0), ("linear", "2")])
def test_kernel_versions_out_of_range_name_the_op_and_argument(emu, op, bad):
    rng = np.random.default_rng(9)
    emu.kernel_versions = {op: bad}
    x, w, dy = _conv_inputs()
    top = {"conv2d": 3, "conv2d_wgrad": 5}.get(op, 2)
    said = rf"kernel_versions\['{op}'\] = {re.escape(repr(bad))}: version must be 0 \(the launcher picks\) or an int n "
    said += rf"from 1 to {top}"
    with pytest.raises(ValueError, match="conv2d: " + said):
        emu.conv2d(x, w)
    with pytest.raises(ValueError, match="linear: " + said):
        emu.linear(randn(rng, 2, 3), randn(rng, 4, 3))


def test_numpy_integer_kernel_versions_are_accepted(emu):
    x, w, _ = _conv_inputs()
    emu.kernel_versions = {"conv2d": np.int64(1)}
    got = emu.conv2d(x, w)
    emu.kernel_versions = {"conv2d": 1}
    np.testing.assert_array_equal(got, emu.conv2d(x, w))
    assert emu.kernel_version("conv2d", x, w) == 1


@pytest.mark.parametrize("knob,bad", [("gemm_splits", -1), ("gemm_splits", 2.0), ("gemm_splits", True),
                                      ("gemm_splits", 2**31), ("wgrad_chunk_rows", -16),
                                      ("wgrad_chunk_rows", None)])
def test_tuning_knobs_out_of_range_name_the_knob(emu, knob, bad):
    setattr(emu, knob, bad)
    x, w, dy = _conv_inputs()
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=rf"{knob} must be an int from 0 \(the launcher picks\)"):
        if knob == "gemm_splits":
            emu.linear(randn(rng, 2, 3), randn(rng, 4, 3))
        else:
            emu.conv2d_wgrad(x, dy, w.shape)


@pytest.mark.parametrize("backend", ["cpu", "emu"])
@pytest.mark.parametrize("bad", ["fp16", "TF32", None, b"tf32", 2])
def test_every_gemm_op_refuses_an_unknown_precision_by_name(backend, bad):
    ops = ccn.backend(backend)
    x, w, dy = _conv_inputs()
    rng = np.random.default_rng(11)
    xl, wl, dyl = randn(rng, 2, 3), randn(rng, 4, 3), randn(rng, 2, 4)
    calls = {
        "conv2d": lambda: ops.conv2d(x, w, precision=bad),
        "conv2d_backward": lambda: ops.conv2d_backward(x, w, dy, precision=bad),
        "conv2d_dgrad": lambda: ops.conv2d_dgrad(dy, w, x.shape, precision=bad),
        "conv2d_wgrad": lambda: ops.conv2d_wgrad(x, dy, w.shape, precision=bad),
        "linear": lambda: ops.linear(xl, wl, precision=bad),
        "linear_backward": lambda: ops.linear_backward(xl, wl, dyl, precision=bad),
    }
    for op, call in calls.items():
        with pytest.raises(ValueError, match=f"{op}: precision must be one of"):
            call()


# ---------------------------------------------------------------- degenerate shapes

@pytest.mark.parametrize("precision", TC)
@pytest.mark.parametrize("n", [0, 1])
def test_conv_tensor_core_paths_on_degenerate_batches(emu, cpu, precision, n):
    """N = 0 (an empty batch: zeros and the bias, no launch) and N = 1 with C = 3 and K = 5
    (no multiple of any tile): the rounded cpu reference's values and shapes."""
    rng = np.random.default_rng(12 + n)
    x, w, b = randn(rng, n, 6, 5, 3), randn(rng, 5, 3, 2, 3, scale=0.3), randn(rng, 5)
    dy = randn(rng, n, 4, 4, 5)
    y, want_y = emu.conv2d(x, w, b, precision=precision), cpu.conv2d(x, w, b, precision=precision)
    assert y.shape == want_y.shape == (n, 4, 4, 5)
    np.testing.assert_allclose(y, want_y, **tol("conv2d", "kernel_vs_reference"))
    got = emu.conv2d_backward(x, w, dy, precision=precision)
    want = cpu.conv2d_backward(x, w, dy, precision=precision)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(g, r, err_msg=name, **tol("conv2d", "kernel_vs_reference"))


@pytest.mark.parametrize("precision", ("fp32",) + TC)
@pytest.mark.parametrize("n,fan_in,fan_out", [(0, 5, 3), (3, 5, 0), (3, 0, 4), (1, 17, 3)])
def test_linear_backward_accumulating_on_degenerate_shapes(emu, cpu, precision, n, fan_in, fan_out):
    """dx_accumulate with an empty batch, no outputs (dx = the buffer unchanged), no inputs,
    and N = 1 with K = 17: the cpu reference's dx, dw, db, with dx being the buffer."""
    rng = np.random.default_rng(13)
    x, w, dy = randn(rng, n, fan_in), randn(rng, fan_out, fan_in), randn(rng, n, fan_out)
    acc0 = randn(rng, n, fan_in)
    acc = acc0.copy()
    got = emu.linear_backward(x, w, dy, precision=precision, dx_accumulate=acc)
    want = cpu.linear_backward(x, w, dy, precision=precision, dx_accumulate=acc0.copy())
    assert got[0] is acc
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(g, r, err_msg=name, **tol("linear", "kernel_vs_reference"))


def test_dgrad_version_query_sums_extents_in_64_bits():
    """conv2d_dgrad_version with a stride near the extent limit and K/groups = 65535 * 64:
    K/groups + stride + 1 passed 2^31 in int, wrapped negative and made kernel2 look
    applicable (version 2). In 64 bits its offsets do not fit: kernel1, and a forced 2 is
    refused."""
    ext = emu_ext()
    a = np.zeros(64, np.float32)  # 16-byte aligned (NumPy aligns to 64), never read
    shape = _conv_shape(n=1, h=1, w=1, c=20, k=65535 * 64, r=1, s=1, stride=2**31 - 1025)
    assert ext.conv2d_dgrad_version(dy=host_ptr(a), wt=host_ptr(a), dx=host_ptr(a), **shape) == 1
    with pytest.raises(ValueError, match="conv_dgrad_kernel2 needs"):
        ext.conv2d_dgrad_version(dy=host_ptr(a), wt=host_ptr(a), dx=host_ptr(a), **shape, version=2)
    small = _conv_shape(n=1, h=1, w=1, c=20, k=64, r=1, s=1, stride=2)
    assert ext.conv2d_dgrad_version(dy=host_ptr(a), wt=host_ptr(a), dx=host_ptr(a), **small) == 2


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("groups", [1, 2, 8])
@pytest.mark.parametrize("n", [0, 1])
def test_grouped_lrn_on_degenerate_batches(emu, cpu, version, groups, n):
    """Channel groups down to one channel each (groups = C = 8), an empty batch and N = 1,
    both kernel versions: the cpu reference's values, forward and backward."""
    rng = np.random.default_rng(14 + groups)
    x, dy = randn(rng, n, 3, 5, 8), randn(rng, n, 3, 5, 8)
    emu.kernel_versions = {"lrn": version, "lrn_backward": version}
    y = emu.lrn(x, size=5, groups=groups)
    want_y = cpu.lrn(x, size=5, groups=groups)
    assert y.shape == want_y.shape == x.shape
    np.testing.assert_allclose(y, want_y, **tol("lrn", "kernel_vs_reference"))
    dx = emu.lrn_backward(x, y, dy, size=5, groups=groups)
    want_dx = cpu.lrn_backward(x, want_y, dy, size=5, groups=groups)
    np.testing.assert_allclose(dx, want_dx, **tol("lrn", "kernel_vs_reference"))


def test_dgrad_with_a_misaligned_dx_falls_back_or_is_refused():
    """conv_dgrad_kernel2 stores dx as float4: a dx 4 bytes past a 16-byte boundary (a
    binding call; the ops allocate dx themselves) takes kernel1 with kernel2's bits, and a
    forced kernel2 is refused before anything is written."""
    ext = emu_ext()
    rng = np.random.default_rng(15)
    n, h, w, c, k = 2, 6, 6, 24, 8  # C/g > 16 and % 4 == 0: kernel2 applies when aligned
    dy, wt = randn(rng, n, h - 2, w - 2, k), randn(rng, k, 3, 3, c, scale=0.3)
    shape = _conv_shape(n=n, h=h, w=w, c=c, k=k)
    aligned = np.full((n, h, w, c), np.nan, np.float32)
    assert ext.conv2d_dgrad_version(dy=host_ptr(dy), wt=host_ptr(wt), dx=host_ptr(aligned), **shape) == 2
    ext.conv2d_dgrad(dy=host_ptr(dy), wt=host_ptr(wt), dx=host_ptr(aligned), **shape)
    off = unaligned(np.full((n, h, w, c), np.nan, np.float32))
    assert ext.conv2d_dgrad_version(dy=host_ptr(dy), wt=host_ptr(wt), dx=host_ptr(off), **shape) == 1
    with pytest.raises(ValueError, match="conv_dgrad_kernel2 needs"):
        ext.conv2d_dgrad(dy=host_ptr(dy), wt=host_ptr(wt), dx=host_ptr(off), **shape, version=2)
    assert np.isnan(off).all()
    ext.conv2d_dgrad(dy=host_ptr(dy), wt=host_ptr(wt), dx=host_ptr(off), **shape)
    np.testing.assert_array_equal(off, aligned)
    want = ccn.backend("cpu").conv2d_dgrad(dy.astype(np.float64), wt.astype(np.float64), (n, h, w, c))
    np.testing.assert_allclose(off, want, **tol("conv2d", "kernel_vs_reference"))
