"""Pictures of a training run: the curves of loss and error per epoch (matplotlib, Agg)."""
from __future__ import annotations

import os

from .atomic import open_atomic


def plot_training_curves(history: list[dict], path, *, title: str = "training") -> str:
    """Write a PNG of train loss and train/validation top-1 error per epoch; lr drops marked.

    Uses matplotlib's Agg backend (no display needed). Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("plot_training_curves: empty history")
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    if all("val_loss" in h for h in history):
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "s--", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_err.plot(epochs, [100 * h["train_top1_err"] for h in history], "o-", label="train top-1 (dropout on)")
    ax_err.plot(epochs, [100 * h["val_top1_err"] for h in history], "s-", label="validation top-1")
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error (%)")
    ax_err.set_ylim(bottom=0)
    for ax in (ax_loss, ax_err):
        for h in history:
            if h.get("lr_dropped"):
                ax.axvline(h["epoch"], color="gray", linestyle=":", linewidth=1)
        ax.grid(True, alpha=0.3)
        ax.legend()
    last = history[-1]
    fig.suptitle(f"{title}: final validation top-1 error {100 * last['val_top1_err']:.2f}% "
                 f"(dotted lines: learning rate / 10)")
    try:
        with open_atomic(path, "wb") as f:  # rewritten every epoch: Ctrl-C keeps the last whole one
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return os.fspath(path)
