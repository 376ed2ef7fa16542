"""The fully connected layers' GEMMs: fc6 9216->4096, fc7 4096->4096, fc8 4096->1000 at batch
N; fwd y = x·wᵀ, dgrad dx = dy·w, wgrad dw = dyᵀ·x. Ours is the GEMM kernel (csrc/gemm.cuh)
called directly, against torch.mm (cuBLAS, TF32 off); TFLOP/s = 2·M·N·K / time."""

from __future__ import annotations

import numpy as np
from harness.validation import MISMATCH, OK, describe_error, rel_err

from cuda_convnet.alexnet_shapes import fc_layers
from cuda_convnet.backends import poison_outputs

FC = tuple(fc_layers())


def gemm_calls(backend, dev):
    """direction -> fn(x, w, dy) for ours: the GEMM kernel itself on a kernel backend
    (the calls LinearOps makes), the reference's NumPy expressions on the cpu backend."""
    ext = getattr(backend, "ext", None)
    if ext is None or not hasattr(ext, "gemm"):
        return {"fwd": lambda x, w, dy: x @ w.T, "dgrad": lambda x, w, dy: dy @ w,
                "wgrad": lambda x, w, dy: dy.T @ x}
    p, s = backend._ptr, backend._stream

    def fwd(x, w, dy):
        n, k = x.shape
        y = backend._empty((n, w.shape[0]))
        ext.gemm(p(x), p(w), p(y), 0, n, w.shape[0], k, False, True, 1.0, 0.0, False, s())
        return y

    def dgrad(x, w, dy):
        dx = backend._empty(x.shape)
        ext.gemm(p(dy), p(w), p(dx), 0, dy.shape[0], w.shape[1], w.shape[0], False, False, 1.0, 0.0, False, s())
        return dx

    def wgrad(x, w, dy):
        dw = backend._empty(w.shape)
        ext.gemm(p(dy), p(x), p(dw), 0, w.shape[0], w.shape[1], x.shape[0], True, False, 1.0, 0.0, False, s())
        return dw

    return {"fwd": fwd, "dgrad": dgrad, "wgrad": wgrad}


def run_gemm(dev, backend, torch, timing, seed, batch, div, tol):
    rows = []
    ours = gemm_calls(backend, dev)
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
        h = [dev.host(a).astype(np.float64) for a in vin]
        refs = {"fwd": h[0] @ h[1].T, "dgrad": h[2] @ h[1], "wgrad": h[2].T @ h[0]}
        nbytes = 4 * (batch * fan_in + fan_in * fan_out + batch * fan_out)
        nsets = timing.sets(nbytes, dev)
        sets = [vin] + [make(seed + 100 * li + 10 * (i + 1)) for i in range(nsets - 1)]
        tsets = [tuple(dev.to_torch(a) for a in s_) for s_ in sets] if torch is not None else None
        for d in ("fwd", "dgrad", "wgrad"):
            m, n, k = {"fwd": (batch, fan_out, fan_in), "dgrad": (batch, fan_in, fan_out),
                       "wgrad": (fan_out, fan_in, batch)}[d]
            flop = 2.0 * m * n * k
            row = {"layer": name, "op": d, "mnk": f"{m}x{n}x{k}", "gflop": flop / 1e9}
            ref = dev.asarray(refs[d])
            if base:
                try:
                    row["err_base"] = rel_err(dev.from_torch(base[d](*tsets[0])), ref)
                    st = timing.run(dev, lambda i, d=d, tsets=tsets, nsets=nsets: base[d](*tsets[i % nsets]),
                                    side="torch")
                    row["base_ms"] = st["median_s"] * 1e3
                    row["base_tflops"] = flop / st["median_s"] / 1e12
                except Exception as e:  # noqa: BLE001
                    row["base_status"] = describe_error(e)
            try:
                with poison_outputs():
                    row["err_ours"] = rel_err(ours[d](*vin), ref)
                if not row["err_ours"] <= tol:
                    row["status"] = MISMATCH
                else:
                    st = timing.run(dev, lambda i, d=d, sets=sets, nsets=nsets: ours[d](*sets[i % nsets]))
                    row.update(ours_ms=st["median_s"] * 1e3, ours_calls=st["calls"], status=OK)
                    row["ours_tflops"] = flop / st["median_s"] / 1e12
                    if row.get("base_ms"):
                        row["ratio"] = row["ours_ms"] / row["base_ms"]
            except Exception as e:  # noqa: BLE001
                row["status"] = describe_error(e)
            rows.append(row)
    return rows


def gemm_columns(dev):
    b = "cuBLAS" if dev.kind == "cuda" else "torch"
    return [("layer", "layer", "{}"), ("op", "op", "{}"), ("mnk", "MxNxK", "{}"), ("ours_ms", "ours ms", "{:.3f}"),
            ("ours_tflops", "ours TFLOP/s", "{:.2f}"), ("base_ms", f"{b} ms", "{:.3f}"),
            ("base_tflops", f"{b} TFLOP/s", "{:.2f}"), ("ratio", f"ours/{b}", "{:.2f}"),
            ("err_ours", "err ours", "{:.1e}"), ("err_base", f"err {b}", "{:.1e}"), ("status", "status", "{}")]
