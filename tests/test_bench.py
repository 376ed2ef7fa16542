"""The benchmarks of bench/ run in CPU mode (ARCHITECTURE.md §9: on the CPU the benchmarks still
run, so the harness itself is always tested): each in --smoke mode as a subprocess, its
table printed, every timed row validated against the float64 reference first, its JSON
readable; ops a backend lacks show as "not implemented", never as a number. And
bench/gpu_check.sh's dry run: on a machine without a GPU it checks its prerequisites,
says "no GPU" and exits 2 (not 1, which means a failed step).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cuda_convnet as ccn

ROOT = Path(__file__).resolve().parents[1]
OK_STATUSES = {"ok", "not implemented", "in bwd"}


def run_bench(script, *args, tmp_path, timeout=240):
    out = tmp_path / f"{Path(script).stem}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["table"] in proc.stdout  # the table is printed
    assert doc["env"]["commit"] and doc["env"]["date"]
    return proc.stdout, doc


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def emu_available():
    try:
        ccn.backend("emu")
    except ImportError:
        return False
    return True


def check_validated(rows, tol):
    """Every row with a time was validated first: a finite error below the tolerance."""
    for r in rows:
        assert r["status"] in OK_STATUSES, r
        if r.get("ours_ms") is not None or r.get("ours_us") is not None:
            assert r["status"] == "ok", r
            assert math.isfinite(r["err_ours"]) and r["err_ours"] <= tol, r


def test_conv_bench_cpu_smoke(tmp_path):
    out, doc = run_bench("conv_bench.py", "--smoke", "--backend", "cpu", "--layers", "conv2,conv3/t",
                         tmp_path=tmp_path)
    rows = doc["rows"]
    assert [(r["layer"], r["op"]) for r in rows] == [
        (layer, op) for layer in ("conv2", "conv3/t") for op in ("fwd", "dgrad", "wgrad", "bwd")]
    assert "err ours" in out and "ours/" in out
    check_validated(rows, doc["env"]["tol"])
    # the reference has conv2d and conv2d_backward: fwd and bwd are timed
    timed = [r for r in rows if r["op"] in ("fwd", "bwd")]
    assert all(r["status"] == "ok" and r["ours_ms"] > 0 and r["gflop"] > 0 for r in timed), timed
    if have_torch():
        assert all(r["base_ms"] > 0 and r["err_base"] < 1e-4 for r in rows), rows
        assert all(r["ratio"] > 0 for r in timed)


@pytest.mark.emu
@pytest.mark.skipif(not emu_available(), reason="cuda_convnet._emu not built")
def test_conv_bench_emu_reports_missing_ops(tmp_path):
    _, doc = run_bench("conv_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", "--layers", "conv4",
                       tmp_path=tmp_path)
    check_validated(doc["rows"], doc["env"]["tol"])
    for r in doc["rows"]:  # either the emulated kernel, validated and timed, or no number at all
        if r["status"] != "ok":
            assert r.get("ours_ms") is None and r.get("ours_tflops") is None, r


def test_kernel_bench_cpu_smoke(tmp_path):
    out, doc = run_bench("kernel_bench.py", "--smoke", "--backend", "cpu", tmp_path=tmp_path)
    rows = doc["rows"]
    check_validated(rows, doc["env"]["tol"])
    by_op = {r["op"]: r for r in rows if "layer" not in r}
    for op in ("lrn conv1", "lrn_backward conv2", "max_pool conv1", "max_pool_backward conv5", "relu conv1",
               "dropout fc6", "softmax_cross_entropy", "sgd_update"):
        assert by_op[op]["status"] == "ok" and by_op[op]["ours_gbs"] > 0, by_op[op]
    gemm = [r for r in rows if "layer" in r]
    assert [(r["layer"], r["op"]) for r in gemm] == [
        (fc, d) for fc in ("fc6", "fc7", "fc8") for d in ("fwd", "dgrad", "wgrad")]
    assert all(r["status"] == "ok" and r["ours_tflops"] > 0 for r in gemm), gemm
    assert doc["env"]["copy_bandwidth_gbs"] > 0 and "% copy" in out


@pytest.mark.emu
@pytest.mark.skipif(not emu_available(), reason="cuda_convnet._emu not built")
def test_kernel_bench_emu_smoke(tmp_path):
    _, doc = run_bench("kernel_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", tmp_path=tmp_path)
    rows = doc["rows"]
    check_validated(rows, doc["env"]["tol"])
    by_op = {r["op"]: r for r in rows if "layer" not in r}
    assert by_op["relu conv1"]["status"] == "ok"  # the kernels that exist are measured
    assert all(r["status"] == "ok" for r in rows if "layer" in r)  # the GEMM kernel
    for r in rows:
        if r["status"] == "not implemented":
            assert r.get("ours_us") is None and r.get("ours_gbs") is None, r


def test_net_bench_cpu_smoke(tmp_path):
    out, doc = run_bench("net_bench.py", "--smoke", "--backend", "cpu", tmp_path=tmp_path)
    rows = doc["rows"]
    try:
        from cuda_convnet import SGD, Net, models  # noqa: F401
        has_models = True
    except ImportError:
        has_models = False
    ours = [r for r in rows if r["impl"] == "ours"]
    if has_models:  # the real path, once models is merged
        assert {r["mode"] for r in ours} == {"train", "infer"}
        assert all(r["status"] == "ok" and r["images_per_s"] > 0 for r in ours), ours
        assert all(math.isfinite(r["err"]) and r["err"] <= 1e-3 for r in ours), ours
    else:
        assert "skipped: models not available" in out
        assert ours and all(r["status"] == "skipped: models not available" for r in ours)
    if have_torch():
        eager = [r for r in rows if r["impl"] == "torch eager"]
        assert {r["mode"] for r in eager} == {"train", "infer"}
        # the PyTorch net is the paper's: same outputs as the float64 reference
        assert all(r["status"] == "ok" and r["err"] < 1e-4 and r["images_per_s"] > 0 for r in eager), eager


def _has_gpu():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "GPU " in out


def test_gpu_check_dry_run(tmp_path):
    script = ROOT / "bench" / "gpu_check.sh"
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    if _has_gpu():  # never the whole run from inside the test suite: only the checks
        proc = subprocess.run(["bash", str(script), "--check-only"], capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode in (0, 3), proc.stdout + proc.stderr
        return
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # 2: no GPU; 1 would mean a failed step
    assert "prerequisites:" in proc.stdout and "nvcc" in proc.stdout and "cupy" in proc.stdout
    assert "gpu_check: no GPU" in proc.stdout, proc.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert "no GPU" in summary and "dry run" in summary
    assert len(list(tmp_path.iterdir())) <= 8
