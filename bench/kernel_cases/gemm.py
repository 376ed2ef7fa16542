"""The fully connected layers' GEMMs: fc6 9216->4096, fc7 4096->4096, fc8 4096->1000 at batch
N; fwd y = x·wᵀ, dgrad dx = dy·w, wgrad dw = dyᵀ·x. Ours is the GEMM kernel called directly
(csrc/gemm.cuh for fp32, csrc/gemm_tc.cuh for 3xtf32, tf32 and bf16), against torch.mm at
the same precision (cuBLAS: TF32 off for fp32 and 3xtf32, allowed for tf32, bfloat16
tensors for bf16; harness/precision.py); TFLOP/s = 2·M·N·K / time. The float64 reference
takes the operands rounded as ours rounds them, and ours must agree with the baseline
within the precision's tolerance too (the "ours vs" column), before it is timed. The
kernel-version rows are fp32's (gemm_tc has one version)."""

from __future__ import annotations

import numpy as np
from harness import precision as P
from harness.validation import MISMATCH, OK, describe_error, rel_err
from harness.versions import forced, versions

from cuda_convnet.alexnet_shapes import fc_layers
from cuda_convnet.backends import poison_outputs

FC = tuple(fc_layers())


def gemm_calls(backend, dev, precision="fp32"):
    """direction -> fn(x, w, dy) for ours: the GEMM kernel itself on a kernel backend
    (the calls LinearOps makes: gemm for fp32, gemm_tc otherwise), the reference's NumPy
    expressions on the cpu backend (operands rounded as the precision rounds them)."""
    ext = getattr(backend, "ext", None)
    if ext is None or not hasattr(ext, "gemm"):
        from cuda_convnet.reference.precision import round_operand

        r = lambda a: round_operand(a, precision)  # noqa: E731
        return {"fwd": lambda x, w, dy: r(x) @ r(w).T, "dgrad": lambda x, w, dy: r(dy) @ r(w),
                "wgrad": lambda x, w, dy: r(dy).T @ r(x)}
    gemm, s = backend._gemm, backend._stream  # LinearOps' one GEMM call (keyword arguments, kernel_versions)

    def fwd(x, w, dy):
        n, k = x.shape
        y = backend._empty((n, w.shape[0]))
        gemm("linear", precision, x, w, y, None, n, w.shape[0], k, False, True, s())
        return y

    def dgrad(x, w, dy):
        dx = backend._empty(x.shape)
        gemm("linear_backward", precision, dy, w, dx, None, dy.shape[0], w.shape[1], w.shape[0], False, False, s())
        return dx

    def wgrad(x, w, dy):
        dw = backend._empty(w.shape)
        gemm("linear_backward", precision, dy, x, dw, None, w.shape[0], w.shape[1], x.shape[0], True, False, s())
        return dw

    return {"fwd": fwd, "dgrad": dgrad, "wgrad": wgrad}


def run_gemm(dev, backend, torch, timing, seed, batch, div, tol, precision="fp32"):
    rows = []
    ours = gemm_calls(backend, dev, precision)
    bl = P.Baseline(torch, precision) if torch is not None else None
    mm = lambda a, b: torch.mm(a, b)  # noqa: E731
    base = {"fwd": lambda x, w, dy: mm(x, w.t()), "dgrad": lambda x, w, dy: mm(dy, w),
            "wgrad": lambda x, w, dy: mm(dy.t(), x)} if torch is not None else {}
    for li, (name, fan_in, fan_out) in enumerate(FC):
        fan_in = fan_in // div if name != "fc6" else 6 * 6 * max(2, 256 // div)
        fan_out = max(2, fan_out // div)
        def make(s, fan_in=fan_in, fan_out=fan_out):
            return (dev.randn(s, (batch, fan_in)), dev.randn(s + 1, (fan_out, fan_in), fan_in ** -0.5),
                    dev.randn(s + 2, (batch, fan_out)))
        vin = make(seed + 100 * li)
        h = [dev.get(a).astype(np.float64) for a in P.rounded(dev, vin, precision)]
        refs = {"fwd": h[0] @ h[1].T, "dgrad": h[2] @ h[1], "wgrad": h[2].T @ h[0]}
        nbytes = 4 * (batch * fan_in + fan_in * fan_out + batch * fan_out)
        nsets = timing.sets(nbytes, dev)
        sets = [vin] + [make(seed + 100 * li + 10 * (i + 1)) for i in range(nsets - 1)]
        # The baseline's tensors, in its dtype (bf16 copies made once, not timed).
        tsets = [tuple(bl.tensor(dev.to_torch(a)) for a in s_) for s_ in sets] if torch is not None else None
        for d in ("fwd", "dgrad", "wgrad"):
            m, n, k = {"fwd": (batch, fan_out, fan_in), "dgrad": (batch, fan_in, fan_out),
                       "wgrad": (fan_out, fan_in, batch)}[d]
            flop = 2.0 * m * n * k
            row = {"layer": name, "op": d, "precision": precision, "mnk": f"{m}x{n}x{k}", "gflop": flop / 1e9}
            ref = dev.put(refs[d])
            base_out = None
            if base:
                try:
                    with bl.active():
                        base_out = P.as_float32(dev, base[d](*tsets[0]))
                        row["err_base"] = rel_err(base_out, ref)
                        st = timing.run(dev, lambda i, d=d, tsets=tsets, nsets=nsets: base[d](*tsets[i % nsets]),
                                        side="torch")
                    row["base_ms"] = st["median_s"] * 1e3
                    row["base_tflops"] = flop / st["median_s"] / 1e12
                except Exception as e:  # noqa: BLE001
                    row["base_status"] = describe_error(e)
            _measure_ours(row, ours[d], vin, sets, ref, flop, dev, timing, tol, base_out, precision)
            rows.append(row)
            # every kernel version of the fp32 GEMM, side by side (gemm_tc has one version)
            for v in versions(backend, "linear") if precision == "fp32" else ():
                vrow = {"layer": name, "op": f"{d} v{v}", "precision": precision, "mnk": row["mnk"],
                        "gflop": row["gflop"], "version": v}
                vrow.update({k: row[k] for k in ("base_ms", "base_tflops", "err_base") if k in row})
                with forced(backend, ("linear", "linear_backward"), v):
                    _measure_ours(vrow, ours[d], vin, sets, ref, flop, dev, timing, tol, base_out, precision)
                rows.append(vrow)
    return rows


def _measure_ours(row, fn, vin, sets, ref, flop, dev, timing, tol, base_out=None, precision="fp32"):
    """Ours on one GEMM: validated (outputs poisoned; against the reference, and against the
    baseline at the same precision when there is one), then timed over the rotated sets."""
    try:
        with poison_outputs():
            out = fn(*vin)
            row["err_ours"] = rel_err(out, ref)
        if base_out is not None:
            row["err_vs_base"] = rel_err(out, base_out)
        if not (row["err_ours"] <= tol and row.get("err_vs_base", 0.0) <= P.VS_BASE_TOL[precision]):
            row["status"] = MISMATCH
        else:
            st = timing.run(dev, lambda i: fn(*sets[i % len(sets)]))
            row.update(ours_ms=st["median_s"] * 1e3, ours_calls=st["calls"], status=OK)
            row["ours_tflops"] = flop / st["median_s"] / 1e12
            if row.get("base_ms"):
                row["ratio"] = row["ours_ms"] / row["base_ms"]
    except Exception as e:  # noqa: BLE001
        row["status"] = describe_error(e)


def gemm_columns(dev):
    b = "cuBLAS" if dev.kind == "cuda" else "torch"
    return [("layer", "layer", "{}"), ("op", "op", "{}"), ("precision", "precision", "{}"), ("mnk", "MxNxK", "{}"),
            ("ours_ms", "ours ms", "{:.3f}"), ("ours_tflops", "ours TFLOP/s", "{:.2f}"),
            ("base_ms", f"{b} ms", "{:.3f}"), ("base_tflops", f"{b} TFLOP/s", "{:.2f}"),
            ("ratio", f"ours/{b}", "{:.2f}"), ("err_ours", "err ours", "{:.1e}"), ("err_base", f"err {b}", "{:.1e}"),
            ("err_vs_base", f"ours vs {b}", "{:.1e}"), ("status", "status", "{}")]
