"""The benchmarks of bench/ run in CPU mode (ARCHITECTURE.md §9: on the CPU the benchmarks still
run, so the harness itself is always tested): each in --smoke mode as a subprocess, its
table printed, every timed row validated against the float64 reference first, its JSON
readable; a row without our figure fails the run. And
bench/gpu_check.sh's dry run: on a machine without a GPU it checks its prerequisites,
says "no GPU" and exits 2 (not 1, which means a failed step).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_support import bench_module

import cuda_convnet as ccn

ROOT = Path(__file__).resolve().parents[1]


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


def check_validated(rows, tol):
    """Every row with a time was validated first: a finite error below the tolerance."""
    for r in rows:
        assert r["status"] == "ok", r
        assert math.isfinite(r["err_ours"]) and r["err_ours"] <= tol, r


def assert_every_row_has_our_figure(rows):
    """No row may pass without a measurement of ours (an op a backend lacks, skipped): ours_ms
    (conv, GEMM rows) or ours_us (memory-bound rows)."""
    missing = [(r.get("layer"), r.get("op"), r.get("status")) for r in rows
               if not (r.get("ours_ms") or r.get("ours_us") or 0) > 0]
    assert not missing, f"rows without our figure: {missing}"


def test_conv_bench_cpu_smoke(tmp_path):
    out, doc = run_bench("conv_bench.py", "--smoke", "--backend", "cpu", "--layers", "conv2,conv3/t",
                         tmp_path=tmp_path)
    rows = doc["rows"]
    assert [(r["layer"], r["op"]) for r in rows] == [
        (layer, op) for layer in ("conv2", "conv3/t") for op in ("fwd", "dgrad", "wgrad", "bwd")]
    assert "err ours" in out and "ours/" in out
    check_validated(rows, doc["env"]["tol"])
    # every direction, dgrad and wgrad included, is validated and timed on its own
    assert_every_row_has_our_figure(rows)
    assert all(r["status"] == "ok" and r["gflop"] > 0 for r in rows), rows
    if have_torch():
        assert all(r["base_ms"] > 0 and r["err_base"] < 1e-4 for r in rows), rows
        assert all(r["ratio"] > 0 for r in rows)


def test_conv_bench_fails_a_row_without_our_figure(tmp_path, monkeypatch):
    """A backend without conv2d_wgrad: that row has no figure, and the run exits 1."""
    conv_bench = bench_module("conv_bench")

    class NoWgrad:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "conv2d_wgrad":
                raise AttributeError(name)
            return getattr(self._inner, name)

    real = ccn.backend
    monkeypatch.setattr(ccn, "backend", lambda name: NoWgrad(real(name)))
    out = tmp_path / "conv.json"
    assert conv_bench.main(["--smoke", "--backend", "cpu", "--layers", "conv2", "--json", str(out)]) == 1
    rows = json.loads(out.read_text())["rows"]
    with pytest.raises(AssertionError, match=r"rows without our figure: \[\('conv2', 'wgrad'"):
        assert_every_row_has_our_figure(rows)


@pytest.mark.emu
def test_conv_bench_emu_times_every_direction(tmp_path):
    _, doc = run_bench("conv_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", "--layers", "conv4",
                       tmp_path=tmp_path)
    check_validated(doc["rows"], doc["env"]["tol"])
    # each direction also with each kernel version forced, side by side (conv4: C/groups and
    # K/groups % 4 == 0, so every version runs)
    assert [r["op"] for r in doc["rows"]] == ["fwd", "fwd v1", "fwd v2", "fwd v3", "dgrad", "dgrad v1", "dgrad v2",
                                              "wgrad", "wgrad v1", "wgrad v2", "wgrad v3", "wgrad v4", "wgrad v5",
                                              "bwd"]
    assert [r.get("version") for r in doc["rows"][:4]] == [None, 1, 2, 3]
    assert_every_row_has_our_figure(doc["rows"])


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
def test_kernel_bench_emu_smoke(tmp_path):
    _, doc = run_bench("kernel_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", tmp_path=tmp_path)
    rows = doc["rows"]
    check_validated(rows, doc["env"]["tol"])
    assert all(r["status"] == "ok" and (r.get("ours_us") or r.get("ours_ms") or 0) > 0 for r in rows), rows


# ------------------------------------------------------------------ kernel versions side by side

def test_every_versioned_op_has_its_family_in_the_benches():
    """harness.versions knows the kernel family of every op with kernel versions, and finds
    at least two versions of each in csrc/."""
    from cuda_convnet.backends.kernel_ops.base import VERSIONED_OPS

    versions = bench_module("harness.versions")
    assert sorted(versions.FAMILY) == sorted(VERSIONED_OPS)
    for op, family in versions.FAMILY.items():
        assert len(versions.family_versions(family)) >= 2, (op, family)
    assert versions.versions(ccn.backend("cpu"), "lrn") == []  # the reference has no versions


@pytest.mark.emu
def test_kernel_bench_times_every_version_side_by_side(tmp_path):
    _, doc = run_bench("kernel_bench.py", "--smoke", "--backend", "emu", "--shrink", "8", "--only", "lrn,gemm",
                       tmp_path=tmp_path)
    rows = doc["rows"]
    check_validated(rows, doc["env"]["tol"])
    assert_every_row_has_our_figure(rows)
    mem = {r["op"]: r for r in rows if "layer" not in r}
    for op in ("lrn", "lrn_backward"):
        for where in ("conv1", "conv2"):
            assert f"{op} {where}" in mem  # the launcher's pick
            for v in (1, 2):
                assert mem[f"{op} {where} v{v}"]["version"] == v
    gemm = {(r["layer"], r["op"]): r for r in rows if "layer" in r}
    for fc in ("fc6", "fc7", "fc8"):
        for d in ("fwd", "dgrad", "wgrad"):
            assert (fc, d) in gemm and gemm[(fc, f"{d} v1")]["version"] == 1 and gemm[(fc, f"{d} v2")]["version"] == 2


@pytest.mark.emu
def test_kernel_bench_fails_a_version_row_without_our_figure(tmp_path, monkeypatch):
    """LRN's version 1 broken: its rows have no figure, the run exits 1 and the check names them."""
    kernel_bench = bench_module("kernel_bench")
    emu = ccn.backend("emu")
    real = emu.lrn

    def lrn(*args, **kwargs):
        if emu.kernel_versions.get("lrn") == 1:
            raise ValueError("lrn: kernel 1 unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(emu, "lrn", lrn)
    out = tmp_path / "kernel.json"
    assert kernel_bench.main(["--smoke", "--backend", "emu", "--shrink", "8", "--only", "lrn conv1",
                              "--json", str(out)]) == 1
    rows = json.loads(out.read_text())["rows"]
    assert [r["op"] for r in rows] == ["lrn conv1", "lrn conv1 v1", "lrn conv1 v2"]
    with pytest.raises(AssertionError, match=r"rows without our figure: \[\(None, 'lrn conv1 v1'"):
        assert_every_row_has_our_figure(rows)


@pytest.mark.emu
def test_conv_bench_a_version_that_cannot_run_a_layer_is_a_note_not_a_row():
    """conv_fwd_kernel2 needs C/groups % 4 == 0: on a C = 3 layer it gets no row, a note."""
    cb = bench_module("conv_bench")
    timing = bench_module("harness.timing").timing_for(bench_module("harness.devices").CpuDevice(None), True, 0)
    device = bench_module("harness.devices").CpuDevice(None)
    layer = cb.Layer(("c3", 9, 3, 4, 3, 1, 1, 1), batch=1)
    rows = cb.bench_layer(layer, device, ccn.backend("emu"), None, timing, seed=5, tol=cb.TOL)
    assert [r["op"] for r in rows] == ["fwd", "fwd v1", "fwd v3", "dgrad", "dgrad v1", "wgrad", "wgrad v1", "wgrad v3",
                                       "wgrad v5", "bwd"]
    assert_every_row_has_our_figure(rows)
    assert rows[1]["version"] == 1 and rows[1]["err_ours"] <= cb.TOL
    assert list(rows[0]["versions_not_run"]) == [2] and "kernel2" in rows[0]["versions_not_run"][2]
    # dgrad's and wgrad's kernel2 (and wgrad's kernel4) need C/groups % 4 == 0 too; wgrad's
    # kernel3 and kernel5 only K/groups % 4 == 0 (K = 4)
    by_op = {r["op"]: r for r in rows}
    assert list(by_op["dgrad"]["versions_not_run"]) == [2] and list(by_op["wgrad"]["versions_not_run"]) == [2, 4]


@pytest.mark.slow
def test_net_bench_cpu_smoke(tmp_path):
    out, doc = run_bench("net_bench.py", "--smoke", "--backend", "cpu", tmp_path=tmp_path)
    rows = doc["rows"]
    ours = [r for r in rows if r["impl"] == "ours"]
    assert {(r["towers"], r["mode"]) for r in ours} == {(t, m) for t in ("2", "1 (grouped)")
                                                        for m in ("train", "infer")}
    assert all(r["status"] == "ok" and r["images_per_s"] > 0 for r in ours), ours
    # validated against the float64 cpu twin (gradients' tolerance 2e-2, the largest)
    assert all(r["checked"] == "float64 cpu twin" and math.isfinite(r["err"]) and r["err"] <= 2e-2
               for r in ours), ours
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


GPU_CHECK = ROOT / "bench" / "gpu_check.sh"
STEP_ORDER = ["build", "info", "memcheck", "net_bench", "conv_bench", "kernel_bench", "precision", "model",
              "racecheck", "cuda_tests", "torch_compile"]


def _gpu_check_plan():
    """(step limits in order, margin, default deadline) parsed from the script itself."""
    text = GPU_CHECK.read_text()
    block = text[text.index("STEP_LIMITS=("):]
    block = block[:block.index("\n)\n")]
    limits = [(m.group(1), int(m.group(2))) for m in re.finditer(r"^\s+(\w+)=(\d+)", block, re.M)]
    margin = int(re.search(r"^MARGIN_S=(\d+)", text, re.M).group(1))
    deadline = int(re.search(r"GPU_CHECK_DEADLINE_S:-(\d+)", text).group(1))
    return limits, margin, deadline, text


def test_gpu_check_limits_fit_its_deadline_in_order_of_value():
    limits, margin, deadline, text = _gpu_check_plan()
    assert [name for name, _ in limits] == STEP_ORDER
    total = sum(limit for _, limit in limits)
    assert total + margin <= deadline, f"step limits {total} s + margin {margin} s > deadline {deadline} s"
    assert margin >= 30
    # the steps run in that order: each `step NAME` / `sanitize NAME` call, in the script's order
    calls = re.findall(r"^\s*(?:if [^\n]*?)?(?:step|sanitize) (\w+)", text, re.M)
    assert [c for c in calls if c in dict(limits)] == STEP_ORDER
    assert "CCN_SYNC_LAUNCHES=1" in text and "--kernel-name" in text
    assert "lent" not in text and "only 8" not in text


def _run_gpu_check(tmp_path, *args, fake_missing=""):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, GPU_CHECK_FAKE_MISSING=fake_missing)
    return subprocess.run(["bash", str(GPU_CHECK), *args], capture_output=True, text=True, timeout=120, env=env)


FAKE = ["PIL", "tqdm", "sklearn", "matplotlib", "xdist", "cmake", "externally-managed", "nvcc"]


def test_gpu_check_names_each_missing_piece(tmp_path):
    """Prerequisites are checked before building: one MISSING line per missing piece, exit 3."""
    proc = _run_gpu_check(tmp_path, "--check-only", fake_missing=" ".join(FAKE))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [ln.split()[0] for ln in proc.stdout.splitlines() if " MISSING " in ln]
    for piece in FAKE:
        assert lines.count(piece) == 1, (piece, proc.stdout)
    assert len(lines) == len(set(lines))  # one line per piece
    assert "pip install Pillow" in proc.stdout and "pip install scikit-learn" in proc.stdout
    assert "need >= 3.24" in proc.stdout and "PEP 668" in proc.stdout
    assert "Nothing built" in proc.stdout
    assert not (tmp_path / "summary.md").exists()  # --check-only writes nothing else


def test_gpu_check_names_the_cupy_wheel_of_nvccs_cuda(tmp_path):
    """A missing CuPy is named with the wheel of the CUDA major version nvcc builds for."""
    nvcc = shutil.which("nvcc")
    release = re.search(r"release (\d+)", subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
                        ) if nvcc else None
    proc = _run_gpu_check(tmp_path, "--check-only", fake_missing="cupy")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.split()[:2] == ["cupy", "MISSING"])
    if release:
        assert f"pip install cupy-cuda{release[1]}x, for nvcc's CUDA {release[1]}" in line, line
    else:
        assert "cupy-cuda13x or cupy-cuda12x" in line, line
    proc = _run_gpu_check(tmp_path / "no-nvcc", "--check-only", fake_missing="cupy nvcc")
    assert "pip install cupy-cuda13x or cupy-cuda12x, matching the CUDA toolkit" in proc.stdout, proc.stdout


def test_gpu_check_without_a_gpu_builds_nothing(tmp_path):
    if _has_gpu():  # never the whole run from inside the test suite
        pytest.skip("a GPU is present")
    proc = _run_gpu_check(tmp_path)
    assert proc.returncode in (2, 3), proc.stdout + proc.stderr  # 1 would mean a failed step
    assert "prerequisites:" in proc.stdout and "nvcc" in proc.stdout and "cupy" in proc.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert ("no GPU" in summary and "dry run" in summary) if proc.returncode == 2 else "missing" in summary
    assert (tmp_path / "logs" / "prerequisites.log").exists()
    assert not (tmp_path / "logs" / "build.log").exists()


def _net_bench():
    return bench_module("net_bench")


def _planted(op, scale):
    """`op` with its first output scaled (the first one computed: a conv whose input needs no
    gradient returns dx=None, and then its dw is the wrong one): a kernel wrong by a small
    relative amount."""
    def wrong(*args, **kwargs):
        out = op(*args, **kwargs)
        if isinstance(out, tuple):
            i = next(i for i, o in enumerate(out) if o is not None)
            return out[:i] + (out[i] * np.float32(scale),) + out[i + 1:]
        return out * np.float32(scale)
    return wrong


@pytest.mark.emu
@pytest.mark.parametrize("op,scale,caught_by", [
    (None, 1.0, None),                          # the honest kernels pass
    ("max_pool", 1.01, "predict"),              # a forward kernel 1 % off
    ("lrn", 0.99, "predict"),
    ("conv2d_backward", 1.05, "grad"),          # a backward kernel's gradient 5 % off
    ("max_pool_backward", 1.05, "grad"),
])
def test_net_bench_validation_catches_a_wrong_kernel(monkeypatch, op, scale, caught_by):
    """net_bench's validation (ours against its float64 cpu twin) on a small net on the
    emulated kernels, with one kernel op replaced by a slightly wrong one."""
    from net_support import tiny_net

    nb = _net_bench()
    emu = ccn.backend("emu")
    if op is not None:
        monkeypatch.setattr(emu, op, _planted(getattr(emu, op), scale))
    net = tiny_net(towers=1, devices=("emu",), dtype="float32", seed=2)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4,) + net.input_shape).astype(np.float32)
    labels = rng.integers(0, 5, 4).astype(np.int32)
    err, ok, note = nb.validate_against_twin(net, x, labels)
    if caught_by is None:
        assert ok and err < nb.TOL, note
    else:
        assert not ok, f"a wrong {op} passed validation: {note}"
        assert caught_by in note


def test_net_bench_twin_has_ours_weights():
    """cpu_twin copies the Parameter's data (not the Parameter object), in float64."""
    from net_support import tiny_net

    nb = _net_bench()
    net = tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32", seed=4)
    twin = nb.cpu_twin(net)
    assert twin.dtype == np.float64 and twin.device_names == ["cpu"] * 2
    for p, q in zip(net.parameters(), twin.parameters()):
        assert q.name == p.name and q.data.dtype == np.float64
        np.testing.assert_array_equal(q.data, p.data.astype(np.float64))


def _children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_net_bench_sigterm_kills_the_compile_child(tmp_path):
    """`timeout` sends SIGTERM to net_bench at a step limit; the torch.compile child runs in
    a process group of its own and must die with it, not outlive the step."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "net_bench.py"), "--compile-only", "--smoke",
                             "--backend", "cpu", "--compile-timeout", "600", "--json", str(tmp_path / "c.json")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child, t_end = None, time.monotonic() + 120
        while child is None and time.monotonic() < t_end and proc.poll() is None:
            kids = _children(proc.pid)
            child = kids[0] if kids else None
            time.sleep(0.2)
        if child is None:
            pytest.skip(f"net_bench started no compile child (exit {proc.poll()}; torch missing?)")
        time.sleep(1.0)  # the parent is now waiting on the child
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        t_end = time.monotonic() + 10
        while _alive(child) and time.monotonic() < t_end:
            time.sleep(0.1)
        assert not _alive(child), "the torch.compile child outlived net_bench"
    finally:
        if proc.poll() is None:
            proc.kill()
