"""Measured / PREDICTED for the tensor-core precisions: the conv rows of a GPU run's
``conv_bench.py --precision tf32,bf16,3xtf32 --json`` beside bench/perf_model.py's
predict_conv_tc (the model of conv_tc.cu's launches), per layer, direction and precision.

    python bench/calibrate_tc.py OUT/conv_bench_tc.json [OUT/kernel_bench_tc.json] --sass-json OUT/sass.json

The performance model predicts the grouped conv layers (conv1-conv5; conv1 without dgrad,
its input is the data) and nothing yet for the tensor-core GEMM (gemm_tc): a measured row
with no prediction is counted and named under the table, so the gap shows. Every predicted
figure is a prediction; the ratio is what the first GPU run calibrates.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

import perf_model  # noqa: E402


def measured_tc(doc) -> dict:
    """(layer, direction, precision) -> our measured ms, from a conv_bench / kernel_bench
    document: the rows at a tensor-core precision with our figure (no version rows)."""
    out = {}
    for r in doc.get("rows", []):
        if r.get("precision") in perf_model.TC_PRECISIONS and "version" not in r and r.get("ours_ms") \
                and r.get("layer") and r.get("status") == "ok":
            out[(r["layer"], r["op"], r["precision"])] = float(r["ours_ms"])
    return out


def table(measured: dict, pred: dict) -> tuple[str, list]:
    lines = ["| layer | direction | precision | measured ms | predicted ms | measured / predicted |",
             "|---|---|---|---|---|---|"]
    unmatched = []
    for key, ms in measured.items():
        if key in pred:
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {ms:.3f} | {pred[key]:.3f} | {ms / pred[key]:.2f} |")
        else:
            unmatched.append(key)
    return "\n".join(lines), unmatched


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="conv_bench.py / kernel_bench.py --json files at tensor-core precisions")
    ap.add_argument("--sass-json", help="kernel counts from `sass_report.py --json` (default: build them)")
    args = ap.parse_args(argv)
    measured, missing = {}, []
    batch = None
    for path in args.results:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):  # a benchmark that failed or was cut wrote nothing
            missing.append(path)
            continue
        batch = batch or doc.get("env", {}).get("batch")
        measured.update(measured_tc(doc))
    try:
        pred = perf_model.predict_conv_tc(batch or 128, perf_model.load_sass(args.sass_json))
    except RuntimeError as e:
        print(f"calibrate_tc: {e}", file=sys.stderr)
        return 2
    print(f"## Measured / predicted, tensor-core precisions (batch {batch or 128}; predicted = a model)\n")
    text, unmatched = table(measured, pred)
    print(text)
    if missing:
        print(f"\nno measurements (file missing or unreadable): {', '.join(missing)}")
    if unmatched:
        print(f"\n{len(unmatched)} measured rows have no prediction: "
              f"{', '.join(' '.join(k) for k in unmatched[:12])}{' ...' if len(unmatched) > 12 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
