"""The convolution kernels on the SIMT emulator, outside the extension (ARCHITECTURE.md §5, the
idea of tests/test_simt.py applied to csrc/conv_*.cuh): tests/simt/conv_driver.cpp runs
them against a double-precision loop in every thread order, and deleting any one
__syncthreads from a convolution kernel gives a wrong answer in at least one order; so does
deleting or weakening a cp.async wait of conv_wgrad_kernel2's pipeline (the emulator lands a
copy only at the wait that covers it: a stage read before it reads NaN)."""
from __future__ import annotations

import os
import subprocess

import pytest
import simt_build as sb

pytestmark = pytest.mark.skipif(sb.compiler() is None, reason="needs g++")

ORDERS = ("forward", "reverse", "shuffle:1", "shuffle:2")
DRIVER = sb.SIMT_DIR / "conv_driver.cpp"
# header -> the driver's argument that runs that header's kernels
KERNEL_FILES = {"conv_fwd.cuh": "fwd", "conv_dgrad.cuh": "dgrad", "conv_wgrad.cuh": "wgrad"}


def _run(exe, which, order):
    """sb.run with the driver's argument (which kernels to check)."""
    env = dict(os.environ, CCN_SIMT_ORDER=order)
    return subprocess.run([str(exe), which], check=False, capture_output=True, text=True, env=env, timeout=120)


def test_conv_kernels_pass_in_every_order(tmp_path):
    exe = sb.build([DRIVER], tmp_path)
    for order in ORDERS:
        r = _run(exe, "all", order)
        assert r.returncode == 0, f"{order}: {r.stdout}{r.stderr}"
        assert r.stdout.count("match") == 41 and "MISMATCH" not in r.stdout, r.stdout


@pytest.mark.parametrize("header", list(KERNEL_FILES))
def test_removing_any_syncthreads_from_a_conv_kernel_is_caught(tmp_path, header):
    """Delete each __syncthreads of the kernel file in turn: every mutant must give a wrong
    answer in at least one thread order (conv_fwd.cuh is the issue's acceptance criterion;
    dgrad and wgrad are checked the same way)."""
    for line, mutant_dir in sb.syncthreads_mutants(header, tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        caught = []
        for order in ORDERS:
            if _run(exe, KERNEL_FILES[header], order).returncode != 0:
                caught.append(order)
                break  # one order suffices
        assert caught, f"removing the __syncthreads on line {line} of {header} went unnoticed"


def test_removing_any_cp_async_wait_from_conv_fwd_is_caught(tmp_path):
    """Delete each cp.async wait of conv_fwd_kernel2's pipeline in turn: a stage is read
    before its copies landed (NaN in the emulator's model), in every thread order."""
    n = 0
    for line, mutant_dir in sb.text_mutants(sb.CSRC / "conv_fwd.cuh", r"\bcp_async_wait_group<[^>]*>\(\)\s*;", ";",
                                            tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if _run(exe, "fwd", o).returncode == 0]
        assert not passed, f"removing the cp_async_wait_group on line {line} of conv_fwd.cuh passes in {passed}"
        n += 1
    assert n >= 1


@pytest.mark.parametrize(
    "pattern,replacement",
    [
        (r"\bcp_async_wait_group<[^>]*>\(\)\s*;", ";"),          # the wait deleted
        (r"\bcp_async_wait_group<S - 2>", "cp_async_wait_group<S - 1>"),  # covers one group too few
        (r"\bcp_async_commit_group\(\)\s*;", ";"),               # a commit deleted: a wait covers nothing
    ],
    ids=["wait_deleted", "wait_one_short", "commit_deleted"])
def test_broken_wgrad_pipeline_is_caught(tmp_path, pattern, replacement):
    """Each mutant of conv_wgrad_kernel2's cp.async pipeline (every matching line in turn)
    gives a wrong dw in every thread order."""
    header = sb.CSRC / "conv_wgrad.cuh"
    n = 0
    for line, mutant_dir in sb.text_mutants(header, pattern, replacement, tmp_path):
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        passed = [o for o in ORDERS if _run(exe, "wgrad", o).returncode == 0]
        assert not passed, f"conv_wgrad.cuh:{line} ({pattern!r} -> {replacement!r}) passes in {passed}"
        n += 1
    assert n >= 1


def test_wgrad_kernels_under_sanitizers(tmp_path):
    """AddressSanitizer and UBSan over the driver's wgrad cases (all three kernels): no copy
    reads outside x or dy (the zero-fill copies of padding, ragged rows and columns read
    nothing) and no shared-memory stage is overrun."""
    exe = sb.build([DRIVER], tmp_path, sanitize=True)
    env = dict(os.environ, CCN_SIMT_ORDER="shuffle:2", ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run([str(exe), "wgrad"], check=False, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "MISMATCH" not in r.stdout and r.stdout.count("match") == 25, \
        f"{r.stdout}{r.stderr[-3000:]}"
    assert "runtime error" not in r.stderr, r.stderr[-3000:]


def test_fwd_kernels_under_sanitizers(tmp_path):
    """AddressSanitizer and UBSan over the driver's forward cases (all three kernels): the
    zero-fill copies of padding, taps past Kgemm and rows past M read nothing, and kernel3's
    tap table stays inside its shared arrays."""
    exe = sb.build([DRIVER], tmp_path, sanitize=True)
    env = dict(os.environ, CCN_SIMT_ORDER="shuffle:1", ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run([str(exe), "fwd"], check=False, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "MISMATCH" not in r.stdout and r.stdout.count("match") == 12, \
        f"{r.stdout}{r.stderr[-3000:]}"
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
