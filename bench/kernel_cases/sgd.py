"""sgd_update (momentum and weight decay, §5) over every AlexNet parameter tensor, in place:
one fused launch for ours, torch.optim.SGD (fused, else foreach) for the baseline."""

from __future__ import annotations

import math

import numpy as np
from harness.validation import MISMATCH, OK, describe_error, rel_err

import cuda_convnet as ccn
from cuda_convnet.alexnet_shapes import conv_layers, fc_layers

SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


def alexnet_param_shapes(div=1):
    """The paper's parameter tensors (grouped one-device form, alexnet_shapes.param_shapes);
    widths / div."""
    d = lambda c: max(2, c // div // 2 * 2)  # noqa: E731  (even, for groups=2)
    shapes = []
    for L in conv_layers():
        c = L.c if L.c == 3 else d(L.c)  # the 3 input colours stay 3
        shapes += [(d(L.k), L.r, L.r, c // L.groups), (d(L.k),)]
    fcs = fc_layers()
    fc_in = fcs[0][1] // conv_layers()[-1].k * d(conv_layers()[-1].k)  # conv5's 6x6 maps, narrowed
    for i, (_, _, out) in enumerate(fcs):
        out = max(2, out // div) if i == len(fcs) - 1 else d(out)
        shapes += [(out, fc_in), (out,)]
        fc_in = out
    return shapes


def run_sgd(dev, backend, torch, timing, seed, div, copy_bw, tol):
    """sgd_update over every AlexNet parameter tensor, in place (one fused launch for ours)."""
    shapes = alexnet_param_shapes(div)
    count = sum(math.prod(s) for s in shapes)
    nbytes = 5 * 4 * count
    row = {"op": "sgd_update", "shape": f"{len(shapes)} tensors, {count / 1e6:.2f}M params",
           "mbytes": nbytes / 1e6}
    make = lambda s: [dev.randn(s + i, sh) for i, sh in enumerate(shapes)]  # noqa: E731
    if torch is not None:
        try:
            ps = [torch.nn.Parameter(dev.to_torch(a)) for a in make(seed)]
            for p, g in zip(ps, make(seed + 100)):
                p.grad = dev.to_torch(g)
            try:
                opt = torch.optim.SGD(ps, fused=True, **SGD)
                row["base_note"] = "torch SGD fused"
            except (RuntimeError, TypeError, ValueError):
                opt = torch.optim.SGD(ps, foreach=True, **SGD)
                row["base_note"] = "torch SGD foreach"
            st = timing.run(dev, lambda i: opt.step(), side="torch")
            row["base_us"] = st["median_s"] * 1e6
            del ps, opt
        except Exception as e:  # noqa: BLE001
            row["base_status"] = describe_error(e)
    sgd = backend.sgd_update
    try:
        w, g, v = make(seed), make(seed + 100), [a * np.float32(0.1) for a in make(seed + 200)]
        h = [[dev.host(a).astype(np.float64) for a in arrs] for arrs in (w, g, v)]
        sgd(w, g, v, **SGD)
        ccn.backend("cpu").sgd_update(*h, **SGD)
        row["err_ours"] = max(rel_err(a, dev.asarray(b)) for a, b in zip(w + v, h[0] + h[2]))
        del h
        if not row["err_ours"] <= tol:
            row["status"] = MISMATCH
            return row
        st = timing.run(dev, lambda i: sgd(w, g, v, **SGD))
        row.update(ours_us=st["median_s"] * 1e6, ours_calls=st["calls"], status=OK)
        row["ours_gbs"] = nbytes / st["median_s"] / 1e9
        row["pct_copy"] = 100 * nbytes / st["median_s"] / copy_bw
        if row.get("base_us"):
            row["ratio"] = row["ours_us"] / row["base_us"]
    except Exception as e:  # noqa: BLE001
        row["status"] = describe_error(e)
    return row
