"""dgrad's pipelined fast path, conv_dgrad_kernel2 (csrc/conv_dgrad2.cuh), against the NumPy
reference and bit for bit against the general conv_dgrad_kernel1 (csrc/conv_dgrad.cuh), on
the emu backend (and cuda when a GPU is present); its cp.async pipeline's hazards through
tests/simt/conv_dgrad2_driver.cpp and mutated copies of the header.

Inputs are random N(0, 1) float32 (never zeros); dx starts as NaN (conftest.py), so an
element the kernel forgets to write fails. Tolerance: tests/tolerances.py (conv2d_backward,
kernel_vs_reference).
"""
from __future__ import annotations

import contextlib
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

ORDERS = ("forward", "reverse", "shuffle:5")
DRIVER = sb.SIMT_DIR / "conv_dgrad2_driver.cpp"
KERNEL = sb.CSRC / "conv_dgrad2.cuh"


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@contextlib.contextmanager
def dgrad_version(ops, version):
    """Force conv2d_dgrad's kernel through kernel_versions (0: the launcher picks) for a while."""
    old = dict(ops.kernel_versions)
    ops.kernel_versions["conv2d_dgrad"] = version
    try:
        yield
    finally:
        ops.kernel_versions.clear()
        ops.kernel_versions.update(old)


def geometry(n, h, w, c, k, r, s, stride, padding, groups):
    return checks.check_conv_args(np.empty((n, h, w, c), np.float32), np.empty((k, r, s, c // groups), np.float32),
                                  None, stride, padding, groups)


def dgrad(dev, dy, w, x_shape, version, **kw):
    with dgrad_version(dev.ops, version):
        return dev.get(dev.ops.conv2d_dgrad(dev.put(dy), dev.put(w), x_shape, **kw))


def check_dgrad2(dev, cpu, x_shape, w, dy, what, **kw):
    """kernel2 against the float64 reference, and kernel1 gives the same bits."""
    dx2 = dgrad(dev, dy, w, x_shape, 2, **kw)
    want = cpu.conv2d_dgrad(dy.astype(np.float64), w.astype(np.float64), x_shape, **kw)
    assert not np.isnan(dx2).any(), f"{what}: a dx element was never written (still NaN poison)"
    np.testing.assert_allclose(dx2, want, err_msg=what, **tol("conv2d_backward", "kernel_vs_reference"))
    dx1 = dgrad(dev, dy, w, x_shape, 1, **kw)
    np.testing.assert_array_equal(dx2, dx1, err_msg=f"{what}: conv_dgrad_kernel1 and kernel2 differ")
    return dx2


def case_arrays(rng, n, h, w, c, k, r, s, stride, padding, groups):
    """Random filters (scaled to keep dx O(1)) and a random dy of the convolution's output shape."""
    wt = rand(rng, k, r, s, c // groups, scale=1 / np.sqrt(r * s * k / groups))
    g = geometry(n, h, w, c, k, r, s, stride, padding, groups)
    return wt, rand(rng, n, g.p, g.q, k)


# ----------------------------------------------------------------------------- drawn shapes

@st.composite
def dgrad2_cases(draw):
    groups = draw(st.integers(1, 2))
    # C/g covers every tile width the launcher picks (48, 64, 128) with ragged edges.
    cg = draw(st.sampled_from([4, 8, 12, 20, 48, 52, 64, 96, 100, 128, 132]))
    kg = 4 * draw(st.integers(1, 6))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))  # (top, bottom, left, right)
    h = draw(st.integers(max(1, r - pad[0] - pad[1]), 11))
    w = draw(st.integers(max(1, s - pad[2] - pad[3]), 11))
    return dict(n=draw(st.integers(1, 3)), h=h, w=w, c=groups * cg, k=groups * kg, r=r, s=s, stride=stride,
                padding=pad, groups=groups, seed=draw(st.integers(0, 2**31)))


@given(case=dgrad2_cases())
def test_dgrad2_matches_reference_on_drawn_shapes(kernel_device, cpu, case):
    rng = np.random.default_rng(case.pop("seed"))
    kw = dict(stride=case["stride"], padding=case["padding"], groups=case["groups"])
    names = ("n", "h", "w", "c", "k", "r", "s", "stride", "padding", "groups")
    wt, dy = case_arrays(rng, *(case[k] for k in names))
    check_dgrad2(kernel_device, cpu, (case["n"], case["h"], case["w"], case["c"]), wt, dy, str(case), **kw)


@pytest.mark.parametrize(
    "n,h,w,c,k,r,s,stride,padding,groups",
    [
        (1, 1, 1, 4, 4, 1, 1, 1, 0, 1),              # one pixel, one quad of channels and filters
        (2, 9, 8, 96, 24, 3, 3, 1, 1, 2),            # C/g = 48: the 48-wide tile, 2 row tiles
        (3, 10, 9, 64, 8, 2, 3, 1, (0, 1, 1, 0), 1),  # C/g = 64, M = 270: 3 row tiles
        (1, 8, 10, 200, 8, 2, 3, 3, (1, 0, 0, 2), 2),  # C/g = 100: 128-wide, ragged; phases with no taps
        (1, 10, 11, 132, 20, 3, 2, 1, (1, 1, 0, 1), 1),  # C/g = 132: 2 tiles of 128
        (2, 12, 13, 8, 12, 11, 11, 4, 1, 1),         # conv1-like 11 x 11 at stride 4, 16 phases
    ],
)
def test_dgrad2_tile_edges(kernel_device, cpu, n, h, w, c, k, r, s, stride, padding, groups):
    rng = np.random.default_rng(n * 1000 + h * 100 + c)
    wt, dy = case_arrays(rng, n, h, w, c, k, r, s, stride, padding, groups)
    check_dgrad2(kernel_device, cpu, (n, h, w, c), wt, dy, f"c={c} k={k} r={r} stride={stride}", stride=stride,
                 padding=padding, groups=groups)


# ----------------------------------------------------------------------------- AlexNet

ALEXNET = {L.name: L for L in conv_layers()}


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("layer", [pytest.param("conv2", marks=pytest.mark.slow), "conv3", "conv4", "conv5"])
def test_dgrad2_alexnet_layers(kernel_device, cpu, layer, capsys):
    """conv2-5's dgrad at batch 2, full size: the launcher picks kernel2 with the tile width
    that wastes no column (C/g = 48 -> 48, 256 -> 128, 192 -> 64), and kernel1 agrees bit for bit."""
    L = ALEXNET[layer]
    rng = np.random.default_rng(sum(map(ord, layer)))
    kw = dict(stride=L.stride, padding=L.pad, groups=L.groups)
    wt, dy = case_arrays(rng, 2, L.hw, L.hw, L.c, L.k, L.r, L.r, L.stride, L.pad, L.groups)
    x_shape = (2, L.hw, L.hw, L.c)
    ops = kernel_device.ops
    assert ops.kernel_version("conv2d_dgrad", kernel_device.put(dy), kernel_device.put(wt), x_shape, **kw) == 2
    g = geometry(*x_shape, L.k, L.r, L.r, L.stride, L.pad, L.groups)
    want_n = {"conv2": 48, "conv3": 128, "conv4": 64, "conv5": 64}[layer]
    assert ops.conv2d_dgrad_plan(g) == {"block_m": 128, "block_n": want_n}
    t = time.perf_counter()
    check_dgrad2(kernel_device, cpu, x_shape, wt, dy, layer, **kw)
    with capsys.disabled():
        print(f"\n[{kernel_device.name}] {layer} batch 2 dgrad, kernel2 + kernel1 + reference: "
              f"{time.perf_counter() - t:.2f} s", end="")


def test_tile_width_wastes_fewest_columns(kernel_device):
    """The N tile covers C/g with the fewest padded columns (ties: 128, then 64, then 48)."""
    ops = kernel_device.ops

    def block_n(cg):
        return ops.conv2d_dgrad_plan(geometry(1, 3, 3, cg, 4, 1, 1, 1, 0, 1))["block_n"]

    want = {4: 48, 20: 48, 48: 48, 64: 64, 96: 48, 100: 128, 128: 128, 132: 48, 192: 64, 256: 128, 384: 128}
    assert {cg: block_n(cg) for cg in want} == want
    for cg in range(1, 400):
        padded = -(-cg // block_n(cg)) * block_n(cg)
        assert padded == min(-(-cg // bn) * bn for bn in (48, 64, 128))
    g = geometry(1, 3, 3, 3, 4, 1, 1, 1, 0, 1)
    assert ops.conv2d_dgrad_plan(g, kernel=1) == {"block_m": 256, "block_n": 16}
    assert ops.conv2d_dgrad_plan(geometry(1, 3, 3, 40, 4, 1, 1, 1, 0, 1), kernel=1) == {"block_m": 64, "block_n": 64}
    with pytest.raises(ValueError, match="kernel must be 1 or 2"):
        ops.conv2d_dgrad_plan(g, kernel=3)


# ----------------------------------------------------------------------------- the switch

def test_launcher_picks_kernel2_where_it_applies(kernel_device, cpu):
    """version 0 runs kernel2 for K/g and C/g % 4 == 0, C/g > 16 and aligned arrays;
    kernel1 otherwise (C = 3 as conv1, K/g % 4 != 0, a misaligned dy), with the same bits."""
    ops, put = kernel_device.ops, kernel_device.put
    rng = np.random.default_rng(3)

    def version(x_shape, wt, dy, **kw):
        return ops.kernel_version("conv2d_dgrad", put(dy), put(wt), x_shape, **kw)

    for c, k, want in [(40, 8, 2), (16, 8, 1), (3, 8, 1), (40, 6, 1), (42, 8, 1)]:
        wt, dy = case_arrays(rng, 2, 6, 5, c, k, 3, 3, 1, 1, 1)
        assert version((2, 6, 5, c), wt, dy, stride=1, padding=1) == want, (c, k)
        dx0 = dgrad(kernel_device, dy, wt, (2, 6, 5, c), 0, stride=1, padding=1)
        np.testing.assert_array_equal(dx0, dgrad(kernel_device, dy, wt, (2, 6, 5, c), 1, stride=1, padding=1))
    with dgrad_version(ops, 2):
        with pytest.raises(ValueError, match="conv_dgrad_kernel2 needs"):
            ops.conv2d_dgrad(put(dy), put(wt), (2, 6, 5, 42), stride=1, padding=1)
        with pytest.raises(ValueError, match="conv_dgrad_kernel2 needs"):
            version((2, 6, 5, 42), wt, dy, stride=1, padding=1)
    with dgrad_version(ops, 3), pytest.raises(ValueError, match="version must be 0"):
        ops.conv2d_dgrad(put(dy), put(wt), (2, 6, 5, 42), stride=1, padding=1)


def test_misaligned_dy_falls_back_to_kernel1(kernel_device, cpu):
    if kernel_device.name != "emu":
        pytest.skip("builds a misaligned NumPy view")
    rng = np.random.default_rng(8)
    wt, dy = case_arrays(rng, 2, 7, 6, 40, 8, 3, 3, 1, 1, 1)
    buf = np.empty(dy.size + 4, np.float32)
    start = next(i for i in range(4) if buf[i:].ctypes.data % 16 == 4)
    dym = buf[start:start + dy.size].reshape(dy.shape)
    dym[...] = dy
    ops, kw = kernel_device.ops, dict(stride=1, padding=1)
    assert ops.kernel_version("conv2d_dgrad", dy, wt, (2, 7, 6, 40), **kw) == 2
    assert ops.kernel_version("conv2d_dgrad", dym, wt, (2, 7, 6, 40), **kw) == 1
    np.testing.assert_array_equal(ops.conv2d_dgrad(dym, wt, (2, 7, 6, 40), **kw),
                                  ops.conv2d_dgrad(dy, wt, (2, 7, 6, 40), **kw))
    with dgrad_version(ops, 2), pytest.raises(ValueError, match="conv_dgrad_kernel2 needs"):
        ops.conv2d_dgrad(dym, wt, (2, 7, 6, 40), **kw)


def test_dgrad2_bit_identical_across_runs(kernel_device, cpu):
    rng = np.random.default_rng(12)
    wt, dy = case_arrays(rng, 2, 9, 9, 96, 16, 3, 3, 2, 1, 2)
    kw = dict(stride=2, padding=1, groups=2)
    first = dgrad(kernel_device, dy, wt, (2, 9, 9, 96), 2, **kw)
    np.testing.assert_array_equal(dgrad(kernel_device, dy, wt, (2, 9, 9, 96), 2, **kw), first)


@pytest.mark.emu
def test_dgrad2_identical_in_every_thread_order(monkeypatch, cpu):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(13)
    wt, dy = case_arrays(rng, 2, 8, 7, 104, 24, 3, 2, 1, (1, 0, 0, 1), 1)
    kw = dict(stride=1, padding=(1, 0, 0, 1))
    results = {}
    for order in ORDERS:
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        with dgrad_version(emu, 2):
            results[order] = emu.conv2d_dgrad(dy, wt, (2, 8, 7, 104), **kw)
    for order, dx in results.items():
        np.testing.assert_array_equal(dx, results["forward"], err_msg=order)


# ----------------------------------------------------------------------------- the pipeline's hazards

@pytest.mark.emu
def test_dgrad2_driver_matches_in_every_order(tmp_path):
    """Every tile width on ragged shapes (tests/simt/conv_dgrad2_driver.cpp)."""
    exe = sb.build([DRIVER], tmp_path)
    for order in ORDERS:
        r = sb.run(exe, order)
        assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{order}:\n{r.stdout}{r.stderr[-2000:]}"
        assert r.stdout.count("match") == 4


@pytest.mark.emu
@pytest.mark.slow
@pytest.mark.parametrize("pattern", [r"\b__syncthreads\(\)\s*;", r"\bcp_async_wait_group<[^>]*>\(\)\s*;"],
                         ids=["barrier", "wait_group"])
def test_dropped_barrier_or_wait_is_caught(tmp_path, pattern):
    """Delete each __syncthreads / cp_async_wait_group of conv_dgrad2.cuh in turn: the driver
    must fail in every thread order (a stage read before its copy landed reads NaN)."""
    n = 0
    for line, mutant_dir in sb.text_mutants(KERNEL, pattern, ";", tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if sb.run(exe, o).returncode == 0]
        assert not passed, f"conv_dgrad2.cuh:{line} with {pattern!r} deleted passes in {passed}"
        n += 1
    assert n >= 1


@pytest.mark.emu
@pytest.mark.parametrize(
    "pattern,replacement",
    [
        # the wait covers one group too few: the tile about to be read may still be in flight
        (r"cp_async_wait_group<S - 2>", "cp_async_wait_group<S - 1>"),
        # the copy ahead lands in the stage being read (one stage too few in the ring)
        (r"int read_stage = 0, write_stage = S - 1;", "int read_stage = 0, write_stage = 0;"),
        # a tap counter that forgets to rewind v when u steps
        (r"off \+= du - su \* dv;", "off += du;"),
        # the A quad transposed into the wrong k rows
        (r"dst \+ t \* kDgrad2LdA", "dst + (3 - t) * kDgrad2LdA"),
        # the second half of the B columns read at the wrong offset (tile_fma_8x8's HALF_N)
        (r"LDB, BN / 2>\(As", "LDB, 0>(As"),
        # the bounds test of a tap's column one pixel too lax (reads the next row's pixel)
        (r"conv_in_range\(q0\[e\] - ta\.v, g\.q\)", "conv_in_range(q0[e] - ta.v, g.q + 1)"),
    ],
    ids=["wait_short", "stage_ring", "tap_counter", "a_transpose", "b_half", "column_bound"],
)
def test_planted_kernel_bugs_are_caught(tmp_path, pattern, replacement):
    for line, mutant_dir in sb.text_mutants(KERNEL, pattern, replacement, tmp_path):
        r = sb.run(sb.build([DRIVER], mutant_dir, include_first=mutant_dir))
        # Caught means a wrong dx (MISMATCH), or, in a sanitizer build (CI's ASan stage builds
        # the drivers with -fsanitize=address), the out-of-bounds read the bug makes.
        caught = "MISMATCH" in r.stdout or "ERROR: AddressSanitizer" in r.stderr
        assert r.returncode != 0 and caught, f"conv_dgrad2.cuh:{line} mutated passes:\n{r.stdout}{r.stderr[-2000:]}"


@pytest.mark.emu
@pytest.mark.slow
def test_dgrad2_driver_under_sanitizers(tmp_path):
    """AddressSanitizer and UBSan over every case: no copy outside its stage or its tensor
    (the zero-fill path reads nothing)."""
    r = sb.run(sb.build([DRIVER], tmp_path, sanitize=True), "shuffle:2", env={"ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{r.stdout}{r.stderr[-3000:]}"
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
