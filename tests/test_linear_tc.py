"""The FC layers on tensor cores (csrc/gemm_tc.cuh): linear and linear_backward at
precision "tf32", "3xtf32" and "bf16" on the emu backend (and cuda when a GPU is present),
against the NumPy reference computed on the operands rounded exactly as the kernel rounds
them (cuda_convnet/reference/precision.py), so the comparison is at the float32 tolerance
of tests/tolerances.py, not at the formats' 10- or 7-bit mantissas. 3xtf32 is compared to
the unrounded reference at the same float32 tolerance. Outputs are poisoned with NaN
before every launch (conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest
import simt_build as sb
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_kernel_close, randn
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet.reference.precision import round_bf16, round_tf32

TC = ("tf32", "3xtf32", "bf16")
ORDERS = ("forward", "reverse", "shuffle:5")
DRIVER = sb.SIMT_DIR / "gemm_tc_driver.cpp"
KERNEL = sb.CSRC / "gemm_tc.cuh"
MAINLOOP = sb.CSRC / "tc_mainloop.cuh"


def reference(cpu, precision, x, w, b=None, dy=None):
    """The reference in float64 on the same float32 values, operands rounded as `precision`."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    if dy is None:
        return cpu.linear(x64, w64, None if b is None else b.astype(np.float64), precision=precision)
    return cpu.linear_backward(x64, w64, dy.astype(np.float64), precision=precision)


def check_linear(dev, cpu, precision, n, fan_in, fan_out, with_bias, seed, w_scale=None, backward=True):
    rng = np.random.default_rng(seed)
    x, dy = randn(rng, n, fan_in), randn(rng, n, fan_out)
    w = randn(rng, fan_out, fan_in) * np.float32(w_scale or 1 / np.sqrt(fan_in))
    b = randn(rng, fan_out) if with_bias else None
    y = dev.get(dev.ops.linear(dev.put(x), dev.put(w), dev.put(b), precision=precision))
    assert y.shape == (n, fan_out) and y.dtype == np.float32
    assert_kernel_close("linear", y, reference(cpu, precision, x, w, b))
    if not backward:
        return
    got = [dev.get(a) for a in dev.ops.linear_backward(dev.put(x), dev.put(w), dev.put(dy), precision=precision)]
    for g, want in zip(got, reference(cpu, precision, x, w, dy=dy)):
        assert_kernel_close("linear_backward", g, want)


# ---------------------------------------------------------------- rounding helpers
def test_round_tf32_ties_away_from_zero_and_specials():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-10)  # TF32 spacing at 1
    x = np.array([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 2 - 2**-23, 1 + 3 * ulp / 2, np.inf, -np.inf,
                  np.finfo(np.float32).max, 1e-40], np.float32)
    want = np.array([1 + ulp, -(1 + ulp), one, 1 + 2 * ulp, np.inf, -np.inf, np.inf,
                     np.uint32(np.float32(1e-40).view(np.uint32) + 0x1000 & 0xFFFFE000).view(np.float32)], np.float32)
    np.testing.assert_array_equal(round_tf32(x), want)
    assert np.isnan(round_tf32(np.array([np.nan], np.float32))).all()
    assert round_tf32(x.astype(np.float64)).dtype == np.float64


def test_round_bf16_is_nearest_even_as_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    bits[:1000] = (bits[:1000] & 0xFFFF0000) | 0x8000  # exact ties
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(round_bf16(x), want)
    assert np.isnan(round_bf16(np.array([np.nan], np.float32))).all()


@pytest.mark.emu
@pytest.mark.parametrize("precision,rounding", [("tf32", round_tf32), ("bf16", round_bf16)])
def test_rounding_is_bit_exact_with_the_kernel(precision, rounding):
    """A K = 1 GEMM against a B of ones returns each A element as the tensor core saw it:
    the NumPy rounding must agree bit for bit with the emulated cvt + mma."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32)
    bits[:512] = (bits[:512] & 0xFFFFE000) | 0x1000  # TF32 ties
    bits[512:1024] = (bits[512:1024] & 0xFFFF0000) | 0x8000  # BF16 ties
    a = bits.view(np.float32).copy()
    a[~np.isfinite(a)] = 1.5
    a[:2] = np.finfo(np.float32).max, -np.finfo(np.float32).max  # round up to +-inf
    ones = np.ones(1, np.float32)
    c = np.full(a.size, np.nan, np.float32)
    emu.ext.gemm_tc(a=a.ctypes.data, b=ones.ctypes.data, c=c.ctypes.data, bias=0, M=a.size, N=1, K=1, trans_a=False,
                    trans_b=False, precision=precision)
    np.testing.assert_array_equal(c.view(np.uint32), rounding(a).view(np.uint32))


# ---------------------------------------------------------------- kernels vs reference
@given(
    precision=st.sampled_from(TC),
    n=st.one_of(st.integers(1, 8), st.integers(1, 70)),
    fan_in=st.integers(1, 150),
    fan_out=st.integers(1, 140),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_linear_tc_matches_rounded_reference_on_drawn_shapes(kernel_device, cpu, precision, n, fan_in, fan_out,
                                                             with_bias, seed):
    check_linear(kernel_device, cpu, precision, n, fan_in, fan_out, with_bias, seed)


@pytest.mark.parametrize("precision", TC)
@pytest.mark.parametrize(
    "n,fan_in,fan_out",
    [
        (1, 1, 1),       # K = 1: one K step, 15 of 16 columns zero-filled
        (8, 16, 64),     # small-M tile, exactly one K step and one column tile
        (17, 33, 65),    # one past the small-M tile: the 64-row tile, ragged everywhere
        (65, 17, 63),    # K not a multiple of 4: 4-byte copies for the K-contiguous operands
        (64, 64, 128),   # whole tiles, 16-byte copies everywhere
        (130, 133, 131),  # ragged, every leading dimension odd
    ],
)
def test_linear_tc_tile_edges(kernel_device, cpu, precision, n, fan_in, fan_out):
    check_linear(kernel_device, cpu, precision, n, fan_in, fan_out, True, seed=n * fan_in + fan_out)


@pytest.mark.alexnet_shapes
@pytest.mark.parametrize("precision", TC)
def test_linear_tc_alexnet_fc_shapes(kernel_device, cpu, precision):
    """The paper's FC layers at batch 2: fc6 9216->4096 forward (whole), fc7 4096->4096 and
    fc8 4096->1000 forward and backward, fc6's backward cut to 512 outputs."""
    check_linear(kernel_device, cpu, precision, 2, 9216, 4096, True, seed=6, w_scale=0.01, backward=False)
    check_linear(kernel_device, cpu, precision, 2, 4096, 4096, True, seed=7, w_scale=0.01)
    check_linear(kernel_device, cpu, precision, 2, 4096, 1000, True, seed=8, w_scale=0.01)
    check_linear(kernel_device, cpu, precision, 2, 9216, 512, True, seed=9, w_scale=0.01)


def test_the_precisions_really_differ(kernel_device, cpu):
    """The comparisons above are not vacuous: tf32 and bf16 results are off the unrounded
    float32 result by more than the float32 tolerance (their rounding is real, and the
    rounded reference tracks it), while 3xtf32 is within it."""
    rng = np.random.default_rng(12)
    x, w = randn(rng, 16, 256), randn(rng, 64, 256) / np.float32(16)
    exact = reference(cpu, "fp32", x, w)
    t = tol("linear", "kernel_vs_reference")
    for precision in TC:
        y = kernel_device.get(kernel_device.ops.linear(kernel_device.put(x), kernel_device.put(w),
                                                       precision=precision))
        off = np.abs(y - exact) > t["atol"] + t["rtol"] * np.abs(exact)
        if precision == "3xtf32":
            assert not off.any(), precision
        else:
            assert off.mean() > 0.1, precision
            assert_kernel_close("linear", y, reference(cpu, precision, x, w))


def test_fp32_is_the_default_and_the_simt_kernel(kernel_device):
    rng = np.random.default_rng(5)
    x, w, b, dy = randn(rng, 9, 30), randn(rng, 20, 30), randn(rng, 20), randn(rng, 9, 20)
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    np.testing.assert_array_equal(get(ops.linear(put(x), put(w), put(b))),
                                  get(ops.linear(put(x), put(w), put(b), precision="fp32")))
    for a, c in zip(ops.linear_backward(put(x), put(w), put(dy)),
                    ops.linear_backward(put(x), put(w), put(dy), precision="fp32")):
        np.testing.assert_array_equal(get(a), get(c))


@pytest.mark.parametrize("precision", TC)
def test_gemm_tc_epilogue_and_layouts(kernel_device, precision):
    """alpha, beta accumulation into C, bias and ReLU, every operand layout, and operands
    that are only 4-byte aligned (the element-wise cp.async path)."""
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    rng = np.random.default_rng(21)
    M, N, K = 37, 70, 44
    for trans_a in (False, True):
        for trans_b in (False, True):
            for offset in (0, 1):
                opa, opb = randn(rng, M, K), randn(rng, K, N) / np.float32(np.sqrt(K))
                a = opa.T.copy() if trans_a else opa
                b = opb.T.copy() if trans_b else opb
                c0, bias = randn(rng, M, N), randn(rng, N)
                abuf, bbuf = np.zeros(a.size + 1, np.float32), np.zeros(b.size + 1, np.float32)
                abuf[offset:offset + a.size], bbuf[offset:offset + b.size] = a.ravel(), b.ravel()
                da, db = put(abuf), put(bbuf)
                dc = put(c0.copy())  # put() may return c0 itself: keep c0 for the reference
                ops.ext.gemm_tc(a=ops._ptr(da) + 4 * offset, b=ops._ptr(db) + 4 * offset, c=ops._ptr(dc),
                                bias=ops._ptr(put(bias)), M=M, N=N, K=K, trans_a=trans_a, trans_b=trans_b, alpha=0.5,
                                beta=0.75, relu=True, precision=precision, stream=ops._stream())
                ra = (round_tf32 if precision == "tf32" else round_bf16 if precision == "bf16" else np.asarray)
                want = 0.5 * (ra(opa).astype(np.float64) @ ra(opb).astype(np.float64)) + 0.75 * c0 + bias
                np.testing.assert_allclose(get(dc), np.maximum(want, 0), **tol("linear", "kernel_vs_reference"),
                                           err_msg=f"trans_a={trans_a} trans_b={trans_b} offset={offset}")


@pytest.mark.emu
@pytest.mark.parametrize("precision", TC)
def test_linear_tc_identical_across_runs_and_thread_orders(monkeypatch, precision):
    """Each output element is one thread's fixed-order accumulation: bit-identical results
    in every emulated thread order and on a second run."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(11)
    x, w, b, dy = randn(rng, 67, 45), randn(rng, 70, 45), randn(rng, 70), randn(rng, 67, 70)
    results = {}
    for order in ORDERS:
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        results[order] = [emu.linear(x, w, b, precision=precision),
                          *emu.linear_backward(x, w, dy, precision=precision)]
    results["again"] = [emu.linear(x, w, b, precision=precision), *emu.linear_backward(x, w, dy, precision=precision)]
    for order, outs in results.items():
        for a, ref in zip(outs, results["forward"]):
            np.testing.assert_array_equal(a, ref, err_msg=order)


@pytest.mark.parametrize("precision", ("fp32", *TC))
def test_linear_on_an_empty_batch(kernel_device, cpu, precision):
    """N = 0: an empty y and dx, and zero dw and db (the sums over no samples), as the reference."""
    x, dy, w = np.zeros((0, 5), np.float32), np.zeros((0, 3), np.float32), np.ones((3, 5), np.float32)
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    assert get(ops.linear(put(x), put(w), precision=precision)).shape == (0, 3)
    got = [get(a) for a in ops.linear_backward(put(x), put(w), put(dy), precision=precision)]
    want = cpu.linear_backward(x, w, dy, precision=precision)
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == np.float32
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("bad", ["TF32", "fp16", "", None, 32])
def test_bad_precision_is_refused_by_every_backend(kernel_device, cpu, bad):
    rng = np.random.default_rng(0)
    x, w, dy = randn(rng, 4, 5), randn(rng, 3, 5), randn(rng, 4, 3)
    msg = r"precision must be one of 'fp32', '3xtf32', 'tf32', 'bf16'"
    ops, put = kernel_device.ops, kernel_device.put
    for backend, conv in ((cpu, np.asarray), (ops, put)):
        with pytest.raises(ValueError, match=r"^linear: " + msg):
            backend.linear(conv(x), conv(w), precision=bad)
        with pytest.raises(ValueError, match=r"^linear_backward: " + msg):
            backend.linear_backward(conv(x), conv(w), conv(dy), precision=bad)


@pytest.mark.emu
def test_gemm_tc_binding_refuses_fp32():
    """The tensor-core launcher has no "fp32" (that is the SIMT gemm)."""
    emu = ccn.backend("emu")
    a = np.ones(16, np.float32)
    with pytest.raises(ValueError, match="gemm_tc: precision must be 'tf32', '3xtf32' or 'bf16'"):
        emu.ext.gemm_tc(a=a.ctypes.data, b=a.ctypes.data, c=a.ctypes.data, bias=0, M=4, N=4, K=4, trans_a=False,
                        trans_b=False, precision="fp32")


@pytest.mark.emu
@pytest.mark.parametrize("which", ["M", "N", "K"])
def test_gemm_tc_refuses_extents_whose_tile_loop_would_wrap(which):
    """A tile origin (k0 = 16 kt, m0 = 64 blockIdx.y) near 2^31 would wrap: refused first."""
    emu = ccn.backend("emu")
    a = np.ones(4, np.float32)
    dims = {"M": 1, "N": 1, "K": 1, which: 2**31 - 4}
    with pytest.raises(ValueError, match=rf"gemm_tc: {which} = {2**31 - 4} is larger than"):
        emu.ext.gemm_tc(a=a.ctypes.data, b=a.ctypes.data, c=a.ctypes.data, bias=0, **dims, trans_a=False,
                        trans_b=False, precision="tf32")


# ---------------------------------------------------------------- the pipeline's hazards
@pytest.mark.emu
def test_gemm_tc_driver_matches_in_every_order(tmp_path):
    """Every layout, precision, tile and copy width on ragged shapes (tests/simt/gemm_tc_driver.cpp)."""
    exe = sb.build([DRIVER], tmp_path)
    for order in ORDERS:
        r = sb.run(exe, order)
        assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{order}:\n{r.stdout}{r.stderr[-2000:]}"
        assert r.stdout.count("match") == 11


@pytest.mark.emu
@pytest.mark.parametrize("pattern", [r"\b__syncthreads\(\)\s*;", r"\bcp_async_wait_group<[^>]*>\(\)\s*;"],
                         ids=["barrier", "wait_group"])
def test_dropped_barrier_or_wait_is_caught(tmp_path, pattern):
    """Delete each __syncthreads / cp_async_wait_group of the pipeline (tc_mainloop.cuh,
    shared with conv_tc) in turn: the driver must fail in every thread order (a stage read
    before its copy landed reads NaN)."""
    n = 0
    for line, mutant_dir in sb.text_mutants(MAINLOOP, pattern, ";", tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if sb.run(exe, o).returncode == 0]
        assert not passed, f"gemm_tc.cuh:{line} with {pattern!r} deleted passes in {passed}"
        n += 1
    assert n >= 1


@pytest.mark.emu
@pytest.mark.parametrize(
    "pattern,replacement",
    [
        # the tf32 A fragment with the row and k halves swapped
        (r"g \+ \(r & 1\) \* 8, kk \+ t \+ \(r >> 1\) \* 4", "g + (r >> 1) * 8, kk + t + (r & 1) * 4"),
        # the bf16 A pair in the wrong order within its register
        (r"cvt_rn_bf16x2\(a_at\(m, k\), a_at\(m, k \+ 1\)\)", "cvt_rn_bf16x2(a_at(m, k + 1), a_at(m, k))"),
        # the 128-bit fragment loads of the forward layout: a bf16 pair or a 3xtf32 sub-step swapped
        (r"cvt_rn_bf16x2\(v\.x, v\.y\)", "cvt_rn_bf16x2(v.y, v.x)"),
        (r"\(hi \? v\.z : v\.x\)", "(hi ? v.x : v.z)"),
        # 3xtf32 without its a_big * b_small term
        (r"mma_m16n8k8_tf32\(acc\[i\]\[j\], a\[i\], b_lo\[j\], acc\[i\]\[j\]\);", ";"),
        # the epilogue's two columns of a register pair swapped
        (r"2 \* t \+ c;", "2 * t + 1 - c;"),
    ],
    ids=["tf32_fragment", "bf16_pair", "bf16_pair_128bit", "3xtf32_substep_128bit", "3xtf32_term", "epilogue_columns"],
)
def test_planted_kernel_bugs_are_caught(tmp_path, pattern, replacement):
    for line, mutant_dir in sb.text_mutants(MAINLOOP, pattern, replacement, tmp_path):
        r = sb.run(sb.build([DRIVER], mutant_dir, include_first=mutant_dir))
        assert r.returncode != 0 and "MISMATCH" in r.stdout, f"tc_mainloop.cuh:{line} mutated passes:\n{r.stdout}"


@pytest.mark.emu
def test_gemm_tc_driver_under_sanitizers(tmp_path):
    """AddressSanitizer and UBSan over every case of the driver: no copy or fragment read
    outside its shared-memory stage or its matrix (the zero-fill path reads nothing)."""
    r = sb.run(sb.build([DRIVER], tmp_path, sanitize=True), "shuffle:2", env={"ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode == 0 and "MISMATCH" not in r.stdout, f"{r.stdout}{r.stderr[-3000:]}"
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
