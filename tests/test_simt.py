"""The SIMT emulator's self-tests (ARCHITECTURE.md §5): correct kernels give exact answers in
every thread order, and planted bugs are caught — a removed __syncthreads gives a wrong
answer, a divergent barrier raises instead of hanging, and the ASan build reports an
out-of-bounds shared-memory index."""
from __future__ import annotations

import pytest
import simt_build as sb

pytestmark = pytest.mark.skipif(sb.compiler() is None, reason="needs g++")

ORDERS = ("forward", "reverse", "shuffle:1", "shuffle:2")


@pytest.mark.parametrize("fibers,toolkit", [("auto", True), ("ucontext", True), ("auto", False)],
                         ids=["default", "ucontext", "no-cuda-toolkit"])
def test_correct_kernels_exact_in_every_order(tmp_path, fibers, toolkit):
    exe = sb.build([sb.SIMT_DIR / "selftest.cpp"], tmp_path, fibers=fibers, toolkit=toolkit)
    for order in ORDERS:
        # Two OS threads: the self-test also checks that blocks are spread over both.
        r = sb.run(exe, order, env={"CCN_SIMT_THREADS": "2"})
        assert r.returncode == 0, f"{order}: {r.stdout}{r.stderr}"
        assert r.stdout.count("ok ") == 5, r.stdout


def test_bad_order_is_an_error(tmp_path):
    exe = sb.build([sb.SIMT_DIR / "selftest.cpp"], tmp_path)
    r = sb.run(exe, "sideways")
    assert r.returncode != 0
    assert "CCN_SIMT_ORDER" in r.stderr


@pytest.mark.parametrize("toolkit", [True, False], ids=["cuda-vector-types", "simt-vector-types"])
def test_gemm_passes_in_every_order(tmp_path, toolkit):
    exe = sb.build([sb.SIMT_DIR / "gemm_driver.cpp"], tmp_path, toolkit=toolkit)
    for order in ORDERS:
        r = sb.run(exe, order)
        assert r.returncode == 0, f"{order}: {r.stdout}{r.stderr}"
        assert r.stdout.count("match") == 10


def test_removing_any_syncthreads_from_gemm_is_caught(tmp_path):
    """Delete each __syncthreads of the GEMM kernel in turn: every mutant must give a
    wrong answer in at least one thread order."""
    for line, mutant_dir in sb.syncthreads_mutants("gemm.cuh", tmp_path):
        exe = sb.build([sb.SIMT_DIR / "gemm_driver.cpp"], mutant_dir, include_first=mutant_dir)
        caught = [o for o in ORDERS if sb.run(exe, o).returncode != 0]
        assert caught, f"removing the __syncthreads on line {line} of gemm.cuh went unnoticed"


def test_removing_any_cp_async_wait_from_gemm_is_caught(tmp_path):
    """Delete each cp.async wait of gemm_kernel2's pipeline in turn: the stage is read
    before its copies landed (NaN in the emulator's model), in every thread order."""
    n = 0
    for line, mutant_dir in sb.text_mutants(sb.CSRC / "gemm.cuh", r"\bcp_async_wait_group<[^>]*>\(\)\s*;", ";",
                                            tmp_path):
        exe = sb.build([sb.SIMT_DIR / "gemm_driver.cpp"], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if sb.run(exe, o).returncode == 0]
        assert not passed, f"removing the cp_async_wait_group on line {line} of gemm.cuh passes in {passed}"
        n += 1
    assert n >= 1


def test_divergent_barriers_raise(tmp_path):
    exe = sb.build([sb.SIMT_DIR / "planted_divergent.cpp"], tmp_path)
    for order in ("forward", "reverse", "shuffle:3"):
        r = sb.run(exe, order, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("caught ") == 3, r.stdout


def test_asan_build_reports_shared_memory_overflow(tmp_path):
    try:
        exe = sb.build([sb.SIMT_DIR / "planted_oob.cpp"], tmp_path, sanitize=True)
    except RuntimeError as e:  # pragma: no cover - a compiler without libasan
        pytest.skip(f"no AddressSanitizer runtime: {e}")
    r = sb.run(exe, env={"ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode != 0
    assert "AddressSanitizer" in r.stderr and "heap-buffer-overflow" in r.stderr, r.stderr[-2000:]
    assert "finished without a report" not in r.stdout
