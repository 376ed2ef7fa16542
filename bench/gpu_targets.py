"""The GPU performance targets, judged from one bench/gpu_check.sh output folder: each target
with its measured worst ratio and PASS / FAIL, and the per-layer ratios behind it.

    python bench/gpu_targets.py OUT          # Markdown: the targets table and the ratio tables
    python bench/gpu_targets.py OUT --json targets.json
    python bench/gpu_targets.py OUT --brief  # the targets table alone

Targets (ratio = our median time / the baseline's on the same card in the same run; below 1
is faster; ARCHITECTURE.md §9):

    conv      every conv layer and direction (fwd, dgrad, wgrad, bwd) <= 1.3x cuDNN
    fc        every FC GEMM (fc6-fc8 fwd, dgrad, wgrad) <= 1.2x cuBLAS
    step      one training step of the grouped AlexNet <= 1.2x PyTorch eager's
              (ratio = PyTorch's images/s / ours)

at float32 (TF32 off; conv_bench.json, kernel_bench.json, net_bench.json), and the conv and
fc targets again at each tensor-core precision, against the baseline at the same precision
(conv_bench_tc.json, kernel_bench_tc.json; bench/harness/precision.py: tf32 against cuDNN /
cuBLAS with TF32 allowed, bf16 against bfloat16 tensors, 3xtf32 against float32 with TF32
off). The tensor-core targets take the float32 limits.

A target is PASS when every row it covers has our figure (validated, then timed) and every
ratio is within the limit; FAIL when a ratio is over the limit or a row has no figure
(MISMATCH, an error); NOT MEASURED when its benchmark wrote nothing (a step that failed or
ran out of time); INCOMPLETE when the benchmark was cut short and nothing it measured
failed. The version rows ("fwd v2", ...) are the kernel versions side by side, not targets.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LIMITS = {"conv": 1.3, "fc": 1.2, "step": 1.2}
TC_PRECISIONS = ("tf32", "bf16", "3xtf32")
PRECISIONS = ("fp32", *TC_PRECISIONS)
FILES = {  # (target kind, precision group) -> the gpu_check output file
    ("conv", "fp32"): "conv_bench.json", ("conv", "tc"): "conv_bench_tc.json",
    ("fc", "fp32"): "kernel_bench.json", ("fc", "tc"): "kernel_bench_tc.json",
    ("step", "fp32"): "net_bench.json",
}
BASELINE = {"conv": "cuDNN", "fc": "cuBLAS", "step": "PyTorch eager"}
PASS, FAIL, NOT_MEASURED, INCOMPLETE = "PASS", "FAIL", "NOT MEASURED", "INCOMPLETE"


def load(out: Path, name: str):
    """The JSON document `name` of a gpu_check folder, or None when absent or unreadable."""
    try:
        return json.loads((Path(out) / name).read_text())
    except (OSError, ValueError):
        return None


def kernel_rows(doc, kind: str, precision: str) -> list[dict]:
    """The target rows of a conv_bench / kernel_bench document at `precision`: the launchers'
    pick only (no version rows); for kernel_bench the GEMM rows (they name a layer)."""
    if doc is None:
        return []
    rows = [r for r in doc.get("rows", []) if "version" not in r and r.get("precision", "fp32") == precision]
    if kind == "fc":
        rows = [r for r in rows if str(r.get("layer", "")).startswith("fc")]
    return rows


def ratio_of(row):
    """ours / baseline of a benchmark row, or None (no figure on either side)."""
    if row.get("ratio") is not None:
        return float(row["ratio"])
    if row.get("ours_ms") and row.get("base_ms"):
        return row["ours_ms"] / row["base_ms"]
    return None


def step_rows(doc) -> list[dict]:
    """One pseudo-row for the grouped training step at fp32 from net_bench: ratio = PyTorch
    eager's images/s over ours (= our step time / PyTorch's)."""
    if doc is None:
        return []
    rows = [r for r in doc.get("rows", []) if r.get("mode") == "train" and r.get("precision", "fp32") == "fp32"]
    mine = [r for r in rows if r.get("impl") == "ours"]
    # the grouped form (PyTorch's net is grouped too); the two towers on one device where
    # the grouped form has no row
    ours = next((r for r in mine if "grouped" in str(r.get("towers"))), None) or next(iter(mine), None)
    torch = next((r for r in rows if r.get("impl") == "torch eager"), None)
    if ours is None:
        return []
    form = "grouped" if "grouped" in str(ours.get("towers")) else f"towers={ours.get('towers')}"
    row = {"layer": f"AlexNet {form}", "op": "train step", "status": ours.get("status")}
    if ours.get("images_per_s") and torch and torch.get("images_per_s"):
        row.update(ours_ms=ours.get("ms_per_batch"), base_ms=torch.get("ms_per_batch"),
                   ratio=torch["images_per_s"] / ours["images_per_s"])
    elif ours.get("status") == "ok" and not ours.get("images_per_s"):
        row["status"] = "not timed"
    if torch is None or not torch.get("images_per_s"):
        row["base_missing"] = True
    return [row]


def judge(kind: str, precision: str, doc) -> dict:
    """One target: {kind, precision, limit, status, worst, where, over, rows, failed, detail}."""
    limit = LIMITS[kind]
    rows = step_rows(doc) if kind == "step" else kernel_rows(doc, kind, precision)
    t = {"kind": kind, "precision": precision, "limit": limit, "rows": len(rows), "worst": None, "where": "",
         "over": 0, "failed": 0, "detail": ""}
    if not rows:
        t["status"] = NOT_MEASURED
        group = "fp32" if precision == "fp32" else "tc"
        t["detail"] = "no rows" if doc is not None else f"{FILES[(kind, group)]} missing"
        return t
    no_figure, no_base = [], []
    for r in rows:
        ratio = ratio_of(r)
        name = f"{r.get('layer')} {r.get('op')}"
        if r.get("status") != "ok" or not r.get("ours_ms"):
            no_figure.append(f"{name}: {r.get('status')}")
            continue
        if ratio is None:
            no_base.append(name)
            continue
        if t["worst"] is None or ratio > t["worst"]:
            t["worst"], t["where"] = ratio, name
        t["over"] += ratio > limit
    t["failed"] = len(no_figure)
    notes = []
    if t["over"]:
        notes.append(f"{t['over']} of {len(rows)} over {limit:g}")
    if no_figure:
        notes.append(f"{len(no_figure)} without our figure ({'; '.join(no_figure[:3])})")
    if no_base:
        notes.append(f"{len(no_base)} without a baseline time ({', '.join(no_base[:3])})")
    partial = bool(doc.get("partial")) if isinstance(doc, dict) else False
    if partial:
        notes.append("run cut short")
    if t["over"] or no_figure:
        t["status"] = FAIL
    elif no_base or partial or t["worst"] is None:
        t["status"] = INCOMPLETE
    else:
        t["status"] = PASS
    t["detail"] = "; ".join(notes) or f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    return t


def targets(out) -> list[dict]:
    """Every target of a gpu_check folder, float32 first, then per tensor-core precision."""
    out = Path(out)
    docs = {key: load(out, name) for key, name in FILES.items()}
    res = [judge(kind, "fp32", docs[(kind, "fp32")]) for kind in ("conv", "fc", "step")]
    for p in TC_PRECISIONS:
        res += [judge(kind, p, docs[(kind, "tc")]) for kind in ("conv", "fc")]
    return res


def _label(t) -> str:
    what = {"conv": "every conv layer and direction", "fc": "FC GEMMs (fc6-fc8 fwd, dgrad, wgrad)",
            "step": "training step, grouped AlexNet"}[t["kind"]]
    base = BASELINE[t["kind"]]
    at = {"fp32": "float32, TF32 off", "tf32": "tf32, TF32 allowed", "bf16": "bf16 tensors",
          "3xtf32": "float32, TF32 off"}[t["precision"]]
    return f"{t['precision']}: {what} vs {base} ({at})"


def targets_markdown(ts: list[dict]) -> str:
    lines = ["| target | limit | worst measured ratio | where | result | detail |", "|---|---|---|---|---|---|"]
    for t in ts:
        worst = f"{t['worst']:.2f}" if t["worst"] is not None else "-"
        result = f"**{t['status']}**" if t["status"] != PASS else PASS
        lines.append(f"| {_label(t)} | <= {t['limit']:g} | {worst} | {t['where'] or '-'} | {result} "
                     f"| {t['detail'].replace('|', '/')} |")
    return "\n".join(lines)


def ratio_table(out, kind: str) -> str:
    """(layer, op) x precision: the measured ratios of `kind` ("conv" or "fc"), an over-limit
    ratio in bold, a row without our figure by its status; "-" where not measured."""
    out = Path(out)
    limit = LIMITS[kind]
    cells: dict = {}
    for group in ("fp32", "tc"):
        doc = load(out, FILES[(kind, group)])
        for p in PRECISIONS if group == "tc" else ("fp32",):
            if group == "tc" and p == "fp32":
                continue
            for r in kernel_rows(doc, kind, p):
                ratio = ratio_of(r)
                if r.get("status") != "ok" or not r.get("ours_ms"):
                    cell = str(r.get("status", "no figure"))[:40].replace("|", "/")
                elif ratio is None:
                    cell = "no baseline"
                else:
                    cell = f"**{ratio:.2f}**" if ratio > limit else f"{ratio:.2f}"
                cells.setdefault((r.get("layer"), r.get("op")), {})[p] = cell
    if not cells:
        return ""
    head = "| layer | op | " + " | ".join(f"{p} ours/{BASELINE[kind]}" for p in PRECISIONS) + " |"
    lines = [head, "|---|---|" + "---|" * len(PRECISIONS)]
    for (layer, op), c in cells.items():
        lines.append(f"| {layer} | {op} | " + " | ".join(c.get(p, "-") for p in PRECISIONS) + " |")
    return "\n".join(lines)


def markdown(out) -> str:
    parts = ["## Targets (measured on this card; ratio = ours / baseline, below 1 is faster)", "",
             targets_markdown(targets(out))]
    for kind, title in (("conv", "Convolutions"), ("fc", "Fully connected GEMMs")):
        table = ratio_table(out, kind)
        if table:
            parts += ["", f"### {title}: ours / {BASELINE[kind]} per precision (bold: over {LIMITS[kind]:g})", "",
                      table]
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="a bench/gpu_check.sh output folder ($OUT)")
    ap.add_argument("--json", metavar="PATH", help="also write the targets as JSON")
    ap.add_argument("--brief", action="store_true", help="only the targets table (not the per-layer ratios)")
    args = ap.parse_args(argv)
    if not Path(args.out).is_dir():
        print(f"gpu_targets: {args.out}: not a folder", file=sys.stderr)
        return 2
    print(targets_markdown(targets(args.out)) if args.brief else markdown(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(targets(args.out), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
