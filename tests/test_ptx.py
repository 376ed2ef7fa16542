"""The PTX wrappers of csrc/ptx/ (ARCHITECTURE.md §5): their emulator models against NumPy
models written from the PTX ISA, in every thread order, and planted bugs that must fail.

tests/simt/ptx_driver.cpp runs the kernels of tests/simt/ptx_kernels.cuh and
ptx_pipeline.cuh on inputs written here; the expected values are computed here:
- mma.sync m16n8k8 tf32 / m16n8k16 bf16: fragments placed by the ISA's tables in Python
  (an independent check of the model's tables), and 16x8 tiles computed by kernels that
  load fragments themselves, against C + A B in float64 (k ascending) rounded once;
- ldmatrix x1/x2/x4 (.trans) on distinct 16-bit values against the ISA's lane mapping;
- cvt.rna.tf32 and cvt.rn.bf16(x2) bit for bit against value-level NumPy models
  (ties, subnormals, inf, NaN, FLT_MAX) and PyTorch's .bfloat16() where installed;
- a 3-stage cp.async tensor-core GEMM against the same arithmetic per K step.
Mutants (text substitutions of the kernel sources) must fail in every thread order: a
swapped lane mapping, a missing .trans, a dropped cp.async wait or barrier (wrong
answer), a lane that skips the mma (divergence error). The header also has to compile
with nvcc for sm_80 and sm_90 into HMMA, LDSM and LDGSTS instructions.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest
import simt_build as sb

pytestmark = pytest.mark.skipif(sb.compiler() is None, reason="needs g++")

ORDERS = ("forward", "reverse", "shuffle:1", "shuffle:2")
DRIVER = sb.SIMT_DIR / "ptx_driver.cpp"
KERNELS = sb.SIMT_DIR / "ptx_kernels.cuh"
PIPELINE = sb.SIMT_DIR / "ptx_pipeline.cuh"


# ---------------------------------------------------------------- NumPy models (PTX ISA)
def tf32_rna(x):
    """cvt.rna.tf32.f32 by value: the significand rounded to 10 fraction bits, ties away
    from zero (subnormals on the fixed 2^-136 grid); a result past FLT_MAX is inf. Inf and
    NaN inputs: the low 13 bits cleared (the instruction's behaviour, csrc/ptx/cvt.cuh)."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    finite = np.isfinite(x)
    x64 = np.where(finite, x, 0).astype(np.float64)
    _, e = np.frexp(np.abs(x64))  # |x| = m 2^e, m in [0.5, 1)
    quantum = np.ldexp(1.0, np.maximum(e - 1, -126) - 10)
    r = np.copysign(np.floor(np.abs(x64) / quantum + 0.5) * quantum, x64)
    with np.errstate(over="ignore"):
        out = r.astype(np.float32).view(np.uint32)
    return np.where(finite, out, bits & np.uint32(0xFFFFE000)).astype(np.uint32)


def bf16_rn(x):
    """cvt.rn.bf16.f32 by value: 7 fraction bits, ties to even (subnormals on the 2^-133
    grid), past the largest bf16 -> inf; NaN -> 0x7fff. Returns uint16 bits."""
    x = np.asarray(x, np.float32)
    finite = np.isfinite(x)
    x64 = np.where(finite, x, 0).astype(np.float64)
    _, e = np.frexp(np.abs(x64))
    quantum = np.ldexp(1.0, np.maximum(e - 1, -126) - 7)
    r = np.copysign(np.rint(np.abs(x64) / quantum) * quantum, x64)  # rint: ties to even
    with np.errstate(over="ignore"):
        out = (r.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    inf = (x.view(np.uint32) >> 16).astype(np.uint16)
    return np.where(finite, out, np.where(np.isnan(x), np.uint16(0x7FFF), inf)).astype(np.uint16)


def bf16_value(h):
    return (np.asarray(h, np.uint32) << 16).astype(np.uint32).view(np.float32)


def tf32_value(bits):
    """What mma reads from a .tf32 register: the upper 19 bits."""
    return (np.asarray(bits, np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def mma_reference(A, B, C):
    """C + A B with float64 sums, k ascending, rounded once to float32 (the model's
    arithmetic; products of TF32/BF16 values are exact in float64)."""
    acc = np.asarray(C, np.float64).copy()
    A64, B64 = np.asarray(A, np.float64), np.asarray(B, np.float64)
    for k in range(A64.shape[1]):
        acc = acc + A64[:, k : k + 1] * B64[k : k + 1, :]
    return acc.astype(np.float32)


def lane_coords():
    lane = np.arange(32)
    return lane >> 2, lane & 3  # groupID, threadID_in_group


def c_fragments(C):
    """C/D registers per lane (ISA: c0, c1 at row g, cols 2t, 2t+1; c2, c3 at row g + 8)."""
    g, t = lane_coords()
    return np.stack([C[g, 2 * t], C[g, 2 * t + 1], C[g + 8, 2 * t], C[g + 8, 2 * t + 1]], axis=1)


# ---------------------------------------------------------------- running the driver
@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return sb.build([DRIVER], tmp_path_factory.mktemp("ptx"), include_dirs=[sb.SIMT_DIR])


def run_mode(exe, mode, inputs, order, tmp_path, outputs, env=None):
    """Write `inputs` (name -> array), run the driver in `order`, return (returncode,
    stderr, {name: array}) with `outputs` (name -> dtype) read back."""
    work = tmp_path / f"{mode}_{order.replace(':', '_')}"
    work.mkdir(exist_ok=True)
    for name, arr in inputs.items():
        np.ascontiguousarray(arr).tofile(work / f"{name}.bin")
    env = dict(os.environ, CCN_SIMT_ORDER=order, **(env or {}))
    r = subprocess.run([str(exe), mode, str(work)], check=False, capture_output=True, text=True, env=env,
                       timeout=120)
    got = {}
    if r.returncode == 0:
        got = {name: np.fromfile(work / f"{name}.bin", dtype) for name, dtype in outputs.items()}
    return r.returncode, r.stderr, got


def tf32_tile_case(rng):
    A = rng.standard_normal((16, 8)).astype(np.float32)
    B = rng.standard_normal((8, 8)).astype(np.float32)
    C = rng.standard_normal((16, 8)).astype(np.float32)
    want = mma_reference(tf32_rna(A).view(np.float32), tf32_rna(B).view(np.float32), C)
    return {"A": A, "B": B, "C": C}, want


def bf16_tile_case(rng):
    A = rng.standard_normal((16, 16)).astype(np.float32)
    B = rng.standard_normal((16, 8)).astype(np.float32)
    C = rng.standard_normal((16, 8)).astype(np.float32)
    want = mma_reference(bf16_value(bf16_rn(A)), bf16_value(bf16_rn(B)), C)
    return {"A": A, "B": B, "C": C}, want


def pipeline_case(rng, M, N, K):
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    At, Bt = tf32_rna(A).view(np.float32), tf32_rna(B).view(np.float32)
    acc = np.zeros((M, N), np.float32)
    for k0 in range(0, K, 8):  # one mma per K step of 8: rounded to float32 after each
        acc = mma_reference(At[:, k0 : k0 + 8], Bt[k0 : k0 + 8, :], acc)
    return {"A": A, "B": B, "dims": np.array([M, N, K], np.int32)}, acc


TILE_CASES = {"mma_tf32_tile": tf32_tile_case, "mma_bf16_tile": bf16_tile_case, "mma_bf16_ldmatrix": bf16_tile_case}


# ---------------------------------------------------------------- mma
def test_mma_tf32_fragments_follow_the_isa_tables(driver, tmp_path):
    """Fragments placed in Python by the ISA's m16n8k8 .tf32 tables; A is given as raw
    float32 bits (not rounded): mma reads only the upper 19 bits of a .tf32 register."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((16, 8)).astype(np.float32)
    B = tf32_value(tf32_rna(rng.standard_normal((8, 8)).astype(np.float32)))
    C = rng.standard_normal((16, 8)).astype(np.float32)
    g, t = lane_coords()
    Ab, Bb = A.view(np.uint32), B.view(np.uint32)
    a = np.stack([Ab[g, t], Ab[g + 8, t], Ab[g, t + 4], Ab[g + 8, t + 4]], axis=1)
    b = np.stack([Bb[t, g], Bb[t + 4, g]], axis=1)
    want = c_fragments(mma_reference(tf32_value(Ab), B, C))
    assert not np.array_equal(tf32_value(Ab), A)  # the truncation matters for this A
    for order in ORDERS:
        rc, err, got = run_mode(driver, "mma_tf32_frag", {"a": a, "b": b, "c": c_fragments(C)}, order, tmp_path,
                                {"d": np.float32})
        assert rc == 0, err
        np.testing.assert_array_equal(got["d"].reshape(32, 4), want, err_msg=order)


def test_mma_bf16_fragments_follow_the_isa_tables(driver, tmp_path):
    rng = np.random.default_rng(2)
    Ah = bf16_rn(rng.standard_normal((16, 16)).astype(np.float32)).astype(np.uint32)
    Bh = bf16_rn(rng.standard_normal((16, 8)).astype(np.float32)).astype(np.uint32)
    C = rng.standard_normal((16, 8)).astype(np.float32)
    g, t = lane_coords()
    # a_r holds (row g + 8 (r & 1), cols 2t + 8 (r >> 1) and + 1), the lower column in bits 0-15
    a = np.stack([Ah[g + 8 * (r & 1), 2 * t + 8 * (r >> 1)] | (Ah[g + 8 * (r & 1), 2 * t + 8 * (r >> 1) + 1] << 16)
                  for r in range(4)], axis=1).astype(np.uint32)
    b = np.stack([Bh[2 * t + 8 * r, g] | (Bh[2 * t + 8 * r + 1, g] << 16) for r in range(2)], axis=1).astype(np.uint32)
    want = c_fragments(mma_reference(bf16_value(Ah), bf16_value(Bh), C))
    for order in ORDERS:
        rc, err, got = run_mode(driver, "mma_bf16_frag", {"a": a, "b": b, "c": c_fragments(C)}, order, tmp_path,
                                {"d": np.float32})
        assert rc == 0, err
        np.testing.assert_array_equal(got["d"].reshape(32, 4), want, err_msg=order)


@pytest.mark.parametrize("mode", list(TILE_CASES))
def test_mma_tiles_match_the_rounded_reference(driver, tmp_path, mode):
    """A warp computes a 16x8 tile from float32 A, B, C: operands rounded by the cvt
    wrappers, fragments loaded from global memory (or by ldmatrix), exact result."""
    inputs, want = TILE_CASES[mode](np.random.default_rng(3))
    unrounded = mma_reference(inputs["A"], inputs["B"], inputs["C"])
    assert not np.array_equal(unrounded, want)  # the rounding is visible in the answer
    for order in ORDERS:
        rc, err, got = run_mode(driver, mode, inputs, order, tmp_path, {"D": np.float32})
        assert rc == 0, err
        np.testing.assert_array_equal(got["D"].reshape(16, 8), want, err_msg=f"{mode} {order}")


# ---------------------------------------------------------------- ldmatrix
def ldmatrix_expected(M, perm):
    """out[lane, 14] by the ISA: register i of lane l holds matrix i's (row l/4, cols
    2(l%4), 2(l%4)+1); .trans: (rows 2(l%4), 2(l%4)+1, col l/4). Lanes 8i..8i+7 address
    matrix i's rows."""
    out = np.zeros((32, 14), np.uint32)
    col = 0
    for trans in (False, True):
        for num in (1, 2, 4):
            for lane in range(32):
                a, b = lane // 4, 2 * (lane % 4)
                for i in range(num):
                    mat = M[perm[8 * i : 8 * i + 8]].astype(np.uint32)
                    lo, hi = (mat[b, a], mat[b + 1, a]) if trans else (mat[a, b], mat[a, b + 1])
                    out[lane, col + i] = lo | (hi << 16)
            col += num
    return out


def test_ldmatrix_every_form_follows_the_isa(driver, tmp_path):
    rng = np.random.default_rng(4)
    M = (rng.permutation(256) + 0x1100).astype(np.uint16).reshape(32, 8)  # distinct values
    perm = rng.permutation(32).astype(np.int32)
    want = ldmatrix_expected(M, perm)
    for order in ORDERS:
        rc, err, got = run_mode(driver, "ldmatrix", {"M": M, "perm": perm}, order, tmp_path, {"out": np.uint32})
        assert rc == 0, err
        np.testing.assert_array_equal(got["out"].reshape(32, 14), want, err_msg=order)


# ---------------------------------------------------------------- cvt
def conversion_inputs(rng):
    """Bit patterns that matter to a rounding: random ones over every exponent, exact
    ties for both formats (even and odd kept LSB), carries into the exponent, subnormals,
    zeros, FLT_MAX, the largest finite values that still round down, inf, NaNs."""
    u32 = np.uint32
    rand = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(u32)
    base = rand & u32(0xFFFF0000)
    tf32_ties = (rand & u32(0xFFFFC000)) | u32(0x1000)  # bit 13 = kept LSB, random
    bf16_ties = base | u32(0x8000)
    near_ties = np.concatenate([tf32_ties - u32(1), tf32_ties + u32(1), bf16_ties - u32(1), bf16_ties + u32(1)])
    subnormal = rand[:400] & u32(0x807FFFFF)
    specials = np.array([0, 0x80000000, 1, 0x80000001, 0x00001000, 0x00001FFF, 0x00002000, 0x00008000, 0x00018000,
                         0x007FFFFF, 0x00800000, 0x3F800000, 0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000,
                         0x3FFFFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FEFFF, 0x7F7F7FFF, 0x7F7FF000, 0x7F7F8000,
                         0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0x7FC01234, 0xFFFFFFFF],
                        dtype=u32)
    x = np.concatenate([rand, tf32_ties, bf16_ties, near_ties, subnormal, specials])
    if x.size % 2:
        x = np.concatenate([x, specials[:1]])
    return x.view(np.float32)


def test_numpy_models_on_known_values():
    """The models themselves, on hand-checked bit patterns."""
    f = lambda *b: np.array(b, np.uint32).view(np.float32)
    np.testing.assert_array_equal(
        tf32_rna(f(0x3F801000, 0x3F803000, 0x3F800FFF, 0xBF801000, 0x7F7FFFFF, 0x00001000, 0x7FC01234, 0x80000000)),
        np.array([0x3F802000, 0x3F804000, 0x3F800000, 0xBF802000, 0x7F800000, 0x00002000, 0x7FC00000, 0x80000000],
                 np.uint32))
    np.testing.assert_array_equal(
        bf16_rn(f(0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0x7F7F7FFF, 0xFFC00000, 0x00008000, 0x80000001)),
        np.array([0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F7F, 0x7FFF, 0x0000, 0x8000], np.uint16))


def test_conversions_are_bit_exact(driver, tmp_path):
    x = conversion_inputs(np.random.default_rng(5))
    want_tf32, want_bf16 = tf32_rna(x), bf16_rn(x)
    want_pairs = want_bf16[0::2].astype(np.uint32) | (want_bf16[1::2].astype(np.uint32) << 16)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:  # PyTorch's .bfloat16() is the same rounding (NaN bits aside)
        finite = np.isfinite(x)
        tb = torch.from_numpy(x.copy()).bfloat16().view(torch.int16).numpy().view(np.uint16)
        np.testing.assert_array_equal(tb[finite], want_bf16[finite])
    for order in ("forward", "shuffle:3"):
        rc, err, got = run_mode(driver, "cvt", {"x": x}, order, tmp_path,
                                {"tf32": np.uint32, "bf16": np.uint16, "bf16x2": np.uint32})
        assert rc == 0, err
        for name, want in (("tf32", want_tf32), ("bf16", want_bf16), ("bf16x2", want_pairs)):
            bad = np.flatnonzero(got[name] != want)
            assert bad.size == 0, (f"{name}: {bad.size} wrong, e.g. input 0x{x.view(np.uint32)[bad[0]]:08x} -> "
                                   f"0x{int(got[name][bad[0]]):x}, want 0x{int(want[bad[0]]):x}")


# ---------------------------------------------------------------- cp.async pipeline
PIPELINE_SHAPES = ((64, 16, 20), (32, 8, 4), (96, 24, 44))  # ragged last K step; 1 step; 6 steps


def test_cp_async_pipeline_matches_reference(driver, tmp_path):
    rng = np.random.default_rng(6)
    for M, N, K in PIPELINE_SHAPES:
        inputs, want = pipeline_case(rng, M, N, K)
        for order in ORDERS:
            rc, err, got = run_mode(driver, "pipeline", inputs, order, tmp_path, {"D": np.float32})
            assert rc == 0, err
            np.testing.assert_array_equal(got["D"].reshape(M, N), want, err_msg=f"{(M, N, K)} {order}")


def test_cp_async_sizes_zero_fill_and_landing(driver, tmp_path):
    """4/8/16-byte copies with every src-size: the destination reads NaN from issue until
    the wait that covers its group, then the first src-size bytes of the source and zeros."""
    src = np.random.default_rng(17).uniform(1, 2, 256).astype(np.float32)  # no zeros, no NaN
    t = np.arange(32)[:, None]
    s = src.reshape(32, 8)
    group0 = np.where(np.arange(4) < t % 5, s[:, :4], 0)
    group1 = np.concatenate([np.where(np.arange(2) < t % 3, s[:, 4:6], 0), np.where(t % 2 == 1, s[:, 6:7], 0)], axis=1)
    nan = np.full((32, 1), np.nan, np.float32)
    want_mid = np.concatenate([group0, np.full((32, 4), np.nan)], axis=1)
    want_after = np.concatenate([group0, group1, nan], axis=1)
    for order in ORDERS:
        rc, err, got = run_mode(driver, "cp_async_forms", {"src": src}, order, tmp_path,
                                {"before": np.float32, "mid": np.float32, "after": np.float32})
        assert rc == 0, err
        assert np.isnan(got["before"]).all(), order
        np.testing.assert_array_equal(got["mid"].reshape(32, 8), want_mid, err_msg=order)
        np.testing.assert_array_equal(got["after"].reshape(32, 8), want_after, err_msg=order)


# ---------------------------------------------------------------- planted bugs
def _fails(exe, mode, inputs, want, order, tmp_path, out="D"):
    rc, _, got = run_mode(exe, mode, inputs, order, tmp_path, {out: np.float32})
    if rc != 0:
        return True
    return not np.array_equal(got[out].reshape(want.shape), want)


def _assert_mutants_fail(tmp_path, source, pattern, replacement, mode, case):
    inputs, want = case
    n = 0
    for line, mutant_dir in sb.text_mutants(source, pattern, replacement, tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir, include_dirs=[sb.SIMT_DIR])
        passed = [o for o in ORDERS if not _fails(exe, mode, inputs, want, o, mutant_dir)]
        assert not passed, f"{source.name}:{line} mutated ({pattern!r} -> {replacement!r}) passes in {passed}"
        n += 1
    return n


def test_swapped_lane_mapping_is_caught(tmp_path):
    """groupID and threadID_in_group swapped in the A fragment load of the tf32 tile."""
    rng = np.random.default_rng(7)
    _assert_mutants_fail(tmp_path, KERNELS, r"cvt_rna_tf32\(A\[g \* 8 \+ t\]\)", "cvt_rna_tf32(A[t * 8 + g])",
                         "mma_tf32_tile", tf32_tile_case(rng))


def test_swapped_b_mapping_is_caught(tmp_path):
    """The bf16 B fragment read as (n, k) instead of (k, n)."""
    rng = np.random.default_rng(8)
    _assert_mutants_fail(tmp_path, KERNELS, r"B\[\(2 \* t \+ r \* 8\) \* 8 \+ g\]", "B[g * 8 + 2 * t + r * 8]",
                         "mma_bf16_tile", bf16_tile_case(rng))


def test_missing_trans_is_caught(tmp_path):
    rng = np.random.default_rng(9)
    _assert_mutants_fail(tmp_path, KERNELS, r"ldmatrix_x2_trans\(b,", "ldmatrix_x2(b,", "mma_bf16_ldmatrix",
                         bf16_tile_case(rng))


def test_dropped_cp_async_wait_is_caught(tmp_path):
    rng = np.random.default_rng(10)
    n = _assert_mutants_fail(tmp_path, PIPELINE, r"\bcp_async_wait_group<[^>]*>\(\)\s*;", ";", "pipeline",
                             pipeline_case(rng, 64, 16, 36))
    assert n >= 1


def test_wait_covering_one_group_too_few_is_caught(tmp_path):
    """wait_group<kStages - 1> leaves the stage about to be read in flight."""
    rng = np.random.default_rng(16)
    _assert_mutants_fail(tmp_path, PIPELINE, r"cp_async_wait_group<kPipeStages - 2>",
                         "cp_async_wait_group<kPipeStages - 1>", "pipeline", pipeline_case(rng, 64, 16, 36))


def test_dropped_pipeline_barrier_is_caught(tmp_path):
    rng = np.random.default_rng(11)
    n = _assert_mutants_fail(tmp_path, PIPELINE, r"\b__syncthreads\(\)\s*;", ";", "pipeline",
                             pipeline_case(rng, 64, 16, 36))
    assert n >= 1


def test_lane_skipping_mma_is_a_divergence_error(tmp_path):
    inputs, _ = tf32_tile_case(np.random.default_rng(12))
    for line, mutant_dir in sb.text_mutants(KERNELS, r"^(\s*)mma_m16n8k8_tf32\(d, a, b, c\);",
                                            r"\1if (lane != 7) mma_m16n8k8_tf32(d, a, b, c);", tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir, include_dirs=[sb.SIMT_DIR])
        for order in ORDERS:
            rc, err, _ = run_mode(exe, "mma_tf32_tile", inputs, order, mutant_dir, {})
            assert rc == 3, f"line {line}, {order}: rc {rc}"
            assert "divergent warp collective" in err and "thread 7 exited" in err, err


def test_lanes_at_different_mma_sites_are_a_divergence_error(tmp_path):
    """mma.sync.aligned: every lane must execute the same instruction, not one per branch."""
    inputs, _ = tf32_tile_case(np.random.default_rng(14))
    split = ("\\1if (lane == 7) {\n\\1  mma_m16n8k8_tf32(d, a, b, c);\n"
             "\\1} else {\n\\1  mma_m16n8k8_tf32(d, a, b, c);\n\\1}")
    for _, mutant_dir in sb.text_mutants(KERNELS, r"^(\s*)mma_m16n8k8_tf32\(d, a, b, c\);", split, tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir, include_dirs=[sb.SIMT_DIR])
        for order in ORDERS:
            rc, err, _ = run_mode(exe, "mma_tf32_tile", inputs, order, mutant_dir, {})
            assert rc == 3 and "divergent warp collective" in err, err
            assert err.count("mma.sync.m16n8k8.tf32 at ") == 2, err  # both sites named


def test_mma_on_a_partial_warp_is_an_error(driver, tmp_path):
    z = {"a": np.zeros(128, np.uint32), "b": np.zeros(64, np.uint32), "c": np.zeros(128, np.float32)}
    rc, err, _ = run_mode(driver, "mma_partial_warp", z, "forward", tmp_path, {})
    assert rc == 3 and "needs all 32 lanes" in err, err


@pytest.mark.parametrize("variant", ["ucontext", "no-cuda-toolkit", "asan"])
def test_models_in_other_emulator_builds(tmp_path, variant):
    """The models do not depend on the fiber library or CUDA's vector types, and the ASan
    + UBSan build finds nothing out of bounds in them."""
    kw = {"ucontext": {"fibers": "ucontext"}, "no-cuda-toolkit": {"toolkit": False}, "asan": {"sanitize": True}}
    try:
        exe = sb.build([DRIVER], tmp_path, include_dirs=[sb.SIMT_DIR], **kw[variant])
    except RuntimeError as e:  # pragma: no cover - a compiler without libasan
        if variant != "asan":
            raise
        pytest.skip(f"no AddressSanitizer runtime: {e}")
    rng = np.random.default_rng(15)
    cases = [(mode, *TILE_CASES[mode](rng)) for mode in TILE_CASES]
    cases.append(("pipeline", *pipeline_case(rng, 64, 16, 20)))
    for mode, inputs, want in cases:
        rc, err, got = run_mode(exe, mode, inputs, "shuffle:4", tmp_path, {"D": np.float32},
                                env={"ASAN_OPTIONS": "detect_leaks=0"})
        assert rc == 0, err[-3000:]
        np.testing.assert_array_equal(got["D"].reshape(want.shape), want, err_msg=mode)


def test_cp_async_misaligned_copy_is_an_error(driver, tmp_path):
    """A 16-byte copy needs 16-byte aligned addresses: K = 2 puts A's rows 8 bytes apart."""
    inputs, _ = pipeline_case(np.random.default_rng(13), 32, 8, 4)
    inputs["dims"] = np.array([32, 8, 2], np.int32)
    rc, err, _ = run_mode(driver, "pipeline", inputs, "forward", tmp_path, {})
    assert rc == 3 and "not aligned" in err, err


# ---------------------------------------------------------------- nvcc
def _nvcc():
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    found = shutil.which("nvcc") or str(pathlib.Path(cuda_home) / "bin" / "nvcc")
    return found if pathlib.Path(found).exists() else None


def _cuobjdump():
    """cuobjdump from PATH, the toolkit, or the nvidia-cuda-cuobjdump wheel."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    nvcc = _nvcc()
    if nvcc and (pathlib.Path(nvcc).parent / "cuobjdump").exists():
        return str(pathlib.Path(nvcc).parent / "cuobjdump")
    try:
        import nvidia
    except ImportError:
        return None
    for root in getattr(nvidia, "__path__", []):
        for p in sorted(pathlib.Path(root).glob("*/bin/cuobjdump")):
            return str(p)
    return None


@pytest.fixture(scope="module")
def cubins(tmp_path_factory):
    """The test kernels (every wrapper) compiled by nvcc for sm_80 and sm_90:
    arch -> (compiled, cubin path, nvcc's stderr)."""
    if _nvcc() is None:
        pytest.skip("needs nvcc (the CUDA toolkit)")
    out = tmp_path_factory.mktemp("cubin")
    results = {}
    for arch in ("80", "90"):
        cubin = out / f"ptx_sm{arch}.cubin"
        cmd = [_nvcc(), "-cubin", f"-arch=sm_{arch}", "-std=c++17", "-I" + str(sb.CSRC), "-I" + str(sb.SIMT_DIR),
               str(sb.SIMT_DIR / "ptx_nvcc_check.cu"), "-o", str(cubin)]
        r = subprocess.run(cmd, check=False, capture_output=True, text=True)
        results[arch] = (r.returncode == 0, cubin, r.stderr)
    return results


@pytest.mark.parametrize("arch", ["80", "90"])
def test_wrappers_compile_with_nvcc(cubins, arch):
    compiled, _, stderr = cubins[arch]
    assert compiled, f"sm_{arch}: {stderr[-4000:]}"


@pytest.mark.parametrize("arch", ["80", "90"])
def test_sass_has_the_wrapped_instructions(cubins, arch):
    """mma -> HMMA; each ldmatrix form -> LDSM (.2/.4: x2/x4, MT88: .trans); cp.async ->
    LDGSTS of 16 (BYPASS: .cg), 8 and 4 bytes (ZFILL where the src-size may be short), commit
    -> LDGDEPBAR, wait_group -> DEPBAR.LE."""
    tool = _cuobjdump()
    if tool is None:
        pytest.skip("no cuobjdump to read the SASS (pip install nvidia-cuda-cuobjdump)")
    compiled, cubin, _ = cubins[arch]
    assert compiled, f"sm_{arch}: nvcc failed"
    sass = subprocess.run([tool, "-sass", str(cubin)], capture_output=True, text=True, check=True).stdout
    ops = set(re.findall(r"\b(?:HMMA|LDSM|LDGSTS|LDGDEPBAR|DEPBAR)[.A-Z0-9]*", sass))
    want = {"HMMA.1688.F32.TF32", "HMMA.16816.F32.BF16", "LDSM.16.M88", "LDSM.16.M88.2", "LDSM.16.M88.4",
            "LDSM.16.MT88", "LDSM.16.MT88.2", "LDSM.16.MT88.4", "LDGSTS.E.BYPASS.128", "LDGSTS.E.BYPASS.128.ZFILL",
            "LDGSTS.E.64.ZFILL", "LDGDEPBAR", "DEPBAR.LE"}
    assert want <= ops, f"sm_{arch}: missing {sorted(want - ops)} (found {sorted(ops)})"
    assert any(op == "LDGSTS.E" or op.startswith("LDGSTS.E.ZFILL") for op in ops), sorted(ops)  # 4 bytes
