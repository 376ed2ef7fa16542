"""A bench/gpu_check.sh output folder turned into its bench/RESULTS.md entry, in one command:
the card's section under "Latest figures per card" (the run's fields, the targets table, the
benchmarks' tables as the run printed them, measured / predicted), one appended row per
history table, the status line, and the kernel evolution table's measured column
(bench/evolution.py --measured with the run's benchmark JSON).

    python bench/record_gpu_run.py OUT                  # print the card section and the history rows
    python bench/record_gpu_run.py OUT --write          # write them into bench/RESULTS.md
    python bench/record_gpu_run.py OUT --write other.md --no-evolution

Read from OUT: summary.md (date, commit, card, toolkit, the steps table), state,
logs/info.log (cuDNN's version), logs/model.log (measured / predicted),
conv_bench.json, kernel_bench.json, net_bench.json, net_bench_compile.json,
conv_bench_tc.json, kernel_bench_tc.json (whichever exist), sass.json (for evolution.py;
without it evolution.py builds the SASS itself, which needs nvcc). The card's section is
found by its name ("### <name> (...)", the name as nvidia-smi prints it) and replaced; a
card without a section gets a new one. History rows are appended, never edited: a second
recording of the same run adds rows again.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
LATEST = "## Latest figures per card"
BENCH_JSON = ("net_bench", "conv_bench", "kernel_bench", "net_bench_compile", "conv_bench_tc", "kernel_bench_tc")
# RESULTS.md's memory-bound history columns -> kernel_bench's row names (batch 128 shapes)
MEMORY_COLUMNS = {"lrn": "lrn conv1", "lrn_bwd": "lrn_backward conv1", "max_pool": "max_pool conv1",
                  "max_pool_bwd": "max_pool_backward conv1", "relu": "relu conv1", "relu_bwd": "relu_backward conv1",
                  "dropout": "dropout conv1-sized", "softmax": "softmax_cross_entropy", "sgd_update": "sgd_update",
                  "concat": "concat_channels"}


class Run:
    """What one gpu_check folder holds: the summary's fields, the steps, the JSON documents."""

    def __init__(self, out):
        self.out = Path(out)
        summary = self.out / "summary.md"
        if not summary.is_file():
            raise FileNotFoundError(f"{summary}: not found (is {self.out} a bench/gpu_check.sh output folder?)")
        self.summary = summary.read_text()
        self.fields = dict(re.findall(r"^- (\w+): (.*)$", self.summary, re.M))
        self.docs = {name: gpu_targets.load(self.out, f"{name}.json") for name in BENCH_JSON}
        self.docs = {k: v for k, v in self.docs.items() if v is not None}
        # Only a run on a GPU is recorded: a dry run or a CPU-mode benchmark has no card.
        if not any(str(d.get("env", {}).get("device", "")).startswith("GPU") for d in self.docs.values()):
            raise ValueError(f"{self.out}: no benchmark JSON from a GPU (a dry run, or every benchmark "
                                    f"failed before writing): nothing to record")
        self.card = self.fields.get("card", "unknown").split(",")[0].strip()
        self.date = self.fields.get("date", "?").split(",")[0].strip()
        self.day = self.date.split()[0]
        self.commit = self.fields.get("commit", "?")

    def env(self, key, default="-"):
        for doc in self.docs.values():
            if doc.get("env", {}).get(key) is not None:
                return doc["env"][key]
        return default

    def steps_line(self) -> str:
        state = self.out / "state"
        lines = state.read_text().split() if state.is_file() else []
        pairs = [f"{a} {b}" for a, b in zip(lines[::2], lines[1::2])]
        return ", ".join(pairs) or "-"

    def cudnn(self) -> str:
        log = self.out / "logs" / "info.log"
        m = re.search(r"cudnn (\d+)", log.read_text()) if log.is_file() else None
        return m.group(1) if m else "-"

    def table(self, name):
        doc = self.docs.get(name)
        return doc.get("table") if doc else None


def card_section(run: Run) -> str:
    toolkit = run.fields.get("toolkit", "-")
    card = [f.strip() for f in run.fields.get("card", "").split(",")]  # nvidia-smi: name, driver, memory
    driver = card[1] if len(card) > 1 and card[1] else run.env("driver_version")
    bw = run.docs.get("kernel_bench", {}).get("env", {}).get("copy_bandwidth_gbs")
    fields = [("date", run.date), ("commit", run.commit), ("command", f"`{run.fields.get('command', '-')}`"),
              ("driver / CUDA toolkit", f"{driver} / {toolkit}"),
              ("PyTorch / cuDNN / CuPy", f"{run.env('torch')} / {run.cudnn()} / {run.env('cupy')}"),
              ("device-to-device copy bandwidth (read + write)", f"{bw:.0f} GB/s" if bw else "-"),
              ("gpu_check steps", run.steps_line())]
    parts = [f"### {run.card}", "", f"Recorded by `python bench/record_gpu_run.py` from `{run.out.name}/` "
             f"(bench/gpu_check.sh).", "", "| field | value |", "|---|---|"]
    parts += [f"| {k} | {v} |" for k, v in fields]
    # Headings below the card's own "###": a card's section ends at the next "##" or "###".
    parts += ["", "##" + gpu_targets.markdown(run.out).replace("\n### ", "\n##### ")]
    titles = {"net_bench": "Whole network (net_bench)", "conv_bench": "Convolutions, float32 (conv_bench)",
              "kernel_bench": "Memory-bound kernels and FC GEMMs, float32 (kernel_bench)",
              "conv_bench_tc": "Convolutions, tensor-core precisions (conv_bench --precision)",
              "kernel_bench_tc": "FC GEMMs, tensor-core precisions (kernel_bench --precision)",
              "net_bench_compile": "torch.compile (net_bench --compile-only)"}
    for name, title in titles.items():
        table = run.table(name)
        if table:
            partial = " (cut short: the rows it finished)" if run.docs[name].get("partial") else ""
            parts += ["", f"#### {title}{partial}", "", table]
    model = run.out / "logs" / "model.log"
    if model.is_file():
        calib = [blk for blk in re.split(r"\n(?=## )", model.read_text()) if "easured / predicted" in blk]
        if calib:
            parts += ["", "#### Measured / predicted (bench/perf_model.py, bench/calibrate_tc.py: the predicted "
                          "figures are a model's)", ""]
            parts += ["\n\n".join(blk.replace("## ", "##### ", 1).strip() for blk in calib)]
    return "\n".join(parts) + "\n"


def _ratio(row):
    r = gpu_targets.ratio_of(row) if row and row.get("status") == "ok" else None
    return f"{r:.2f}" if r is not None else "-"


def history_rows(run: Run) -> dict:
    """History table heading prefix -> the Markdown rows this run appends."""
    head = f"| {run.day} | {run.card} | {run.commit} |"
    out = {}
    conv = run.docs.get("conv_bench")
    if conv:
        by = {(r["layer"], r["op"]): r for r in gpu_targets.kernel_rows(conv, "conv", "fp32")}
        layers = list(dict.fromkeys(layer for layer, _ in by))
        dirs = ("fwd", "dgrad", "wgrad", "bwd")
        out["## History: convolution"] = [
            f"{head} {layer} | " + " | ".join(_ratio(by.get((layer, d))) for d in dirs) + " |" for layer in layers]
    kern = run.docs.get("kernel_bench")
    if kern:
        mem = {r["op"]: r for r in kern.get("rows", []) if "version" not in r and "pct_copy" in r}
        cells = [f"{mem[op]['pct_copy']:.0f}" if op in mem and mem[op].get("status") == "ok" else "-"
                 for op in MEMORY_COLUMNS.values()]
        out["## History: memory-bound kernels"] = [f"{head} " + " | ".join(cells) + " |"]
        fc = {(r["layer"], r["op"]): r for r in gpu_targets.kernel_rows(kern, "fc", "fp32")}
        out["## History: fully connected GEMMs"] = [
            f"{head} " + " | ".join(_ratio(fc.get((f, d))) for f in ("fc6", "fc7", "fc8")
                                    for d in ("fwd", "dgrad", "wgrad")) + " |"]
    net = run.docs.get("net_bench")
    if net:
        rows = net.get("rows", []) + run.docs.get("net_bench_compile", {}).get("rows", [])

        def ips(impl, mode):
            r = next((r for r in rows if r.get("impl") == impl and r.get("mode") == mode
                      and r.get("precision", "fp32") == "fp32" and (impl != "ours" or str(r.get("towers")) == "2")),
                     None)
            return f"{r['images_per_s']:.0f}" if r and r.get("images_per_s") else "-"
        out["## History: whole network"] = [
            f"{head} " + " | ".join(ips(i, m) for m in ("train", "infer")
                                    for i in ("ours", "torch eager", "torch.compile")) + " |"]
    ts = gpu_targets.targets(run.out)
    out["## History: targets"] = [f"{head} " + " | ".join(
        f"{t['worst']:.2f} {t['status']}" if t["worst"] is not None else t["status"] for t in ts) + " |"]
    return out


def targets_history_table(run: Run) -> str:
    """The targets history table (added to RESULTS.md by the first recording)."""
    ts = gpu_targets.targets(run.out)
    cols = [f"{t['precision']} {t['kind']} (<= {t['limit']:g})" for t in ts]
    return ("## History: targets, worst ratio and result per target (ours / baseline; "
            "bench/gpu_targets.py)\n\n"
            "| date | card | commit | " + " | ".join(cols) + " |\n"
            "|---|---|---|" + "---|" * len(cols) + "\n")


def append_history(text: str, heading: str, rows: list[str]) -> str:
    """`text` with `rows` after the last row of the first table under the heading that starts
    with `heading` (its "(none yet)" placeholder row dropped)."""
    start = text.find("\n" + heading)
    if start < 0 or not rows:
        return text
    start += 1
    nxt = re.search(r"^## ", text[start + 3:], re.M)
    end = start + 3 + nxt.start() if nxt else len(text)
    section = text[start:end]
    lines = section.split("\n")
    table = [i for i, ln in enumerate(lines) if ln.startswith("|")]
    if not table:
        return text
    last = table[-1]
    for i in range(len(lines)):
        if lines[i].startswith("| (none yet)"):
            lines[i] = None
    new = [ln for ln in lines[:last + 1] if ln is not None] + rows + [ln for ln in lines[last + 1:] if ln is not None]
    return text[:start] + "\n".join(new) + text[end:]


def replace_card(text: str, section: str, card: str) -> str:
    """`text` with the card's "### <card> (...)" section under LATEST replaced by `section`
    (inserted at the end of LATEST when the card has none)."""
    if LATEST not in text:
        raise ValueError(f"no {LATEST!r} section")
    start = text.index(LATEST)
    nxt = re.search(r"^## ", text[start + len(LATEST):], re.M)
    end = start + len(LATEST) + nxt.start() if nxt else len(text)
    latest = text[start:end]
    for m in re.finditer(r"^### (.+)$", latest, re.M):
        name = m.group(1).split(" (")[0].strip().lower()
        if name and (card.lower() == name or card.lower().startswith(name + " ") or name.startswith(card.lower())):
            after = re.search(r"^#{2,3} ", latest[m.end():], re.M)
            s_end = m.end() + after.start() if after else len(latest)
            body = section.split("\n", 1)[1]  # the card's heading as it was (its machine label kept)
            latest = latest[:m.end()] + "\n" + body + "\n" + latest[s_end:]
            break
    else:
        latest = latest.rstrip("\n") + "\n\n" + section + "\n"
    return text[:start] + latest + text[end:]


def set_status(text: str, run: Run) -> str:
    ts = gpu_targets.targets(run.out)
    counts = {s: sum(t["status"] == s for t in ts) for s in (gpu_targets.PASS, gpu_targets.FAIL)}
    line = (f"**Status, {run.day}: the latest GPU run is {run.card}'s below (commit {run.commit}): "
            f"{counts['PASS']} of {len(ts)} targets PASS, {counts['FAIL']} FAIL.** The CPU-mode figures at the "
            f"end show that the harness works (validation, tables, JSON), not how fast the kernels are.")
    return re.sub(r"^\*\*Status.*?(?=\n\n)", lambda _: line, text, count=1, flags=re.M | re.S)


def record(text: str, run: Run) -> str:
    """RESULTS.md's text with the run recorded (card section, history rows, status line)."""
    text = replace_card(text, card_section(run), run.card)
    if "\n## History: targets" not in text:
        anchor = text.find("\n## CPU mode")
        table = targets_history_table(run)
        text = text + "\n" + table if anchor < 0 else text[:anchor + 1] + table + "\n" + text[anchor + 1:]
    for heading, rows in history_rows(run).items():
        text = append_history(text, heading, rows)
    return set_status(text, run)


def evolution_args(run: Run, results: Path) -> list[str]:
    args = ["--write", str(results)]
    if (run.out / "sass.json").is_file():
        args = ["--sass-json", str(run.out / "sass.json")] + args
    measured = [str(run.out / f"{n}.json") for n in ("conv_bench", "kernel_bench", "conv_bench_tc", "kernel_bench_tc")
                if n in run.docs]
    return args + (["--measured", *measured] if measured else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="a bench/gpu_check.sh output folder ($OUT)")
    ap.add_argument("--write", nargs="?", const=str(RESULTS), metavar="RESULTS_MD",
                    help=f"record the run in this file (default {RESULTS.relative_to(ROOT)})")
    ap.add_argument("--no-evolution", action="store_true",
                    help="leave the kernel evolution table alone (it needs sass.json or nvcc)")
    args = ap.parse_args(argv)
    try:
        run = Run(args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"record_gpu_run: {e}", file=sys.stderr)
        return 2
    if not args.write:
        print(card_section(run))
        for heading, rows in history_rows(run).items():
            print(f"{heading} ...\n" + "\n".join(rows) + "\n")
        return 0
    path = Path(args.write)
    try:
        path.write_text(record(path.read_text(), run))
    except (OSError, ValueError) as e:
        print(f"record_gpu_run: {path}: {e}", file=sys.stderr)
        return 2
    print(f"record_gpu_run: {run.card}, {run.date}, {run.commit} recorded in {path}")
    if args.no_evolution:
        return 0
    import evolution  # builds the SASS when sass.json is absent; imports the checkout

    return evolution.main(evolution_args(run, path))


if __name__ == "__main__":
    sys.exit(main())
