"""Memory-bound kernels against the card's copy bandwidth, and our GEMM on the fully
connected layers against cuBLAS (ARCHITECTURE.md §9: memory-bound kernels at 80%+ of the
measured device-to-device copy bandwidth).

Memory-bound ops, at AlexNet's shapes for batch N (128 on a GPU), NHWC float32:

    lrn / lrn_backward              after conv1 (55x55x96) and conv2 (27x27x256), §3.3
    max_pool / max_pool_backward    3x3 stride 2 after conv1, conv2, conv5, §3.4
    relu / relu_backward            conv1's output (55x55x96), §3.1
    tanh / tanh_backward            the same shape
    dropout / dropout_backward      fc6's output (4096) and, for a bandwidth-sized case,
                                    conv1's output; the paper's mode, Philox mask, §4.2
    softmax_cross_entropy (+ _bwd)  1000 classes
    sgd_update                      one fused launch over AlexNet's ~61M parameters, §5
    concat_channels/split_channels  where the towers meet (13x13, 128 + 128 channels), §3.2
    train_views                     uint8 256x256x3 -> float32 224x224x3 training views (crop,
                                    flip, PCA lighting, mean), §4.1; also in images/s

GB/s counts the bytes that must move: every input read once and every output written once
(e.g. lrn_backward reads x, y, dy and writes dx: 4 arrays; sgd_update reads w, g, v and
writes w, v: 5 arrays). "% copy" is that over the device-to-device copy bandwidth measured
in the same run (a 1 GiB cudaMemcpyAsync, bytes read + written). The torch column is the
nearest PyTorch op on the same device (time only; "-" where it has no direct equivalent).

GEMM rows: fc6 9216->4096, fc7 4096->4096, fc8 4096->1000 at batch N; fwd y = x·wᵀ,
dgrad dx = dy·w, wgrad dw = dyᵀ·x; ours is the GEMM kernel (csrc/gemm.cuh) called directly,
against torch.mm (cuBLAS, TF32 off), TFLOP/s = 2·M·N·K / time. --precision (fp32, 3xtf32,
tf32, bf16, a list or 'all') gives GEMM rows per precision against cuBLAS at the same
precision (kernel_cases/gemm.py, harness/precision.py); the memory-bound rows are float32.

On a kernel backend every version of a family with several kernels (LRN forward and
backward, the GEMM) is also timed with that version forced (``kernel_versions``; rows
"lrn conv1 v1", "fwd v2", ...), each validated like the others: the versions side by side.

Every row is validated before it is timed: ours (outputs poisoned with NaN first) against
the NumPy reference in float64 (per-sample ops on the first --validate-batch images, whose
results do not depend on the rest of the batch; the dropout mask is a function of the flat
index, so a prefix of the batch is a prefix of the mask), relative L2 error. Without a GPU,
ours is the reference itself (--backend cpu) or the emulated kernels (--backend emu), against
PyTorch CPU and the CPU's memory copy bandwidth.

    python bench/kernel_bench.py                 # GPU if usable, else CPU mode
    python bench/kernel_bench.py --smoke         # tiny, one call each (tests)
    python bench/kernel_bench.py --backend emu --smoke --shrink 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

from harness import precision as P  # noqa: E402
from harness.cli import common_args  # noqa: E402
from harness.devices import import_torch, make_device, pick_backend  # noqa: E402
from harness.report import environment, format_table, write_json  # noqa: E402
from harness.timing import timing_for  # noqa: E402
from harness.validation import OK  # noqa: E402
from harness.versions import forced, versions  # noqa: E402
from kernel_cases import memory_cases  # noqa: E402
from kernel_cases.case import TOL, CaseEnv, run_case  # noqa: E402
from kernel_cases.gemm import gemm_columns, run_gemm  # noqa: E402
from kernel_cases.sgd import run_sgd  # noqa: E402

import cuda_convnet as ccn  # noqa: E402

MEM_COLUMNS = [
    ("op", "op", "{}"), ("shape", "shape", "{}"), ("mbytes", "MB moved", "{:.2f}"),
    ("ours_us", "ours us", "{:.1f}"), ("ours_gbs", "ours GB/s", "{:.1f}"), ("pct_copy", "% copy", "{:.0f}"),
    ("base_us", "torch us", "{:.1f}"), ("ratio", "ours/torch", "{:.2f}"), ("err_ours", "err ours", "{:.1e}"),
    ("images_per_s", "images/s", "{:.0f}"), ("status", "status", "{}")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, default_budget=0.3)
    ap.add_argument("--shrink", type=int, default=None,
                    help="divide channel and FC widths by this (default 4 with --smoke, else 1)")
    ap.add_argument("--validate-batch", type=int, default=8,
                    help="images of the batch checked against the float64 reference (per-sample ops)")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching rows")
    ap.add_argument("--tol", type=float, default=TOL)
    P.add_argument(ap)
    args = ap.parse_args(argv)
    precisions = P.from_args(ap, args)
    if args.shrink is None:
        args.shrink = 4 if args.smoke else 1

    torch = import_torch()
    backend_name = pick_backend(args.backend)
    dev = make_device(backend_name, torch)
    backend = ccn.backend(backend_name)
    batch = args.batch or (1 if args.smoke else 128 if dev.kind == "cuda" else 8)
    timing = timing_for(dev, args.smoke, args.time_budget)
    env = environment(dev, torch)
    copy_bw = dev.copy_bandwidth(**({"nbytes": 32 << 20, "reps": 1} if args.smoke else {}))
    print(f"kernel_bench: ours = backend {backend_name!r} on {env['device']}; batch {batch}, float32 "
          f"(GEMMs: {', '.join(precisions)}, each against cuBLAS at the same precision); "
          f"copy bandwidth {copy_bw / 1e9:.1f} GB/s (read + write); baseline PyTorch "
          f"{env['torch'] or '(not installed)'}; {env['commit']}, {env['date']}")
    wanted = [w for w in args.only.split(",") if w]
    keep = lambda name: not wanted or any(w in name for w in wanted)  # noqa: E731

    meta = dict(env, batch=batch, backend=backend_name, tol=args.tol, copy_bandwidth_gbs=copy_bw / 1e9,
                precisions=precisions, vs_base_tol={p: P.VS_BASE_TOL[p] for p in precisions})
    mem_rows = []
    for i, case in enumerate(memory_cases(CaseEnv(dev, torch, batch, args.shrink))):
        if keep(case.name):
            pick = run_case(case, dev, backend, torch, timing, args.seed + 1000 * i, args.validate_batch, copy_bw,
                            args.tol)
            mem_rows.append(pick)
            for v in versions(backend, case.op):  # every kernel version of the family, side by side
                with forced(backend, (case.op,), v):
                    row = run_case(case, dev, backend, torch, timing, args.seed + 1000 * i, args.validate_batch,
                                   copy_bw, args.tol, label=f"{case.name} v{v}", base_us=pick.get("base_us"))
                mem_rows.append(dict(row, version=v))
            if args.json:  # as it goes: a run cut short by a time limit keeps what it measured
                write_json(args.json, "kernel_bench", meta, mem_rows, format_table(mem_rows, MEM_COLUMNS),
                             partial=True)
    if keep("sgd_update"):
        # the paper's 61M parameters, widths / --shrink (AlexNet/4: ~4M in smoke mode)
        mem_rows.append(run_sgd(dev, backend, torch, timing, args.seed + 77, args.shrink, copy_bw, args.tol))
    dev.sync()
    gemm_rows = [row for p in precisions
                 for row in run_gemm(dev, backend, torch, timing, args.seed + 99, batch, args.shrink, args.tol, p)] \
        if keep("gemm") or not wanted else []

    mem_table = format_table(mem_rows, MEM_COLUMNS)
    gemm_table = format_table(gemm_rows, gemm_columns(dev))
    table = mem_table + "\n\n" + gemm_table
    print(table)
    rows = mem_rows + gemm_rows
    notes = [f"{r['op']}: torch: {r['base_status']}" for r in rows if r.get("base_status")]
    for n in notes:
        print("note:", n)
    bad = [r for r in rows if r.get("status") != OK]
    print(f"kernel_bench: {len(rows)} rows: {len(rows) - len(bad)} ok, {len(bad)} failed")
    if args.json:
        write_json(args.json, "kernel_bench", meta, rows, table, notes=notes, memory_rows=len(mem_rows),
                     partial=False)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
