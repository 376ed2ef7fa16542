"""The ablations of §3-§4 and §7: the full model against one change at a time.

Every variant (models.ABLATIONS) is trained with the same budget (epochs, batch, learning
rate rule) and the same seeds as the full model: the scaled-down AlexNet of
models.digits_config (two towers, LRN, overlapping 3/2 pooling, dropout 0.5 in the
hidden fc layers), SGD with momentum 0.9 and weight decay 5e-4, the learning rate divided
by 10 when the validation error stops improving (§5), and the training data augmented by
random translations and PCA lighting (§4.1, experiments/data.Augment). After training,
top-1 and top-5 errors are measured in test mode (no dropout, no augmentation) on the
whole training set and on the validation set. A seed fixes the weights, the batch order,
the augmentation and the dropout masks.

Results: mean and standard deviation over the seeds per variant, and each variant's
change in validation error against the full model beside the paper's reported change
(experiments/paper.ABLATION_DELTAS).
"""
from __future__ import annotations

import time

import numpy as np

METRICS = ("train_top1_err", "train_top5_err", "val_top1_err", "val_top5_err")


def train_variant(ds, variant: str, seed: int, *, epochs: int, batch: int, lr: float, width: int,
                  device: str = "cpu", checkpoint=None, precision: str = "fp32") -> dict:
    """One training run of one variant; -> {variant, seed, the four METRICS, parameters, diverged,
    seconds}.

    A run whose loss or parameters become non-finite (fit's NonFiniteError) is recorded as
    diverged with every error at 1.0, the worst value: a diverged variant never looks
    better than a trained one, and the other variants' runs are kept."""
    from dataclasses import replace

    from .. import SGD, PlateauSchedule, models
    from ..net import NonFiniteError
    from ..training import fit, validation_pass
    from .data import Augment, Standardise, input_record

    t0 = time.perf_counter()
    config = replace(models.digits_config(width, "he", 0.1), input_shape=(ds.size, ds.size, 3),
                     classes=len(ds.classes))
    config = models.ablated(config, variant)
    net = models.tower_net(config, towers=config.towers, devices=(device,), seed=seed, precision=precision)
    opt = SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    schedule = PlateauSchedule(opt, factor=0.1, patience=3, max_drops=2)
    augment = Augment(ds, seed=seed, lighting_std=0.0 if variant == "no-lighting" else 0.1)
    view = Standardise(ds.mean, ds.std)
    try:
        fit(net, opt, (ds.train_images, ds.train_labels), (ds.val_images, ds.val_labels), epochs=epochs,
            batch_size=batch, schedule=schedule, augment=augment, seed=seed, progress=False, log=None,
            val_view=view, checkpoint=checkpoint, extra={**input_record(ds), "variant": variant})
    except NonFiniteError:
        return {"variant": variant, "seed": seed, **{m: 1.0 for m in METRICS}, "parameters": net.num_parameters(),
                "diverged": True, "seconds": time.perf_counter() - t0}
    tr = validation_pass(net, ds.train_images, ds.train_labels, view=view)
    va = validation_pass(net, ds.val_images, ds.val_labels, view=view)
    return {"variant": variant, "seed": seed, "train_top1_err": tr["top1_err"], "train_top5_err": tr["top5_err"],
            "val_top1_err": va["top1_err"], "val_top5_err": va["top5_err"], "parameters": net.num_parameters(),
            "diverged": False, "seconds": time.perf_counter() - t0}


def summarise(runs: list[dict], variants) -> list[dict]:
    """One row per variant: mean and std (over seeds, ddof=0) of each metric, and the change in
    validation top-1/top-5 against "full" (percentage points) beside the paper's."""
    from .paper import ABLATION_DELTAS

    rows = []
    by = {v: [r for r in runs if r["variant"] == v] for v in variants}
    full = by.get("full", [])
    for v in variants:
        rs = by[v]
        row = {"variant": v, "seeds": [r["seed"] for r in rs], "parameters": rs[0]["parameters"]}
        for m in METRICS:
            a = np.array([r[m] for r in rs], dtype=np.float64)
            row[m] = {"mean": float(a.mean()), "std": float(a.std())}
        if v != "full" and full:
            for m, k in (("val_top1_err", "delta_top1"), ("val_top5_err", "delta_top5")):
                mine = np.array([r[m] for r in rs]) * 100
                ref = np.array([r[m] for r in full]) * 100
                # The seeds pair the runs (same data order, augmentation and, where shapes
                # allow, weights), so the spread of the paired differences is the noise.
                paired = [a - b for a, b in zip(mine, ref)]
                row[k] = {"mean": float(np.mean(paired)), "std": float(np.std(paired))}
            p1, p5, sec, quote = ABLATION_DELTAS[v]
            row["paper"] = {"delta_top1": p1, "delta_top5": p5, "section": sec, "quote": quote}
        rows.append(row)
    return rows


def run(ds, *, variants, seeds, epochs: int, batch: int, lr: float, width: int, device: str = "cpu", out=None,
        log=print, precision: str = "fp32") -> dict:
    """Every variant x seed; the full model of the first seed is checkpointed under OUT/full-seed<seed>/.
    precision: the nets' GEMM precision (checks.PRECISIONS)."""
    import os

    runs = []
    for v in variants:
        for s in seeds:
            ckpt = None
            if out is not None and v == "full" and s == seeds[0]:
                os.makedirs(os.path.join(out, f"full-seed{s}"), exist_ok=True)
                ckpt = os.path.join(out, f"full-seed{s}", "checkpoint.npz")
            r = train_variant(ds, v, s, epochs=epochs, batch=batch, lr=lr, width=width, device=device, checkpoint=ckpt,
                              precision=precision)
            runs.append(r)
            log(f"{v:12s} seed {s}: val top-1 {100 * r['val_top1_err']:6.2f}%  top-5 {100 * r['val_top5_err']:5.2f}%"
                f"  train top-1 {100 * r['train_top1_err']:6.2f}%  ({r['seconds']:.1f}s)"
                f"{'  (diverged: non-finite loss or weights, counted as 100% error)' if r['diverged'] else ''}")
    rows = summarise(runs, variants)
    return {"data": ds.name, "train_images": len(ds.train_labels), "val_images": len(ds.val_labels),
            "epochs": epochs, "batch": batch, "lr": lr, "width": width, "device": device, "precision": precision,
            "seeds": list(seeds),
            "runs": runs, "rows": rows, "notes": notes(ds, rows)}


def notes(ds, rows) -> list[str]:
    """Where this data cannot show an effect, said in words (printed under the table)."""
    out = []
    n_val = 0 if ds.val_labels is None else len(ds.val_labels)
    if n_val:
        out.append(f"One validation image is {100 / n_val:.2f} percentage points of error here "
                   f"({n_val} validation images); the paper's deltas are on 50,000 ILSVRC validation images.")
    for r in rows:
        d = r.get("delta_top1")
        if d is None:
            continue
        if abs(d["mean"]) <= 2 * d["std"] or abs(d["mean"]) * n_val / 100 < 2:
            out.append(f"{r['variant']}: the change in top-1 ({d['mean']:+.2f} +- {d['std']:.2f} points over the "
                       f"seeds) is within the seed-to-seed noise or under two images: not resolved at this size.")
    full = next((r for r in rows if r["variant"] == "full"), None)
    if full and full["train_top1_err"]["mean"] > 0.05:
        out.append(f"The full model has not converged at this budget (training top-1 error "
                   f"{100 * full['train_top1_err']['mean']:.1f}%): a delta here measures how fast a variant "
                   "learns as much as where it ends.")
    nd = next((r for r in rows if r["variant"] == "no-dropout"), None)
    if full and nd and nd["val_top1_err"]["mean"] < full["val_top1_err"]["mean"]:
        out.append("no-dropout is ahead of the full model here; §4.2 also says \"Dropout roughly doubles the "
                   "number of iterations required to converge\", and its benefit (less overfitting) needs a "
                   "training error near 0 to show.")
    if full and len(ds.classes) <= 10 and full["val_top5_err"]["mean"] < 0.01:
        out.append(f"Top-5 error on a {len(ds.classes)}-class set is near 0 (full model: "
                   f"{100 * full['val_top5_err']['mean']:.2f}%): it cannot separate the variants.")
    if ds.name.startswith("digits"):
        out.append("no-lighting: the digits are grey (R = G = B), so the RGB covariance has one non-zero "
                   "eigenvalue and PCA lighting only changes brightness; the paper's colour-of-illumination "
                   "invariance cannot show on this data.")
        if full and nd:
            gap = lambda r: 100 * (r["val_top1_err"]["mean"] - r["train_top1_err"]["mean"])  # noqa: E731
            out.append(f"no-dropout: the paper's claim is about overfitting (a 60M-parameter net on 1.2M images); "
                       f"the validation-minus-training top-1 gap here is {gap(full):.1f} points with dropout and "
                       f"{gap(nd):.1f} without.")
    for r in rows:
        if r["variant"] == "one-tower":
            full = next((x for x in rows if x["variant"] == "full"), None)
            if full:
                out.append(f"one-tower has {r['parameters']:,} parameters against the full model's "
                           f"{full['parameters']:,} (§3.2 footnote 2: the last conv layer and the fc layers keep "
                           f"their size).")
    return out


def markdown(result: dict) -> str:
    """The table (mean +- std over seeds, in %) and the notes, as Markdown."""
    pct = lambda m: f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}"
    lines = [f"Ablations on {result['data']} ({result['train_images']} training, {result['val_images']} validation "
             f"images; {result['epochs']} epoch{'s' * (result['epochs'] != 1)}, batch {result['batch']}, "
             f"lr {result['lr']:g}, seed{'s' * (len(result['seeds']) != 1)} "
             f"{', '.join(map(str, result['seeds']))}). Errors in %, mean ± std over the seeds; Δ = change in "
             "validation error against the full model (percentage points, paired by seed); the paper's Δ is "
             "on ILSVRC-2010/2012.", "",
             "| variant | params | train top-1 | train top-5 | val top-1 | val top-5 | Δ top-1 (ours) | "
             "Δ top-5 (ours) | Δ top-1 / top-5 (paper) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "delta_top1" in r:
            d1 = f"{r['delta_top1']['mean']:+.2f} ± {r['delta_top1']['std']:.2f}"
            d5 = f"{r['delta_top5']['mean']:+.2f} ± {r['delta_top5']['std']:.2f}"
            p = r["paper"]
            fmt = lambda v: "—" if v is None else f"+{v:g}"
            paper = (f"{fmt(p['delta_top1'])} / {fmt(p['delta_top5'])} ({p['section']})"
                     if p["delta_top1"] is not None else f"\"substantial overfitting\" ({p['section']})")
            if r["variant"] == "no-lighting":
                paper = f"> +1 / — ({p['section']})"
            if r["variant"] == "no-conv4":
                paper = f"about +2 / — ({p['section']})"
        else:
            d1 = d5 = paper = ""
        lines.append(f"| {r['variant']} | {r['parameters']:,} | {pct(r['train_top1_err'])} | "
                     f"{pct(r['train_top5_err'])} | {pct(r['val_top1_err'])} | {pct(r['val_top5_err'])} | "
                     f"{d1} | {d5} | {paper} |")
    if result.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path=None):
    """Bar chart: validation and training top-1 error per variant (mean, std as error bars). -> Figure."""
    from .plotting import pyplot, save_figure

    plt = pyplot()
    rows = result["rows"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
    for off, m, label in ((-0.2, "val_top1_err", "validation top-1"), (0.2, "train_top1_err", "training top-1")):
        ax.bar(x + off, [100 * r[m]["mean"] for r in rows], 0.4, yerr=[100 * r[m]["std"] for r in rows],
               capsize=3, label=label)
    ax.set_xticks(x, [r["variant"] for r in rows], rotation=20)
    ax.set_xlabel("variant (one change against the full model)")
    ax.set_ylabel("top-1 error (%)")
    n = len(result["seeds"])
    ax.set_title(f"Ablations on {result['data']}: mean ± std over {n} seed{'s' * (n != 1)}", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    if path is not None:
        save_figure(fig, path)
    return fig
