"""What a GPU run leaves and how it is read, without a GPU: bench/gpu_check.sh's step plan
(the precision step after the float32 steps, the file names the readers expect, the limits
within the deadline), bench/gpu_targets.py's PASS / FAIL per target and
bench/record_gpu_run.py's bench/RESULTS.md entry, on a gpu_check output folder made here.

The folder's figures are made up (FAKE_*: round, obviously synthetic ratios chosen to land
on each side of the limits): these tests check the reading and the formatting, not any
performance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import bench_module

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECK = (ROOT / "bench" / "gpu_check.sh").read_text()
FAKE_CARD = "NVIDIA H100 80GB HBM3"
FAKE_COMMIT = "fake123"
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7", "fc8")


def _conv_rows(precision, ratio_of, directions=("fwd", "dgrad", "wgrad", "bwd")):
    rows = []
    for layer in CONV_LAYERS:
        for d in directions:
            ratio = ratio_of(layer, d)
            rows.append({"layer": layer, "op": d, "precision": precision, "ours_ms": 1.0 * ratio, "base_ms": 1.0,
                         "ratio": ratio, "status": "ok", "err_ours": 1e-6})
            if precision == "fp32" and d == "fwd":  # a version row: never a target
                rows.append({"layer": layer, "op": "fwd v1", "version": 1, "precision": "fp32", "ours_ms": 9.0,
                             "base_ms": 1.0, "ratio": 9.0, "status": "ok"})
    return rows


def _fc_rows(precision, ratio):
    return [{"layer": fc, "op": d, "precision": precision, "ours_ms": 0.5 * ratio, "base_ms": 0.5, "ratio": ratio,
             "status": "ok", "mnk": "128x4096x9216"} for fc in FC_LAYERS for d in ("fwd", "dgrad", "wgrad")]


def _doc(bench, rows, **extra):
    env = {"device": f"GPU: {FAKE_CARD}", "date": "2026-12-01 10:00 UTC", "commit": FAKE_COMMIT, "batch": 128,
           "torch": "2.99-fake", "cupy": "99.0-fake", "driver_version": 99999}
    return {"bench": bench, "env": dict(env, **extra.pop("env", {})), "rows": rows,
            "table": f"| fake {bench} table |\n|---|", "partial": False, **extra}


@pytest.fixture
def gpu_out(tmp_path):
    """A gpu_check output folder with made-up figures: fp32 conv over its limit at conv2
    dgrad (FAKE 1.50), fp32 FC within (FAKE 1.10), the step within (FAKE 1.00), tf32 conv
    within (FAKE 1.20), bf16 conv with one MISMATCH row, 3xtf32 FC over (FAKE 1.40)."""
    out = tmp_path / "gpu_check_out"
    (out / "logs").mkdir(parents=True)
    conv = _conv_rows("fp32", lambda layer, d: 1.50 if (layer, d) == ("conv2", "dgrad") else 0.90)
    mem = [{"op": "lrn conv1", "shape": "128x55x55x96", "pct_copy": 81.0, "ours_us": 100.0, "status": "ok"},
           {"op": "lrn conv1 v1", "version": 1, "pct_copy": 11.0, "ours_us": 900.0, "status": "ok"},
           {"op": "sgd_update", "pct_copy": 77.0, "ours_us": 500.0, "status": "ok"}]
    kern = mem + _fc_rows("fp32", 1.10)
    conv_tc = []
    for p in ("tf32", "bf16", "3xtf32"):
        conv_tc += _conv_rows(p, lambda layer, d: 1.20, directions=("fwd", "dgrad", "wgrad"))
    bad = next(r for r in conv_tc if r["precision"] == "bf16" and r["layer"] == "conv4" and r["op"] == "wgrad")
    bad.update(status="MISMATCH", ours_ms=None, ratio=None)
    kern_tc = _fc_rows("tf32", 1.05) + _fc_rows("bf16", 1.15) + _fc_rows("3xtf32", 1.40)
    net = [{"impl": "ours", "precision": "fp32", "towers": "2", "mode": "train", "batch": 128,
            "images_per_s": 4000.0, "ms_per_batch": 32.0, "status": "ok"},
           {"impl": "ours", "precision": "fp32", "towers": "1 (grouped)", "mode": "train", "batch": 128,
            "images_per_s": 5000.0, "ms_per_batch": 25.6, "status": "ok"},
           {"impl": "torch eager", "precision": "fp32", "towers": "grouped", "mode": "train", "batch": 128,
            "images_per_s": 5000.0, "ms_per_batch": 25.6, "status": "ok"}]
    docs = {"conv_bench": _doc("conv_bench", conv), "kernel_bench": _doc("kernel_bench", kern,
                                                                         env={"copy_bandwidth_gbs": 3000.0}),
            "conv_bench_tc": _doc("conv_bench", conv_tc), "kernel_bench_tc": _doc("kernel_bench", kern_tc),
            "net_bench": _doc("net_bench", net)}
    for name, doc in docs.items():
        (out / f"{name}.json").write_text(json.dumps(doc))
    (out / "summary.md").write_text(
        "# gpu_check: some steps FAILED\n\n- date: 2026-12-01 10:09 UTC, 530 s of a 540 s deadline\n"
        f"- commit: {FAKE_COMMIT}\n- card: {FAKE_CARD}, 999.99, 81559 MiB\n- toolkit: 99.9, V99.9.99\n"
        "- command: bench/gpu_check.sh \n")
    (out / "state").write_text("build ok\ninfo ok\nconv_bench ok\nprecision FAILED\n")
    (out / "logs" / "info.log").write_text("python 3.11 numpy 2 torch 2.99-fake cupy 99 cudnn 99999\n")
    (out / "logs" / "model.log").write_text(
        "## Predicted H100 times (a model)\n\n| fake |\n\n## Measured / predicted\n\n"
        "| layer | direction | measured ms | predicted ms | measured / predicted |\n|---|---|---|---|---|\n"
        "| conv2 | fwd | 2.000 | 1.000 | 2.00 |\n")
    return out


# ------------------------------------------------------------------ gpu_check.sh's plan

def _step_command(name):
    m = re.search(rf"^step {name} (.*?)(?=\n(?:#|step |if |\S+=|$))", GPU_CHECK, re.M | re.S)
    assert m, name
    return m.group(1)


def test_precision_step_measures_every_tensor_core_precision_where_the_readers_look():
    cmd = _step_command("precision")
    targets = bench_module("gpu_targets")
    assert "bench/conv_bench.py --backend cuda" in cmd and "bench/kernel_bench.py --backend cuda" in cmd
    assert cmd.count("--precision tf32,bf16,3xtf32") == 2
    assert "--only gemm" in cmd and "--layers grouped" in cmd
    for key in (("conv", "tc"), ("fc", "tc")):
        assert f'"$2/{targets.FILES[key]}"' in cmd
    for key in (("conv", "fp32"), ("fc", "fp32"), ("step", "fp32")):
        assert f"$OUT_DIR/{targets.FILES[key]}" in GPU_CHECK
    # the model step calibrates the tensor-core rows too, from the build step's own objects
    model = _step_command("model")
    assert "calibrate_tc.py" in model and "conv_bench_tc.json" in model and "--tc" in model
    build_dir = re.search(r"-Cbuild-dir=(\S+)", GPU_CHECK).group(1)
    assert f"--build-dir {build_dir} " in model


def test_step_limits_leave_every_step_its_time_and_the_margin():
    """The arithmetic of the plan: the limits plus the margin fit the default deadline, the
    precision step comes after the float32 benchmarks and before the model that reads it,
    and each step's limit is at least the 10 s below which `step` skips it."""
    text = GPU_CHECK[GPU_CHECK.index("STEP_LIMITS=("):]
    limits = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\s+(\w+)=(\d+)", text[:text.index("\n)\n")],
                                                                       re.M))
    margin = int(re.search(r"^MARGIN_S=(\d+)", GPU_CHECK, re.M).group(1))
    deadline = int(re.search(r"GPU_CHECK_DEADLINE_S:-(\d+)", GPU_CHECK).group(1))
    assert deadline == 540
    assert sum(limits.values()) + margin <= deadline
    assert all(v >= 10 for v in limits.values()), limits
    order = list(limits)
    assert order.index("precision") > max(order.index(s) for s in ("net_bench", "conv_bench", "kernel_bench"))
    assert order.index("precision") < order.index("model")
    # the deadline check in `step`: a step gets min(limit, deadline - elapsed - 10)
    assert "local left=$(( DEADLINE_S - $(elapsed) - 10 ))" in GPU_CHECK
    assert "(( limit > left )) && limit=$left" in GPU_CHECK


def test_dry_run_without_a_gpu_exits_2_after_the_prerequisites(tmp_path):
    """Every prerequisite present but the GPU: the script checks them, says "Dry run", exits 2
    (not 1, a failed step; not 3, a missing piece) and builds, measures and judges nothing.
    A Python module or command this machine lacks is stood in for (an empty package, a
    script that prints a version): the check looks for them, it does not run them."""
    import importlib.util
    import os
    import shutil

    stubs, bindir = tmp_path / "stubs", tmp_path / "bin"
    stubs.mkdir()
    bindir.mkdir()
    modules = re.search(r"for mod in ([\w ]+); do", GPU_CHECK).group(1).split()
    assert {"cupy", "torch", "pybind11", "scikit_build_core"} <= set(modules)
    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            (stubs / mod).mkdir()
            (stubs / mod / "__init__.py").write_text("")
    for cmd, version in (("nvcc", "release 99.9"), ("ninja", "1.99"), ("cmake", "cmake version 3.99.0")):
        if shutil.which(cmd) is None or cmd == "cmake":  # cmake: a version the check accepts, whatever is here
            (bindir / cmd).write_text(f"#!/bin/sh\necho '{version}'\n")
            (bindir / cmd).chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, GPU_CHECK_FAKE_MISSING="nvidia-smi",
               PATH=f"{bindir}:{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(stubs), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, env=env)
    if "externally-managed" in proc.stdout and " MISSING " in proc.stdout:
        pytest.skip("this interpreter is an externally managed system Python (PEP 668)")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Dry run: prerequisites checked, nothing built or run." in proc.stdout
    assert [ln.split()[0] for ln in proc.stdout.splitlines() if " MISSING " in ln] == ["nvidia-smi"]
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# gpu_check: no GPU (nvidia-smi not found) (dry run)")
    assert "## Targets" not in summary and not (out / "targets.json").exists()
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["prerequisites.log"]
    assert (out / "state").read_text() == ""


# ------------------------------------------------------------------ gpu_targets.py

def test_targets_pass_and_fail_from_the_measured_ratios(gpu_out):
    ts = {(t["precision"], t["kind"]): t for t in bench_module("gpu_targets").targets(gpu_out)}
    assert len(ts) == 9
    conv = ts[("fp32", "conv")]
    assert conv["status"] == "FAIL" and conv["worst"] == pytest.approx(1.50) and conv["where"] == "conv2 dgrad"
    assert conv["over"] == 1 and conv["rows"] == 20  # the version rows (FAKE 9.0) are not targets
    assert ts[("fp32", "fc")]["status"] == "PASS" and ts[("fp32", "fc")]["worst"] == pytest.approx(1.10)
    step = ts[("fp32", "step")]
    assert step["status"] == "PASS" and step["worst"] == pytest.approx(1.00)  # grouped ours vs torch eager
    assert step["where"] == "AlexNet grouped train step"
    assert ts[("tf32", "conv")]["status"] == "PASS" and ts[("tf32", "conv")]["rows"] == 15
    bf16 = ts[("bf16", "conv")]
    assert bf16["status"] == "FAIL" and bf16["failed"] == 1 and "conv4 wgrad: MISMATCH" in bf16["detail"]
    assert ts[("3xtf32", "fc")]["status"] == "FAIL" and ts[("3xtf32", "fc")]["over"] == 9


def test_targets_not_measured_and_incomplete(gpu_out):
    gt = bench_module("gpu_targets")
    (gpu_out / "kernel_bench_tc.json").unlink()
    doc = json.loads((gpu_out / "conv_bench.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if r["layer"] != "conv2"]
    doc["partial"] = True
    (gpu_out / "conv_bench.json").write_text(json.dumps(doc))
    ts = {(t["precision"], t["kind"]): t for t in gt.targets(gpu_out)}
    assert ts[("fp32", "conv")]["status"] == "INCOMPLETE" and "cut short" in ts[("fp32", "conv")]["detail"]
    for p in ("tf32", "bf16", "3xtf32"):
        assert ts[(p, "fc")]["status"] == "NOT MEASURED"
        assert "kernel_bench_tc.json missing" in ts[(p, "fc")]["detail"]


def test_targets_markdown_is_one_line_per_target_and_the_ratio_tables(gpu_out, capsys):
    gt = bench_module("gpu_targets")
    assert gt.main([str(gpu_out), "--json", str(gpu_out / "targets.json")]) == 0
    text = capsys.readouterr().out
    table = [ln for ln in text.split("### ")[0].splitlines() if ln.startswith("| ") and "target" not in ln]
    assert len(table) == 9
    assert "| fp32: every conv layer and direction vs cuDNN (float32, TF32 off) | <= 1.3 | 1.50 | conv2 dgrad " \
           "| **FAIL** |" in text
    assert "| fp32: training step, grouped AlexNet vs PyTorch eager (float32, TF32 off) | <= 1.2 | 1.00 |" in text
    # the per-layer table: fp32 and the tensor-core precisions side by side, over-limit in bold
    assert "| conv2 | dgrad | **1.50** | 1.20 | 1.20 | 1.20 |" in text
    assert "| conv4 | wgrad | 0.90 | 1.20 | MISMATCH | 1.20 |" in text
    assert "| conv1 | bwd | 0.90 | - | - | - |" in text
    assert "| fc8 | wgrad | 1.10 | 1.05 | 1.15 | **1.40** |" in text
    assert len(json.loads((gpu_out / "targets.json").read_text())) == 9
    assert gt.main([str(gpu_out), "--brief"]) == 0  # what gpu_check prints last: the targets alone
    brief = capsys.readouterr().out.strip().splitlines()
    assert len(brief) == 2 + 9 and brief == text.split("### ")[0].strip().splitlines()[2:]


# ------------------------------------------------------------------ record_gpu_run.py

def test_record_writes_the_card_section_history_rows_and_status(gpu_out, tmp_path):
    results = tmp_path / "RESULTS.md"
    original = (ROOT / "bench" / "RESULTS.md").read_text()
    results.write_text(original)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "record_gpu_run.py"), str(gpu_out), "--write",
                           str(results), "--no-evolution"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = results.read_text()
    latest = text[text.index("## Latest figures per card"):text.index("## Kernel evolution")]
    h100 = latest[latest.index(f"### {FAKE_CARD}"):latest.index("### NVIDIA H200")]
    assert "No run yet" not in h100
    for field in ("| date | 2026-12-01 10:09 UTC |", f"| commit | {FAKE_COMMIT} |",
                  "| driver / CUDA toolkit | 999.99 / 99.9, V99.9.99 |",
                  "| PyTorch / cuDNN / CuPy | 2.99-fake / 99999 / 99.0-fake |",
                  "| device-to-device copy bandwidth (read + write) | 3000 GB/s |",
                  "| gpu_check steps | build ok, info ok, conv_bench ok, precision FAILED |"):
        assert field in h100, field
    assert h100.startswith(f"### {FAKE_CARD} (nvidia-h100-x1)\n")  # the card's heading kept
    assert "\n#### Targets" in h100 and "**FAIL**" in h100 and "\n##### Convolutions: ours / cuDNN" in h100
    assert "| fake conv_bench table |" in h100 and "#### FC GEMMs, tensor-core precisions" in h100
    assert "##### Measured / predicted\n\n| layer | direction |" in h100  # from the model step's log
    assert "| conv2 | fwd | 2.000 | 1.000 | 2.00 |" in h100
    assert "### NVIDIA H200 (nvidia-h200)\n\nNo run yet" in latest  # the other card untouched
    # one appended row per history table, the placeholder gone
    conv_hist = text[text.index("## History: convolution"):text.index("## History: memory-bound")]
    assert "(none yet)" not in conv_hist
    assert f"| 2026-12-01 | {FAKE_CARD} | {FAKE_COMMIT} | conv2 | 0.90 | 1.50 | 0.90 | 0.90 |" in conv_hist
    assert f"| 2026-12-01 | {FAKE_CARD} | {FAKE_COMMIT} | 81 | - | - | - | - | - | - | - | 77 | - |" in text
    assert f"| {FAKE_COMMIT} | " + " | ".join(["1.10"] * 9) + " |" in text
    assert f"| {FAKE_COMMIT} | 4000 | 5000 | - | - | - | - |" in text  # ours = two towers, as the table says
    targets = text[text.index("## History: targets"):text.index("## CPU mode")]
    assert f"| {FAKE_COMMIT} | 1.50 FAIL | 1.10 PASS | 1.00 PASS | 1.20 PASS |" in targets
    assert "**Status, 2026-12-01: the latest GPU run is NVIDIA H100 80GB HBM3's below (commit fake123): " \
           "6 of 9 targets PASS, 3 FAIL.**" in text
    # everything else as it was: the evolution table and the CPU-mode section
    for marker in ("<!-- evolution table: begin", "<!-- evolution table: end -->", "## CPU mode", "## SASS"):
        assert text[text.index(marker):].split("\n")[0] == original[original.index(marker):].split("\n")[0]
    assert original[original.index("## CPU mode"):] == text[text.index("## CPU mode"):]


def test_record_a_new_card_gets_its_own_section_and_rows_append(gpu_out, tmp_path):
    rec = bench_module("record_gpu_run")
    summary = gpu_out / "summary.md"
    summary.write_text(summary.read_text().replace(FAKE_CARD, "NVIDIA Fake GPU 9000"))
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    once = rec.record(text, rec.Run(gpu_out))
    twice = rec.record(once, rec.Run(gpu_out))
    latest = twice[twice.index("## Latest figures per card"):twice.index("## Kernel evolution")]
    assert latest.count("### NVIDIA Fake GPU 9000") == 1 and "### NVIDIA H100 80GB HBM3 (nvidia-h100-x1)" in latest
    assert twice.count("| NVIDIA Fake GPU 9000 | fake123 | conv3 |") == 2  # history: appended, never edited
    assert twice.count("## History: targets") == 1
    assert latest.count("#### Targets") == 1  # the new card's section, replaced by the second recording


def test_record_runs_evolution_with_the_runs_json(gpu_out, tmp_path, monkeypatch):
    rec = bench_module("record_gpu_run")
    evolution = bench_module("evolution")
    seen = []
    monkeypatch.setattr(evolution, "main", lambda argv: seen.append(argv) or 0)
    (gpu_out / "sass.json").write_text("[]")
    results = tmp_path / "RESULTS.md"
    results.write_text((ROOT / "bench" / "RESULTS.md").read_text())
    assert rec.main([str(gpu_out), "--write", str(results)]) == 0
    assert seen == [["--sass-json", str(gpu_out / "sass.json"), "--write", str(results), "--measured",
                     *(str(gpu_out / f"{n}.json") for n in ("conv_bench", "kernel_bench", "conv_bench_tc",
                                                           "kernel_bench_tc"))]]


def test_record_refuses_a_folder_that_is_not_a_gpu_check_output(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "record_gpu_run.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "summary.md: not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_record_refuses_a_run_without_gpu_figures(gpu_out, tmp_path):
    """A dry run's folder (summary.md, no benchmark JSON) or CPU-mode JSON: nothing recorded."""
    for doc in gpu_out.glob("*.json"):
        d = json.loads(doc.read_text())
        d["env"]["device"] = "CPU: x86_64, 2 cores"
        doc.write_text(json.dumps(d))
    results = tmp_path / "RESULTS.md"
    results.write_text("unchanged")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "record_gpu_run.py"), str(gpu_out), "--write",
                           str(results)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no benchmark JSON from a GPU" in proc.stderr, proc.stderr
    assert results.read_text() == "unchanged"


# ------------------------------------------------------------------ calibrate_tc.py

def test_tensor_core_measured_beside_predicted(gpu_out):
    cal = bench_module("calibrate_tc")
    measured = cal.measured_tc(json.loads((gpu_out / "conv_bench_tc.json").read_text()))
    measured.update(cal.measured_tc(json.loads((gpu_out / "kernel_bench_tc.json").read_text())))
    assert ("conv4", "wgrad", "bf16") not in measured  # the MISMATCH row has no figure
    pred = {("conv2", "fwd", "tf32"): 0.6, ("conv1", "wgrad", "bf16"): 2.4}  # FAKE predictions
    text, unmatched = cal.table(measured, pred)
    assert "| conv2 | fwd | tf32 | 1.200 | 0.600 | 2.00 |" in text
    assert "| conv1 | wgrad | bf16 | 1.200 | 2.400 | 0.50 |" in text
    assert ("fc6", "fwd", "bf16") in unmatched and ("conv1", "dgrad", "tf32") in unmatched


def test_evolution_measured_column_of_the_tensor_core_kernels(gpu_out):
    """The precision step's rows fill the tensor-core kernels' measured column, one sum per
    precision over the same work (conv1-conv5 per direction; fc6-fc8); the MISMATCH row
    adds nothing."""
    ev = bench_module("evolution")
    docs = [json.loads((gpu_out / f"{n}.json").read_text()) for n in ("conv_bench_tc", "kernel_bench_tc")]
    got = ev.measured(docs)
    where = f"{FAKE_CARD}, 2026-12-01 10:00 UTC, {FAKE_COMMIT}"
    assert got["conv_tc_fwd_kernel1"] == f"tf32 6.000, bf16 6.000, 3xtf32 6.000 ms (conv1-conv5 fwd; {where})"
    assert got["conv_tc_wgrad_kernel1"] == f"tf32 6.000, bf16 4.800, 3xtf32 6.000 ms (conv1-conv5 wgrad; {where})"
    assert got["gemm_tc_kernel1"] == f"tf32 4.725, bf16 5.175, 3xtf32 6.300 ms (fc6-fc8 fwd+dgrad+wgrad; {where})"
    assert not any(k.startswith(("conv_fwd", "gemm_kernel")) for k in got)  # no fp32 version rows here


def test_model_step_reads_the_grouped_training_step_as_net_bench_labels_it(gpu_out):
    """net_bench labels ours' grouped form "1 (grouped)": perf_model's calibration takes
    that row for the step (128 images at FAKE 5000 images/s: 25.6 ms), not the two-tower one."""
    pm = bench_module("perf_model")
    doc = json.loads((gpu_out / "net_bench.json").read_text())
    assert pm.measured_rows(doc)[("step", "train")] == pytest.approx(25.6)
    doc["rows"] = [dict(r, precision="bf16") if r["impl"] == "ours" else r for r in doc["rows"]]
    assert ("step", "train") not in pm.measured_rows(doc)  # the float32 prediction is not a bf16 step's


@pytest.mark.parametrize("failing,rc", [("", 0), ("kernel_bench", 1), ("conv_bench", 1)])
def test_precision_step_runs_both_benchmarks_and_fails_if_either_does(tmp_path, failing, rc):
    """The step's own shell command, run with a stand-in interpreter that logs its arguments
    and fails for one benchmark: both benchmarks still run, the step's status is theirs."""
    script = re.search(r"bash -c '(.*?)'", _step_command("precision"), re.S).group(1)
    fake = tmp_path / "python"
    log = tmp_path / "calls.log"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {log}\n[[ -n "{failing}" && $1 == *"{failing}"* ]] && exit 1\nexit 0\n')
    fake.chmod(0o755)
    proc = subprocess.run(["bash", "-c", script, "precision", str(fake), str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == rc, proc.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["bench/kernel_bench.py", "bench/conv_bench.py"]
    assert all(f"--json {tmp_path}/" in c and "--backend cuda" in c for c in calls)


def test_step_target_falls_back_to_the_two_towers(gpu_out):
    """Without a grouped row, the step target takes the two towers on one device (the same
    arithmetic): FAKE 4000 against PyTorch's 5000 images/s is a ratio of 1.25, over 1.2."""
    gt = bench_module("gpu_targets")
    doc = json.loads((gpu_out / "net_bench.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if "grouped" not in r["towers"] or r["impl"] != "ours"]
    (gpu_out / "net_bench.json").write_text(json.dumps(doc))
    step = next(t for t in gt.targets(gpu_out) if t["kind"] == "step")
    assert step["status"] == "FAIL" and step["worst"] == pytest.approx(1.25)
    assert step["where"] == "AlexNet towers=2 train step"
