"""Our convolution kernels against cuDNN (through PyTorch), layer by layer, on AlexNet's
shapes (ARCHITECTURE.md §9: each conv layer, forward, dgrad and wgrad, at least as fast as cuDNN).

Layers, batch 128 by default on a GPU (paper §3.5, Figure 2; cuda_convnet/alexnet_shapes.py,
227x227 inputs so that conv1 gives 55x55 with no padding, as its docstring explains):

    one-tower grouped form (groups=2 is the two towers on one device, §3.2)
      conv1  227x227x3   -> 96   11x11 stride 4
      conv2  27x27x96    -> 256  5x5 pad 2, groups 2
      conv3  13x13x256   -> 384  3x3 pad 1            (sees both towers)
      conv4  13x13x384   -> 384  3x3 pad 1, groups 2
      conv5  13x13x384   -> 256  3x3 pad 1, groups 2
    per-tower form (what each GPU of the paper ran: half the output channels, groups 1;
    conv3 still reads all 256 maps of both towers)
      conv1/t 3->48, conv2/t 48->128, conv3/t 256->192, conv4/t 192->192, conv5/t 192->128

For each layer and direction — fwd (with bias), dgrad (dL/dx), wgrad (dL/dw), bwd (dx, dw and
db together, what ``conv2d_backward`` returns) — the table gives our time, our TFLOP/s, the
same op in PyTorch on the same device in the same run (cuDNN, channels_last, float32 with
TF32 disabled, cudnn.benchmark on), the ratio ours/cuDNN (time; below 1 is faster), and the
relative L2 error of both against a float64 reference (PyTorch float64 on the same device;
the NumPy reference in float64 when PyTorch is absent). Validation runs on fresh random
inputs with every output of ours poisoned (NaN) first, before anything is timed; a row that
fails it is reported MISMATCH and not timed. Timed calls rotate among several input sets
so that the L2 cache does not flatter small layers; the median of many event-timed calls
is reported.

On a kernel backend each direction is also timed with each of its kernel versions forced
(``kernel_versions["conv2d"]``, ``["conv2d_dgrad"]``, ``["conv2d_wgrad"]``; rows "fwd v1",
"fwd v2", ..., "dgrad v1", ..., "wgrad v1", ...: every version side by side,
validated like the rest; a version that cannot run a layer, conv_fwd_kernel2 on conv1's
C = 3, gets a note instead of a row).

Ours is ``backend.conv2d``, ``backend.conv2d_dgrad(dy, w, x_shape, ...) -> dx``,
``backend.conv2d_wgrad(x, dy, w_shape, ...) -> (dw, db)`` (each direction's launches alone)
and ``backend.conv2d_backward`` (both; the reference's signatures). Every row must carry
our figure: a row without one (an op the backend lacks, a failed validation) makes the
run exit 1.

--precision (fp32, 3xtf32, tf32, bf16, a comma-separated list or 'all'; default fp32) gives
rows per precision, ours (``precision=`` on every call) against cuDNN at the same precision:
TF32 allowed for tf32, bfloat16 channels_last tensors for bf16, float32 with TF32 off for
fp32 and 3xtf32 (bench/harness/precision.py). The float64 reference then takes the operands
rounded as ours rounds them, and ours must also agree with the baseline within that
precision's tolerance (precision.VS_BASE_TOL, the "ours vs" column) before it is timed.

Without a GPU ("CPU mode"), ours is the NumPy reference (--backend cpu) or the emulated
kernels (--backend emu), against PyTorch CPU, at a small batch.

    python bench/conv_bench.py                          # GPU if usable, else CPU mode
    python bench/conv_bench.py --backend cpu --batch 4  # CPU mode
    python bench/conv_bench.py --smoke                  # batch 1, one call each (tests)
    python bench/conv_bench.py --json out/conv.json --layers conv2,conv3
    python bench/conv_bench.py --precision all          # fp32, 3xtf32, tf32 and bf16 rows
    python bench/conv_bench.py --directions fwd,dgrad,wgrad   # without the combined bwd rows
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

import numpy as np  # noqa: E402
from harness import precision as P  # noqa: E402
from harness.cli import common_args  # noqa: E402
from harness.devices import import_torch, make_device, pick_backend  # noqa: E402
from harness.report import environment, format_table, write_json  # noqa: E402
from harness.timing import timing_for  # noqa: E402
from harness.validation import MISMATCH, OK, describe_error, rel_err  # noqa: E402
from harness.versions import forced, versions  # noqa: E402

import cuda_convnet as ccn  # noqa: E402
from cuda_convnet.alexnet_shapes import conv_layers, tower_layers  # noqa: E402
from cuda_convnet.backends import poison_outputs  # noqa: E402

# name, input H (= W), C, K, filter R (= S), stride, padding, groups
GROUPED = [tuple(layer)[:8] for layer in conv_layers()]
TOWER = [tuple(layer)[:8] for layer in tower_layers()]
DIRECTIONS = ("fwd", "dgrad", "wgrad", "bwd")
TOL = 1e-3          # float32 against float64, relative L2 (METHOD.md: fp32 lands far under)


class Layer:
    def __init__(self, spec, batch, shrink=1):
        name, hw, c, k, r, stride, pad, groups = spec
        if shrink > 1:  # narrower layers for the emulator; 3 input colours stay 3
            c = c if c == 3 else max(groups, c // shrink // groups * groups)
            k = max(groups, k // shrink // groups * groups)
        self.name, self.n, self.h, self.c, self.k, self.r = name, batch, hw, c, k, r
        self.stride, self.pad, self.groups = stride, pad, groups
        self.p = (hw + 2 * pad - r) // stride + 1
        self.x_shape = (batch, hw, hw, c)
        self.w_shape = (k, r, r, c // groups)
        self.y_shape = (batch, self.p, self.p, k)

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.pad, groups=self.groups)

    def flops(self, direction) -> float:
        """2·N·P·Q·K·R·S·C/g for each of fwd, dgrad, wgrad (bwd = dgrad + wgrad)."""
        one = 2.0 * self.n * self.p * self.p * self.k * self.r * self.r * (self.c // self.groups)
        return 2 * one if direction == "bwd" else one

    def describe(self):
        g = f" g{self.groups}" if self.groups > 1 else ""
        return (f"{self.n}x{self.h}x{self.h}x{self.c}->{self.k} {self.r}x{self.r}/{self.stride}"
                f" p{self.pad}{g}")

    def nbytes(self):
        return 4 * (math.prod(self.x_shape) + math.prod(self.w_shape) + self.k + math.prod(self.y_shape))


# --------------------------------------------------------------------------- the baseline

class TorchConv:
    """The same convolution in PyTorch, on NCHW views of our NHWC / KRSC arrays (zero-copy:
    an NHWC array seen as NCHW is PyTorch's channels_last), in the dtype of `base`
    (a precision.Baseline; None: float32): bf16 tensors are converted once, in `prepare`."""

    def __init__(self, torch, device, layer, base=None):
        self.torch, self.dev, self.L = torch, device, layer
        self.base = base
        self.conv_bwd = torch.ops.aten.convolution_backward

    def nchw(self, a):
        return self.dev.to_torch(a).permute(0, 3, 1, 2)

    def prepare(self, x, w, b, dy):
        """Torch tensors (x, w, b, dy) for the calls below: NCHW channels_last views, in the
        baseline's dtype (a converted copy for bf16, made here and not timed)."""
        cast = self.base.tensor if self.base is not None else (lambda t: t)
        return (cast(self.nchw(x)), cast(self.nchw(w)), cast(self.dev.to_torch(b)), cast(self.nchw(dy)))

    def fwd(self, x, w, b):
        return self.torch.nn.functional.conv2d(x, w, b, **self._kw())

    def backward(self, x, w, dy, mask):
        L = self.L
        return self.conv_bwd(dy, x, w, [L.k] if mask[2] else None,
                             [L.stride] * 2, [L.pad] * 2, [1, 1], False, [0, 0], L.groups, list(mask))

    def _kw(self):
        return dict(stride=self.L.stride, padding=self.L.pad, groups=self.L.groups)

    def to_ours_layout(self, t):
        """NCHW (or KCRS) tensor -> a contiguous NHWC (KRSC) float32 array of the device."""
        if t.dim() == 4:
            t = t.permute(0, 2, 3, 1)
        return self.dev.from_torch(t.float().contiguous())


def reference(device, torch, layer, x, w, b, dy, precision="fp32"):
    """float64 y, dx, dw, db on the device (PyTorch float64), or the NumPy reference; the
    GEMM operands x, w and dy rounded as `precision` rounds them, db from the unrounded dy
    (as every backend computes it)."""
    if precision not in ("fp32", "3xtf32"):
        y, dx, dw, _ = reference(device, torch, layer, *P.rounded(device, (x, w), precision), b,
                                 *P.rounded(device, (dy,), precision))
        db = device.put(device.get(dy).astype(np.float64).sum(axis=(0, 1, 2)))
        return y, dx, dw, db
    if torch is not None:
        t = TorchConv(torch, device, layer)
        x64, w64, dy64 = (t.nchw(a).double() for a in (x, w, dy))
        b64 = device.to_torch(b).double()
        y = torch.nn.functional.conv2d(x64, w64, b64, **t._kw())
        dx, dw, db = t.conv_bwd(dy64, x64, w64, [layer.k], [layer.stride] * 2, [layer.pad] * 2,
                                [1, 1], False, [0, 0], layer.groups, [True, True, True])
        return tuple(t.to_ours_layout(v) for v in (y, dx, dw, db))
    ref = ccn.backend("cpu")
    h = [device.get(a).astype(np.float64) for a in (x, w, b, dy)]
    y = ref.conv2d(h[0], h[1], h[2], **layer.kwargs)
    dx, dw, db = ref.conv2d_backward(h[0], h[1], h[3], **layer.kwargs)
    return tuple(device.put(v) for v in (y, dx, dw, db))


# --------------------------------------------------------------------------- ours

def ours_calls(backend, layer, precision="fp32"):
    """direction -> fn(x, w, b, dy) returning the outputs to compare. fp32 calls the ops
    without the keyword (their default), as the Net does."""
    kw = dict(layer.kwargs, **({} if precision == "fp32" else {"precision": precision}))
    return {
        "fwd": lambda x, w, b, dy: (backend.conv2d(x, w, b, **kw),),
        "dgrad": lambda x, w, b, dy: (backend.conv2d_dgrad(dy, w, layer.x_shape, **kw),),
        "wgrad": lambda x, w, b, dy: tuple(backend.conv2d_wgrad(x, dy, layer.w_shape, **kw)),
        "bwd": lambda x, w, b, dy: tuple(backend.conv2d_backward(x, w, dy, **kw)),
    }


def baseline_calls(tconv):
    return {
        "fwd": lambda x, w, b, dy: (tconv.fwd(x, w, b),),
        "dgrad": lambda x, w, b, dy: tconv.backward(x, w, dy, (True, False, False))[:1],
        "wgrad": lambda x, w, b, dy: tconv.backward(x, w, dy, (False, True, False))[1:2],
        "bwd": lambda x, w, b, dy: tconv.backward(x, w, dy, (True, True, True)),
    }


def expected(direction, ref):
    """The float64 outputs a direction's outputs are compared with (ref = y, dx, dw, db)."""
    y, dx, dw, db = ref
    return {"fwd": (y,), "dgrad": (dx,), "wgrad": (dw, db), "bwd": (dx, dw, db)}[direction]


def worst_err(outputs, refs, to_ours=None):
    err = 0.0
    for out, r in zip(outputs, refs):
        if to_ours is not None:
            out = to_ours(out)
        err = max(err, rel_err(out, r))
    return err


def make_inputs(device, layer, seed):
    """x, w, b, dy: random (never zeros), w scaled like a fan-in initialisation."""
    fan_in = layer.r * layer.r * layer.c // layer.groups
    return (device.randn(seed, layer.x_shape), device.randn(seed + 1, layer.w_shape, 1 / math.sqrt(fan_in)),
            device.randn(seed + 2, (layer.k,)), device.randn(seed + 3, layer.y_shape))


def bench_layer(layer, device, backend, torch, timing, seed, tol, precision="fp32", directions=DIRECTIONS):
    rows = []
    vin = make_inputs(device, layer, seed)
    ref = reference(device, torch, layer, *vin, precision=precision)
    nsets = timing.sets(layer.nbytes(), device)
    sets = [make_inputs(device, layer, seed + 100 + 10 * i) for i in range(nsets)]
    ours = ours_calls(backend, layer, precision)
    tconv = TorchConv(torch, device, layer, P.Baseline(torch, precision)) if torch is not None else None
    base = baseline_calls(tconv) if tconv else {}
    if tconv:  # the baseline's tensors, converted once (bf16) outside the timed calls
        tvin, tsets = tconv.prepare(*vin), [tconv.prepare(*s) for s in sets]
    for direction in directions:
        row = {"layer": layer.name, "op": direction, "precision": precision, "shape": layer.describe(),
               "gflop": layer.flops(direction) / 1e9, "rotation_sets": nsets}
        refs = expected(direction, ref)
        base_out = None
        # --- baseline: validate (a TF32 path would show here), then time
        if direction in base:
            fn = base[direction]
            try:
                with tconv.base.active():
                    base_out = [tconv.to_ours_layout(t) for t in fn(*tvin) if t is not None]
                    row["err_base"] = worst_err(base_out, refs)
                    st = timing.run(device, lambda i, fn=fn: fn(*tsets[i % nsets]), side="torch")
                row.update(base_ms=st["median_s"] * 1e3, base_spread=(st["p90_s"] - st["p10_s"]) / st["median_s"])
                row["base_tflops"] = layer.flops(direction) / st["median_s"] / 1e12
            except Exception as e:  # noqa: BLE001  (report, carry on)
                row["base_status"] = describe_error(e)
        # --- ours: validate with poisoned outputs (against the reference, and against the
        # baseline at the same precision), then time
        measure_ours(row, ours[direction], vin, refs, sets, layer.flops(direction), device, timing, tol,
                     base_out, precision)
        if row.get("ours_ms") and row.get("base_ms"):
            row["ratio"] = row["ours_ms"] / row["base_ms"]
        if precision in ("fp32", "3xtf32") and row.get("err_base", 0) > P.TF32_SUSPECT:
            row["base_status"] = f"baseline err {row['err_base']:.1e}: TF32 on?"
        rows.append(row)
        if direction in VERSIONED and precision == "fp32":  # the fp32 kernel versions (a tensor-core one has one)
            rows += version_rows(direction, row, ours[direction], vin, refs, sets, layer, device, backend, timing,
                                 tol)
    device.sync()
    return rows


def measure_ours(row, fn, vin, refs, sets, flops, device, timing, tol, base_out=None, precision="fp32"):
    """Ours on one direction: validated with poisoned outputs (against the reference, and
    against the baseline's outputs at the same precision when given, within
    precision.VS_BASE_TOL), then timed over the rotated sets."""
    try:
        with poison_outputs():
            out = fn(*vin)
            row["err_ours"] = worst_err(out, refs)
        if base_out is not None:
            row["err_vs_base"] = worst_err(out, base_out)
        if not (row["err_ours"] <= tol and row.get("err_vs_base", 0.0) <= P.VS_BASE_TOL[precision]):
            row["status"] = MISMATCH
        else:
            st = timing.run(device, lambda i: fn(*sets[i % len(sets)]))
            row.update(ours_ms=st["median_s"] * 1e3, ours_spread=(st["p90_s"] - st["p10_s"]) / st["median_s"],
                       ours_calls=st["calls"], status=OK)
            row["ours_tflops"] = flops / st["median_s"] / 1e12
    except Exception as e:  # noqa: BLE001
        row["status"] = describe_error(e)


# direction -> (op, the op's arguments that kernel_version needs, from (x, w, b, dy))
VERSIONED = {
    "fwd": ("conv2d", lambda x, w, b, dy: (x, w)),
    "dgrad": ("conv2d_dgrad", lambda x, w, b, dy: (dy, w, x.shape)),
    "wgrad": ("conv2d_wgrad", lambda x, w, b, dy: (x, dy, w.shape)),
}


def version_rows(direction, pick, fn, vin, refs, sets, layer, device, backend, timing, tol):
    """One direction with each of its kernel versions forced (kernel_versions[op]), one row
    each ("fwd v<n>", "dgrad v<n>", "wgrad v<n>"), against the baseline time of the
    launcher's row `pick`. A version that cannot run the layer (e.g. conv_fwd_kernel2 needs
    C/groups % 4 == 0) has no row; `pick["versions_not_run"]` says why."""
    op, args = VERSIONED[direction]
    rows = []
    for v in versions(backend, op):
        with forced(backend, (op,), v):
            try:
                backend.kernel_version(op, *args(*vin), **layer.kwargs)
            except ValueError as e:
                pick.setdefault("versions_not_run", {})[v] = str(e).splitlines()[0]
                continue
            row = {k: pick[k] for k in ("layer", "precision", "shape", "gflop", "rotation_sets", "base_ms",
                                        "base_tflops", "err_base") if k in pick}
            row.update(op=f"{direction} v{v}", version=v)
            measure_ours(row, fn, vin, refs, sets, layer.flops(direction), device, timing, tol)
        if row.get("ours_ms") and row.get("base_ms"):
            row["ratio"] = row["ours_ms"] / row["base_ms"]
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, default_budget=0.5)
    ap.add_argument("--layers", default="all",
                    help="comma-separated names (conv1,conv3/t,...) or 'grouped', 'tower', 'all'")
    ap.add_argument("--shrink", type=int, default=None,
                    help="divide channel counts by this (default 4 with --smoke, else 1)")
    ap.add_argument("--directions", default=",".join(DIRECTIONS),
                    help=f"comma-separated, of {', '.join(DIRECTIONS)} (default: all; bwd = dgrad + wgrad + db)")
    ap.add_argument("--tol", type=float, default=TOL)
    P.add_argument(ap)
    args = ap.parse_args(argv)
    if args.shrink is None:
        args.shrink = 4 if args.smoke else 1
    precisions = P.from_args(ap, args)
    wanted_dirs = [d.strip() for d in args.directions.split(",") if d.strip()]
    if not wanted_dirs or any(d not in DIRECTIONS for d in wanted_dirs):
        ap.error(f"--directions {args.directions!r}: choose from {', '.join(DIRECTIONS)}")
    directions = tuple(d for d in DIRECTIONS if d in wanted_dirs)

    torch = import_torch()
    backend_name = pick_backend(args.backend)
    device = make_device(backend_name, torch)
    backend = ccn.backend(backend_name)
    batch = args.batch or (1 if args.smoke else 128 if device.kind == "cuda" else 4)
    specs = {"all": GROUPED + TOWER, "grouped": GROUPED, "tower": TOWER}.get(args.layers)
    if specs is None:
        wanted = args.layers.split(",")
        specs = [s for s in GROUPED + TOWER if s[0] in wanted]
        if len(specs) != len(wanted):
            ap.error(f"unknown layer in {args.layers!r}: choose from "
                     f"{', '.join(s[0] for s in GROUPED + TOWER)}")
    timing = timing_for(device, args.smoke, args.time_budget)
    env = environment(device, torch)
    label = "cuDNN" if device.kind == "cuda" else "torch"
    print(f"conv_bench: ours = backend {backend_name!r}, baseline = PyTorch "
          f"{env['torch'] or '(not installed)'} on {env['device']}; batch {batch}, precisions "
          f"{', '.join(precisions)} (each against the baseline at the same precision: bench/harness/precision.py), "
          f"validated against float64 (tol {args.tol:g}) before timing; {env['commit']}, {env['date']}")
    columns = [("layer", "layer", "{}"), ("op", "op", "{}"), ("precision", "precision", "{}"),
               ("gflop", "GFLOP", "{:.2f}"),
               ("ours_ms", "ours ms", "{:.3f}"), ("ours_tflops", "ours TFLOP/s", "{:.2f}"),
               ("base_ms", f"{label} ms", "{:.3f}"), ("base_tflops", f"{label} TFLOP/s", "{:.2f}"),
               ("ratio", f"ours/{label}", "{:.2f}"), ("err_ours", "err ours", "{:.1e}"),
               ("err_base", f"err {label}", "{:.1e}"), ("err_vs_base", f"ours vs {label}", "{:.1e}"),
               ("status", "status", "{}")]
    meta = dict(env, batch=batch, backend=backend_name, tol=args.tol, precisions=precisions, directions=directions,
                vs_base_tol={p: P.VS_BASE_TOL[p] for p in precisions})
    rows = []
    for i, spec in enumerate(specs):
        layer = Layer(spec, batch, args.shrink)
        for precision in precisions:
            rows += bench_layer(layer, device, backend, torch, timing, args.seed + 1000 * i, args.tol, precision,
                                directions)
        print(f"  {layer.name}: {layer.describe()} done", file=sys.stderr, flush=True)
        if args.json:  # after every layer: a run cut short by a time limit keeps what it measured
            write_json(args.json, "conv_bench", meta, rows, format_table(rows, columns), partial=True)

    table = format_table(rows, columns)
    print(table)
    notes = [f"{r['layer']} {r['op']} {r['precision']}: {label}: {r['base_status']}" for r in rows
             if r.get("base_status")]
    notes += [f"{r['layer']} fwd v{v}: not run: {why}" for r in rows
              for v, why in r.get("versions_not_run", {}).items()]
    for n in notes:
        print("note:", n)
    # A row without our time is a failure, whatever the reason: nothing may pass unmeasured.
    bad = [r for r in rows if r.get("status") != OK or not r.get("ours_ms")]
    print(f"conv_bench: {len(rows)} rows: {len(rows) - len(bad)} ok, {len(bad)} without our figure "
          f"({', '.join(sorted({str(r.get('status')) for r in bad})) or 'none'})")
    if args.json:
        write_json(args.json, "conv_bench", meta, rows, table, notes=notes, partial=False)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
