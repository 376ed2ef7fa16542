"""Figure 1 (§3.1): how many epochs a four-layer conv net needs to reach a training error,
with ReLUs and with tanh units.

Both nets are models.four_layer_net (same layers, same initial weights up to the unit),
trained with SGD (momentum 0.9) and no regularisation of any kind (no weight decay, no
dropout, no augmentation), as in the paper. Each unit gets its own learning rate: every
rate of the sweep is trained for the whole budget and the one that reaches the target
first (ties: the lower final error) is kept, "chosen independently to make training as
fast as possible". The training error is recorded per step and averaged over quarters
of an epoch; "epochs to target" is the end of the first quarter whose mean training
error is at or below the target.
"""
from __future__ import annotations

import math
import time

import numpy as np

POINTS_PER_EPOCH = 4


def train_curve(ds, activation: str, lr: float, *, epochs: int, batch: int, seed: int, width: int,
                device: str = "cpu", precision: str = "fp32") -> dict:
    """One run: {"lr", "epochs" (fractional x), "train_error" (per quarter epoch), "diverged", "seconds"}."""
    from .. import SGD, models
    from ..data.loader import BatchLoader
    from ..net import NonFiniteError
    from .data import Standardise

    t0 = time.perf_counter()
    net = models.four_layer_net(activation, input_shape=(ds.size, ds.size, 3), classes=len(ds.classes),
                                width=width, seed=seed, devices=(device,), precision=precision)
    opt = SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    loader = BatchLoader((ds.train_images, ds.train_labels), batch, shuffle=True, seed=seed,
                         augment=Standardise(ds.mean, ds.std), drop_last=True)
    errs, diverged = [], False
    try:
        for epoch in range(epochs):
            for x, y in loader.iter_epoch(epoch):
                try:
                    errs.append(net.train_step(np.ascontiguousarray(x, dtype=np.float32), y, opt)["top1_err"])
                except NonFiniteError:
                    diverged = True
                    break
            if diverged:
                break
    finally:
        loader.close()
    steps = len(loader)
    chunk = max(1, steps // POINTS_PER_EPOCH)
    total = epochs * steps
    if diverged:  # the rest of the budget counts as chance-level error
        errs += [1.0] * (total - len(errs))
    xs, ys = [], []
    for lo in range(0, total, chunk):
        part = errs[lo:lo + chunk]
        xs.append((lo + len(part)) / steps)
        ys.append(float(np.mean(part)))
    return {"lr": lr, "epochs": xs, "train_error": ys, "diverged": diverged,
            "seconds": time.perf_counter() - t0}


def epochs_to(curve: dict, target: float) -> float | None:
    """The first x of the curve whose training error is <= target; None if never."""
    for x, e in zip(curve["epochs"], curve["train_error"]):
        if e <= target:
            return float(x)
    return None


def best_run(runs: list[dict], target: float) -> dict:
    """The run that reaches `target` first; ties (and none reaching it): lowest final error."""
    def key(r):
        t = epochs_to(r, target)
        return (math.inf if t is None else t, r["train_error"][-1])
    return min(runs, key=key)


def run(ds, *, lrs, epochs: int, batch: int, target: float, seed: int, width: int, device: str = "cpu",
        log=print, precision: str = "fp32") -> dict:
    """The sweep for both units; the record `experiment relu-vs-tanh` writes (JSON-ready).
    precision: the nets' GEMM precision (checks.PRECISIONS)."""
    result = {"data": ds.name, "train_images": len(ds.train_labels), "epochs": epochs, "batch": batch,
              "target": target, "seed": seed, "width": width, "device": device, "precision": precision,
              "lrs": list(lrs), "runs": {}, "best": {}}
    for act in ("relu", "tanh"):
        runs = []
        for lr in lrs:
            r = train_curve(ds, act, lr, epochs=epochs, batch=batch, seed=seed, width=width, device=device,
                            precision=precision)
            t = epochs_to(r, target)
            log(f"{act:4s} lr {lr:<7g} final training error {100 * r['train_error'][-1]:6.2f}%  "
                f"epochs to {100 * target:g}%: {'never' if t is None else f'{t:.2f}'}"
                f"{'  (diverged)' if r['diverged'] else ''}  ({r['seconds']:.1f}s)")
            runs.append(r)
        best = best_run(runs, target)
        result["runs"][act] = runs
        result["best"][act] = {"lr": best["lr"], "epochs_to_target": epochs_to(best, target)}
        log(f"{act}: best learning rate {best['lr']:g}")
    er, et = result["best"]["relu"]["epochs_to_target"], result["best"]["tanh"]["epochs_to_target"]
    result["ratio"] = (et / er) if (er and et) else None
    return result


def plot(result: dict, path=None):
    """Figure 1: training error per epoch, ReLU solid, tanh dashed, the target dotted. -> Figure."""
    from .plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    styles = {"relu": ("-", "ReLU"), "tanh": ("--", "tanh")}
    for act, (ls, label) in styles.items():
        lr = result["best"][act]["lr"]
        r = next(r for r in result["runs"][act] if r["lr"] == lr)
        ax.plot(r["epochs"], [100 * e for e in r["train_error"]], ls, color="black" if act == "relu" else "C0",
                label=f"{label} (lr {lr:g})")
    ax.axhline(100 * result["target"], color="gray", linestyle=":", label=f"target {100 * result['target']:g}%")
    ax.set_xlabel("epochs")
    ax.set_ylabel("training error (%)")
    ax.set_ylim(0, 100)
    ratio = result.get("ratio")
    ax.set_title(f"Four-layer conv net on {result['data']}: ReLU vs tanh"
                 + (f" (tanh needs {ratio:.1f}x the epochs)" if ratio else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if path is not None:
        save_figure(fig, path)
    return fig
