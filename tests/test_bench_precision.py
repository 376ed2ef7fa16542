"""The benchmarks' --precision rows in CPU mode (bench/harness/precision.py): each precision
validated against the float64 reference on rounded operands and against PyTorch at the
same precision before it is timed; a wrong result at one precision is MISMATCH and fails
the run; a bad --precision is an argparse error."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cuda_convnet as ccn
from cuda_convnet.checks import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script, *args, tmp_path, timeout=300):
    out = tmp_path / f"{Path(script).stem}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["table"] in proc.stdout
    return proc.stdout, doc


def bench_module(name):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def precision_rows(doc):
    """The rows per precision (not the fp32 kernel-version rows a kernel backend adds)."""
    assert all(r["precision"] == "fp32" for r in doc["rows"] if "version" in r)
    return [r for r in doc["rows"] if "version" not in r]


def check_rows(doc, key_ms="ours_ms"):
    torch_present = any("base_ms" in r for r in doc["rows"])
    for r in doc["rows"]:
        assert r["status"] == "ok" and r[key_ms] > 0, r
        assert math.isfinite(r["err_ours"]) and r["err_ours"] <= doc["env"]["tol"], r
        if torch_present and "version" not in r:
            assert r["err_vs_base"] <= doc["env"]["vs_base_tol"][r["precision"]], r
            # the rounding shows against a float32 baseline (PyTorch CPU has no TF32) or bf16's
            assert (r["err_vs_base"] > 1e-5) == (r["precision"] in ("tf32", "bf16")), r


def test_conv_bench_rows_per_precision(tmp_path):
    _, doc = run_bench("conv_bench.py", "--smoke", "--backend", "cpu", "--layers", "conv3/t", "--precision", "all",
                       tmp_path=tmp_path)
    assert [(r["precision"], r["op"]) for r in precision_rows(doc)] == [
        (p, op) for p in PRECISIONS for op in ("fwd", "dgrad", "wgrad", "bwd")]
    check_rows(doc)


def test_kernel_bench_gemm_rows_per_precision(tmp_path):
    _, doc = run_bench("kernel_bench.py", "--smoke", "--backend", "cpu", "--only", "gemm", "--precision",
                       "bf16,tf32", tmp_path=tmp_path)
    assert [(r["precision"], r["layer"], r["op"]) for r in precision_rows(doc)] == [
        (p, fc, d) for p in ("tf32", "bf16") for fc in ("fc6", "fc7", "fc8") for d in ("fwd", "dgrad", "wgrad")]
    check_rows(doc)


@pytest.mark.emu
def test_conv_and_gemm_rows_per_precision_on_emu(tmp_path):
    """The emulated tensor-core kernels through the benches: every precision validated. Ours
    lands within float32 accumulation error (1e-5) of the reference on rounded operands: a
    kernel that skipped or changed the rounding would be ~2e-4 (tf32) or ~2e-3 (bf16) off."""
    _, doc = run_bench("conv_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", "--layers", "conv4",
                       "--precision", "all", tmp_path=tmp_path)
    _, gemm = run_bench("kernel_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", "--only", "gemm",
                        "--precision", "3xtf32,tf32,bf16", tmp_path=tmp_path)
    for d, n in ((doc, 16), (gemm, 27)):
        assert len(precision_rows(d)) == n
        check_rows(d)
        assert all(r["err_ours"] < 1e-5 for r in d["rows"]), [(r.get("layer"), r["op"], r["err_ours"])
                                                               for r in d["rows"]]


def test_conv_bench_catches_a_wrong_result_at_one_precision(tmp_path, monkeypatch):
    """A backend whose tf32 convolution is 1 % off: those rows are MISMATCH, untimed, and
    the run exits 1; its fp32 rows stay ok."""
    conv_bench = bench_module("conv_bench")

    class OffAtTf32:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            fn = getattr(self._inner, name)
            if not name.startswith("conv2d"):
                return fn

            def call(*args, precision="fp32", **kw):
                out = fn(*args, precision=precision, **kw)
                if precision != "tf32":
                    return out
                if isinstance(out, tuple):
                    return tuple(None if o is None else o * np.float32(1.01) for o in out)
                return out * np.float32(1.01)
            return call

    real = ccn.backend
    monkeypatch.setattr(ccn, "backend", lambda name: OffAtTf32(real(name)) if name == "cpu" else real(name))
    out = tmp_path / "conv.json"
    assert conv_bench.main(["--smoke", "--backend", "cpu", "--layers", "conv3/t", "--precision", "fp32,tf32",
                            "--json", str(out)]) == 1
    rows = json.loads(out.read_text())["rows"]
    assert {r["precision"]: [] for r in rows}.keys() == {"fp32", "tf32"}
    for r in rows:
        if r["precision"] == "fp32":
            assert r["status"] == "ok" and r["ours_ms"] > 0, r
        else:
            assert r["status"] == "MISMATCH" and "ours_ms" not in r and r["err_ours"] > 5e-3, r


@pytest.mark.parametrize("script", ["conv_bench.py", "kernel_bench.py", "net_bench.py"])
def test_bad_precision_is_an_argument_error(script):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", "--backend", "cpu",
                           "--precision", "fp16"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "--precision: 'fp16' is not one of fp32, 3xtf32, tf32, bf16" in proc.stderr


@pytest.mark.parametrize("device", ["cpu", pytest.param("emu", marks=pytest.mark.emu)])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_net_bench_validates_ours_at_each_precision(precision, device):
    """net_bench's check of ours against its float64 cpu twin, at each precision (the twin
    rounds the same GEMM operands: its spec carries the precision), on the small tower net:
    the reference, and the emulated tensor-core kernels."""
    from net_support import tiny_net

    nb = bench_module("net_bench")
    net = tiny_net(towers=1, devices=(device,), dtype="float32", seed=2)
    net.precision = precision
    assert nb.cpu_twin(net).precision == precision
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4,) + net.input_shape).astype(np.float32)
    labels = rng.integers(0, 5, 4).astype(np.int32)
    err, ok, note = nb.validate_against_twin(net, x, labels)
    assert ok and err < nb.TOL, note


def test_precision_step_rows_are_what_the_targets_read(tmp_path):
    """bench/gpu_check.sh's precision step, in CPU mode: the same arguments (one layer, the
    three directions, the three tensor-core precisions; the GEMMs alone) give the rows that
    bench/gpu_targets.py judges: every target measured, with a finite worst ratio."""
    gpu_targets = bench_module("gpu_targets")
    tc = "tf32,bf16,3xtf32"
    _, conv = run_bench("conv_bench.py", "--smoke", "--backend", "cpu", "--layers", "conv3", "--directions",
                        "fwd,dgrad,wgrad", "--precision", tc, tmp_path=tmp_path)
    _, gemm = run_bench("kernel_bench.py", "--smoke", "--backend", "cpu", "--only", "gemm", "--precision", tc,
                        tmp_path=tmp_path)
    assert [(r["precision"], r["op"]) for r in conv["rows"]] == [
        (p, d) for p in PRECISIONS if p != "fp32" for d in ("fwd", "dgrad", "wgrad")]
    assert conv["env"]["directions"] == ["fwd", "dgrad", "wgrad"]
    (tmp_path / "conv_bench.json").rename(tmp_path / gpu_targets.FILES[("conv", "tc")])
    (tmp_path / "kernel_bench.json").rename(tmp_path / gpu_targets.FILES[("fc", "tc")])
    judged = {(t["precision"], t["kind"]): t for t in gpu_targets.targets(tmp_path)}
    for p in ("tf32", "bf16", "3xtf32"):
        assert judged[(p, "conv")]["rows"] == 3 and judged[(p, "fc")]["rows"] == 9
        for kind in ("conv", "fc"):
            t = judged[(p, kind)]
            assert t["status"] in ("PASS", "FAIL") and t["failed"] == 0, t
            if any("base_ms" in r for r in conv["rows"]):  # PyTorch present: every row has a ratio
                assert math.isfinite(t["worst"]) and t["worst"] > 0, t
    for kind in ("conv", "fc", "step"):  # this folder has no float32 run
        assert judged[("fp32", kind)]["status"] == "NOT MEASURED"


@pytest.mark.parametrize("bad", ["fwd,sideways", ""])
def test_conv_bench_bad_directions_is_an_argument_error(bad):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "conv_bench.py"), "--smoke", "--directions", bad],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "--directions" in proc.stderr and "Traceback" not in proc.stderr
