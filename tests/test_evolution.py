"""bench/evolution.py, the per-kernel evolution table of bench/RESULTS.md: every kernel's idea
comes from its header comment, versions are grouped by family, the predicted columns agree
with the performance model (and say they are predictions), and --write replaces only the
table between its markers. The SASS counts here are hand-made (sass_report's JSON shape),
so no nvcc is needed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench_support import bench_module

ROOT = Path(__file__).resolve().parents[1]
ev = bench_module("evolution")
pm = bench_module("perf_model")

# sass_report --json rows (sm_90) for the kernels the AlexNet step launches, plus a tensor-core
# GEMM and an sm_80 row that must be ignored.
INSTANCES = {
    "conv_fwd_kernel1": [""], "conv_fwd_kernel2": [""], "conv_fwd_kernel3": [""],
    "conv_dgrad_kernel1": ["<64, 64>", "<256, 16>"], "conv_dgrad_kernel2": ["<48>", "<64>", "<128>"],
    "conv_wgrad_kernel1": [""], "conv_wgrad_kernel2": [""], "conv_wgrad_kernel3": [""],
    "conv_wgrad_kernel4": [""], "conv_wgrad_kernel5": [""],
    "gemm_kernel1": ["<false, true>", "<false, false>", "<true, false>"],
    "gemm_kernel2": ["<false, true>", "<false, false>", "<true, false>"],
    "gemm_tc_kernel1": ["<64, false, true, 0, true>"],
    "lrn_forward_kernel1": [""], "lrn_forward_kernel2": ["<1>", "<4>"],
}


def _stat(kernel, targs, arch=90, fma=0.5, lds128=0, ldgsts=False, hmma=False):
    return {"name": f"ccn::{kernel}{targs}", "kernel": kernel, "arch": arch, "fma_share": fma, "blocks_per_sm": 2,
            "threads": 256, "lds128": lds128, "ldgsts": ldgsts, "hmma": hmma}


def _stats():
    out = []
    for kernel, targs in INSTANCES.items():
        for i, t in enumerate(targs):
            two = kernel.endswith("2")
            out.append(_stat(kernel, t, fma=(0.8 if two else 0.45) + 0.01 * i, lds128=32 * two * (i + 1),
                             ldgsts="tc" in kernel, hmma="tc" in kernel))
    out.append(_stat("conv_fwd_kernel3", "", arch=80))  # sm_80 only: not a row
    return out


@pytest.fixture(scope="module")
def rows():
    return {r["kernel"]: r for r in ev.rows(_stats(), batch=128)}


def test_one_row_per_kernel_grouped_by_family_and_version(rows):
    assert sorted(rows) == sorted(INSTANCES)
    assert [(r["family"], r["version"]) for r in ev.rows(_stats())][:6] == [
        ("conv_dgrad", 1), ("conv_dgrad", 2), ("conv_fwd", 1), ("conv_fwd", 2), ("conv_fwd", 3), ("conv_wgrad", 1)]
    gemm2 = rows["gemm_kernel2"]
    assert gemm2["fma_pct"] == "80.0-82.0" and gemm2["lds128"] == 96 and not gemm2["hmma"]
    assert rows["conv_fwd_kernel1"]["fma_pct"] == "45.0"
    assert rows["gemm_tc_kernel1"]["ldgsts"] and rows["gemm_tc_kernel1"]["hmma"]


def test_predicted_columns_agree_with_the_performance_model(rows):
    counts = {s["name"].replace("ccn::", ""): s for s in _stats() if s["arch"] == 90}
    pred = pm.predict_alexnet(128, counts)
    convs = [f"conv{i}" for i in range(2, 6)]
    # conv1 (C = 3) is the one layer the launcher gives kernel3; kernel2 runs conv2-conv5;
    # kernel1 (the forced general fallback) runs nothing of the step
    assert rows["conv_fwd_kernel3"]["step_ms"] == pytest.approx(pred[("conv1", "fwd")])
    assert rows["conv_fwd_kernel1"]["step_ms"] is None
    assert rows["conv_fwd_kernel2"]["step_ms"] == pytest.approx(sum(pred[(c, "fwd")] for c in convs))
    # both versions forced on the work they can both run: conv2-conv5; kernel2's is its step share
    for v in (1, 2, 3):
        assert rows[f"conv_fwd_kernel{v}"]["same_work"] == "conv2+conv3+conv4+conv5 fwd"
    assert rows["conv_fwd_kernel2"]["same_ms"] == pytest.approx(rows["conv_fwd_kernel2"]["step_ms"])
    assert rows["conv_fwd_kernel1"]["same_ms"] != pytest.approx(rows["conv_fwd_kernel2"]["same_ms"])
    # every FC GEMM at batch 128 has M, N >= 128: the launcher picks gemm_kernel2 for all nine
    fc = sum(pred[(f"fc{j}", d)] for j in (6, 7, 8) for d in ("fwd", "dgrad")) + sum(
        ln.seconds * 1e3
        for mnk in ((4096, 9216, 128, True, False), (4096, 4096, 128, True, False), (1000, 4096, 128, True, False))
        for ln in pm.gemm(counts, "x", "wgrad", *mnk))
    assert rows["gemm_kernel2"]["same_ms"] == pytest.approx(fc)
    assert rows["gemm_kernel1"]["step_ms"] is None and rows["gemm_kernel1"]["same_ms"] > 0
    assert "same_ms" not in rows["lrn_forward_kernel1"]


def test_table_says_what_is_predicted_and_what_is_not_measured(rows):
    table = ev.markdown(list(rows.values()))
    assert "**every time in the predicted columns is a PREDICTION**" in table
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and "`" in ln]
    assert len(body) == len(rows)
    assert all(ln.rstrip().endswith("| not yet measured on a GPU |") for ln in body)
    line = next(ln for ln in body if "`conv_fwd_kernel2`" in ln)
    assert f"{rows['conv_fwd_kernel2']['same_ms']:.3f} (conv2+conv3+conv4+conv5 fwd)" in line


def test_ideas_come_from_the_kernels_header_comments():
    """Each idea is text of its kernel's header comment (the note, then the entry's first
    sentence), whitespace aside; the exact parsing is pinned on made-up headers below."""
    ideas = ev.ideas()
    for kernel, header in (("gemm_kernel1", "gemm.cuh"), ("gemm_kernel2", "gemm.cuh"),
                           ("conv_fwd_kernel1", "conv_fwd.cuh"), ("lrn_forward_kernel1", "lrn.cuh"),
                           ("lrn_backward_kernel2", "lrn.cuh"), ("bias_grad_kernel1", "gemm.cuh")):
        comments = " ".join(ln[2:].strip() for ln in (ROOT / "csrc" / header).read_text().splitlines()
                            if ln.startswith("//"))
        idea = re.sub(r"^\([^()]*(?:\([^()]*\)[^()]*)*\) ", "", ideas[kernel]).removesuffix(" ...")
        assert idea and idea in comments, (kernel, ideas[kernel])
    assert ideas["lrn_forward_kernel1"] == ideas["lrn_backward_kernel1"]  # one entry names both
    assert all(len(v) <= ev.MAX_IDEA + 4 for v in ideas.values())


def test_every_kernel_in_csrc_has_an_idea():
    """A new kernel needs a header entry ("// <name>: ...") or a comment above its definition."""
    ideas = ev.ideas()
    kernels = {m for p in (ROOT / "csrc").glob("*.cuh")
               for m in re.findall(r"__global__[^;{]*?\b(\w+_kernel\d+)\s*\(", p.read_text())}
    missing = sorted(k for k in kernels if not ideas.get(k))
    assert kernels and not missing, missing


def test_entry_parsing_on_made_up_headers(tmp_path):
    (tmp_path / "a.cuh").write_text(
        "// foo_kernel1 (the only version so far): one thread per element. More detail.\n"
        "// foo_kernel2<W> (fast path: C % 4 == 0): W-wide loads and\n"
        "//   stores, i.e. float4. Rest.\n"
        "// foo_kernel2 adds the slices in order. Not an entry: prose.\n"
        "// bar_kernel1<Op> (forward, y = Op(x)) and baz_kernel1<Op> (backward,\n"
        "// dx = Op(y, dy)): grid-stride loops over elements. Tail.\n"
        "\n"
        "// Column sums, one thread per column. Deterministic.\n"
        "template <int W>\n"
        "__global__ void qux_kernel1(float* x) {}\n")
    ideas = ev.ideas(tmp_path)
    assert ideas == {"foo_kernel1": "one thread per element",
                     "foo_kernel2": "(fast path: C % 4 == 0) W-wide loads and stores, i.e. float4",
                     "bar_kernel1": "grid-stride loops over elements", "baz_kernel1": "grid-stride loops over elements",
                     "qux_kernel1": "Column sums, one thread per column"}


def test_write_replaces_only_the_marked_table(tmp_path, capsys):
    text = f"# Results\n\nbefore\n{ev.BEGIN}\nold table\n{ev.END}\nafter\n"
    out = ev.replace_section(text, "| new |")
    assert out == f"# Results\n\nbefore\n{ev.BEGIN}\n| new |\n{ev.END}\nafter\n"
    assert ev.replace_section(out, "| newer |").count(ev.BEGIN) == 1
    with pytest.raises(ValueError, match="markers are missing"):
        ev.replace_section("# Results\n", "| new |")

    import json

    sass = tmp_path / "sass.json"
    sass.write_text(json.dumps(_stats()))
    results = tmp_path / "RESULTS.md"
    results.write_text(text)
    assert ev.main(["--sass-json", str(sass), "--write", str(results)]) == 0
    written = results.read_text()
    assert written.startswith("# Results\n\nbefore\n") and written.endswith(f"{ev.END}\nafter\n")
    assert "`gemm_kernel2`" in written and "old table" not in written
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    assert ev.main(["--sass-json", str(sass), "--write", str(bare)]) == 2
    assert "markers are missing" in capsys.readouterr().err and bare.read_text() == "# no markers\n"


def test_results_md_holds_the_generated_table():
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    table = text.split(ev.BEGIN, 1)[1].split(ev.END, 1)[0]
    assert "PREDICTION" in table and "| conv_fwd | 2 | `conv_fwd_kernel2` |" in table
    assert "not yet measured on a GPU" in table


def test_measured_column_from_a_gpu_runs_version_rows(tmp_path):
    """conv_bench / kernel_bench JSON of a GPU run fill the measured column, summed over the
    same work as the same-work prediction; a CPU-mode run fills nothing."""
    import json

    env = {"device": "GPU: NVIDIA H100 80GB HBM3", "date": "2026-12-01 10:00 UTC", "commit": "abc1234"}
    conv = {"bench": "conv_bench", "env": env, "rows": [
        {"layer": c, "op": f"fwd v{v}", "version": v, "status": "ok", "ours_ms": 0.5 * v}
        for c in ("conv1", "conv2", "conv3", "conv4", "conv5") for v in (1, 2) if not (c == "conv1" and v == 2)]
        + [{"layer": "conv2", "op": "fwd", "status": "ok", "ours_ms": 9.0}]}  # the launcher's pick: no version
    kernel = {"bench": "kernel_bench", "env": env, "rows": [
        {"op": "lrn conv1 v2", "version": 2, "status": "ok", "ours_us": 100.0},
        {"op": "lrn conv2 v2", "version": 2, "status": "ok", "ours_us": 50.0},
        {"op": "lrn_backward conv1 v1", "version": 1, "status": "MISMATCH"},
        {"layer": "fc6", "op": "fwd v2", "version": 2, "status": "ok", "ours_ms": 0.25}]}
    cpu = dict(kernel, env=dict(env, device="CPU: x86_64, 2 cores"))
    got = ev.measured([conv, kernel, cpu])
    where = "NVIDIA H100 80GB HBM3, 2026-12-01 10:00 UTC, abc1234"
    assert got == {"conv_fwd_kernel1": f"2.000 ms (conv2-conv5 fwd; {where})",
                   "conv_fwd_kernel2": f"4.000 ms (conv2-conv5 fwd; {where})",
                   "lrn_forward_kernel2": f"0.150 ms (lrn conv1+conv2; {where})",
                   "gemm_kernel2": f"0.250 ms (fc6-fc8 fwd+dgrad+wgrad; {where})"}
    assert ev.measured([cpu]) == {}
    sass, c, k = tmp_path / "sass.json", tmp_path / "conv.json", tmp_path / "kernel.json"
    sass.write_text(json.dumps(_stats()))
    c.write_text(json.dumps(conv))
    k.write_text(json.dumps(kernel))
    results = tmp_path / "RESULTS.md"
    results.write_text(f"{ev.BEGIN}\n{ev.END}\n")
    assert ev.main(["--sass-json", str(sass), "--write", str(results), "--measured", str(c), str(k)]) == 0
    line = next(ln for ln in results.read_text().splitlines() if "`conv_fwd_kernel2`" in ln)
    assert line.endswith(f"| 4.000 ms (conv2-conv5 fwd; {where}) |")
    assert "| not yet measured on a GPU |" in next(ln for ln in results.read_text().splitlines()
                                                   if "`lrn_forward_kernel1`" in ln)
