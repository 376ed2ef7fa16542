"""bench/sanitize_subset.py, the program compute-sanitizer runs on a GPU machine: on the
emulated kernels it calls every op of the reference's list once, on shapes that are no
multiple of a tile, and compares each result with the float64 reference; a kernel that is
wrong or that raises is reported by name and fails the run (exit 1) without stopping the
other calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_support import bench_module

import cuda_convnet as ccn
from cuda_convnet import reference

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(.*?)\s+(rel err (\S+) (ok|MISMATCH)|error: .*|not run: .*)$")


def _sanitize_subset():
    return bench_module("sanitize_subset")


def _results(stdout):
    """{call name: (status, rel err or None, line)} from the per-call lines."""
    out = {}
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            status = m.group(4) or m.group(2).split(":")[0]  # ok, MISMATCH, error or not run
            out[m.group(1)] = (status, float(m.group(3)) if m.group(3) else None, line)
    return out


def _op(call_name):
    return call_name.split()[0]


@pytest.mark.emu
def test_every_op_runs_and_agrees_on_the_emulator():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "sanitize_subset.py"), "--backend", "emu"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = _results(proc.stdout)
    assert proc.stdout.rstrip().endswith("sanitize_subset: all ops ok")
    ran = {n: r for n, r in results.items() if r[0] != "not run"}
    assert all(status == "ok" and 0 <= err <= 1e-4 for status, err, _ in ran.values()), results
    # only a forced kernel version may decline a call
    assert all(re.search(r" v\d+$", n) for n in set(results) - set(ran)), results
    # every public op is called, dgrad and wgrad through their own entry points too
    assert sorted(set(reference.__all__) - {_op(n) for n in ran}) == []
    # one line per call (and per forced version), no call printed twice
    ss = _sanitize_subset()
    assert len(results) == len(list(ss.with_versions(ccn.backend("emu"), ss.calls(np.random.default_rng(0)))))


def _with_emu_op(monkeypatch, op, replace):
    """backend("emu") (one instance per process) with `op` replaced by replace(real op)."""
    emu = ccn.backend("emu")
    monkeypatch.setattr(emu, op, replace(getattr(emu, op)))


@pytest.mark.emu
@pytest.mark.parametrize("op,calls", [("lrn_backward", ["lrn_backward"]),
                                      ("conv2d", ["conv2d groups=2", "conv2d groups=2 C/g=4", "conv2d 7x7/4"])])
def test_a_kernel_off_by_a_small_amount_is_a_mismatch(monkeypatch, capsys, op, calls):
    def scaled(fn):
        def wrong(*args, **kwargs):
            out = fn(*args, **kwargs)
            return out * np.float32(1.001)  # 1e-3 relative: ten times the tolerance
        return wrong

    _with_emu_op(monkeypatch, op, scaled)
    assert _sanitize_subset().main(["--backend", "emu"]) == 1
    out = capsys.readouterr().out
    results = _results(out)
    # the op's calls, and each again under every kernel version that can run it
    wrong = {n for n, r in results.items() if _op(n) == op and r[0] != "not run"}
    assert set(calls) <= wrong
    for name in wrong:
        status, err, line = results[name]
        assert status == "MISMATCH" and err == pytest.approx(1e-3, rel=0.05), line
    others = {n: r for n, r in results.items() if _op(n) != op and r[0] != "not run"}
    assert others and all(status == "ok" for status, _, _ in others.values()), others
    assert out.rstrip().endswith(f"sanitize_subset: {len(wrong)} failed")


@pytest.mark.emu
def test_a_kernel_that_raises_is_named_and_the_rest_still_run(monkeypatch, capsys):
    def raising(fn):
        def fails(*args, **kwargs):
            raise RuntimeError("max_pool_kernel: an illegal memory access was encountered\nsecond line")
        return fails

    _with_emu_op(monkeypatch, "max_pool", raising)
    assert _sanitize_subset().main(["--backend", "emu"]) == 1
    out = capsys.readouterr().out
    results = _results(out)
    status, err, line = results["max_pool"]
    assert status == "error" and err is None
    assert line.endswith("error: RuntimeError: max_pool_kernel: an illegal memory access was encountered"), line
    assert results["max_pool_backward"][0] == "ok" and results["train_views 37->32"][0] == "ok"
    assert out.rstrip().endswith("sanitize_subset: 1 failed")


def test_the_reference_against_itself_agrees_to_rounding(capsys):
    """--backend cpu runs the same calls on the float32 reference: each agrees with its
    float64 self to float32 rounding, nowhere exactly zero for the reductions."""
    assert _sanitize_subset().main(["--backend", "cpu"]) == 0
    results = _results(capsys.readouterr().out)
    assert all(status == "ok" and err <= 1e-6 for status, err, _ in results.values()), results
    assert results["linear"][1] > 0 and results["softmax_cross_entropy"][1] > 0


@pytest.mark.emu
def test_every_kernel_version_runs_under_the_sanitizer(capsys):
    """Each version of every versioned op agrees on at least one call; a version that
    declines a call does so only where it cannot run it (a kernel2 or conv_wgrad_kernel4 and
    C/groups % 4 != 0)."""
    versions = bench_module("harness.versions")
    assert _sanitize_subset().main(["--backend", "emu"]) == 0
    results = _results(capsys.readouterr().out)
    for op, family in versions.FAMILY.items():
        for v in versions.family_versions(family):
            ok = [n for n, r in results.items() if _op(n) == op and n.endswith(f" v{v}") and r[0] == "ok"]
            assert ok, (op, v)
    declined = {n: r[2] for n, r in results.items() if r[0] == "not run"}
    assert set(declined) == {"conv2d groups=2 v2", "conv2d 7x7/4 v2", "conv2d_dgrad groups=2 v2",
                             "conv2d_wgrad groups=2 v2", "conv2d_wgrad groups=2 v4"}, declined
    assert all("kernel2 needs" in line or "kernel4 needs" in line for line in declined.values()), declined
    assert results["conv2d groups=2 C/g=4 v2"][0] == "ok"
