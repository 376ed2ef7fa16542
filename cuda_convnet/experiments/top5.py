"""Figure 4 (left): images with the five labels the net finds most probable, as bars.

The bars are the softmax probabilities of the top five classes, largest first; the
correct label's bar is red when it is among them (as in the paper), and the correct
label is written under the image when it is known.
"""
from __future__ import annotations

import numpy as np


def top_k(probs: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(class indices (N, k), probabilities (N, k)), each row sorted by probability, largest first."""
    probs = np.asarray(probs)
    k = min(k, probs.shape[1])
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(probs, idx, axis=1)


def correct_counts(probs: np.ndarray, labels, ks=(1, 5)) -> dict:
    """{k: images whose label is top-k correct} over the images with a label >= 0, by the
    project's top-k rule (reference.softmax.topk_error_mask): a tie with the k-th class is
    an error, and so is a row with any NaN or inf (a diverged checkpoint scores nothing)."""
    from ..reference.softmax import topk_error_mask

    labels = np.asarray(labels, dtype=np.int64)
    known = labels >= 0
    if not known.any():
        return {k: 0 for k in ks}
    errors = topk_error_mask(np.asarray(probs, dtype=np.float64)[known], labels[known], ks)
    return {k: int((~e).sum()) for k, e in zip(ks, errors)}


def predict(net, transform, images_uint8: np.ndarray, batch: int = 64) -> np.ndarray:
    """Softmax probabilities (N, classes) of uint8 (N, S, S, 3) images fed through `transform`."""
    out = [net.predict(np.ascontiguousarray(transform(images_uint8[i:i + batch]), dtype=net.dtype))
           for i in range(0, len(images_uint8), batch)]
    return np.concatenate(out)


def plot(images: np.ndarray, probs: np.ndarray, classes: list, labels=None, path=None, *, k: int = 5,
         title: str = "The five most probable labels"):
    """One column per image: the image, and below it the top-k bars. -> (Figure, (idx, p))."""
    from matplotlib.patches import Patch

    from .plotting import pyplot, save_figure

    plt = pyplot()
    idx, p = top_k(probs, k)
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n + 0.6, 4.0), squeeze=False, constrained_layout=True,
                             gridspec_kw={"height_ratios": [1.1, 1]})
    for j in range(n):
        ax_im, ax_bar = axes[0, j], axes[1, j]
        ax_im.imshow(images[j], interpolation="nearest")
        ax_im.set_xticks([])
        ax_im.set_yticks([])
        truth = None if labels is None else labels[j]
        if truth is not None and truth >= 0:
            ax_im.set_xlabel(str(classes[truth]), fontsize=9)
        colours = ["tab:red" if truth is not None and c == truth else "tab:blue" for c in idx[j]]
        ax_bar.barh(np.arange(len(idx[j])), p[j], color=colours)
        ax_bar.set_yticks(np.arange(len(idx[j])), [str(classes[c]) for c in idx[j]], fontsize=8)
        ax_bar.invert_yaxis()  # the most probable on top
        ax_bar.set_xlim(0, 1)
        ax_bar.set_xlabel("probability", fontsize=8)
    axes[1, 0].set_ylabel("top-5 labels")
    fig.legend(handles=[Patch(color="tab:red", label="correct label"), Patch(color="tab:blue", label="other")],
               loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, (idx, p)
