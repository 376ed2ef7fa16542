"""Top-1 / top-5 error over a store split, centre-crop or ten-crop, one or several models.

§2: "top-5 error rate is the fraction of test images for which the correct label is not
among the five labels considered most probable by the model".
§4.1: at test time, "averaging the predictions made by the network's softmax layer on
the ten patches" (the four corners, the centre, and their reflections).
§6: "Averaging the predictions of five similar CNNs" -- the same operation across
models.  So the prediction for an image is the plain mean of softmax probabilities over
(models x views), and the errors are computed from that mean.

Ties: the label counts as within the top k when fewer than k classes have a strictly
higher probability than it (so a tie never counts against the model; with real
probabilities ties are essentially absent).

    res = evaluate(net.predict, "out/", split="val", ten_crop=True)
    res.top1, res.top5, res.per_class["n01440764"], res.write_per_class_csv("err.csv")

`predict_fn(batch)` receives float32 NHWC (B, 224, 224, 3) mean-subtracted views and
returns (B, classes) probabilities (NumPy, or anything np.asarray accepts; a CuPy
caller converts with .get()).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from .augment import ten_crop_offsets, view


def label_ranks(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per example: how many classes have a strictly higher probability than the label."""
    probs = np.asarray(probs)
    labels = np.asarray(labels, dtype=np.int64)
    p_true = probs[np.arange(len(labels)), labels]
    return (probs > p_true[:, None]).sum(axis=1)


def topk_errors(probs, labels, ks=(1, 5)) -> dict[int, float]:
    """{k: error rate} for probabilities (N, classes) and integer labels (N,)."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"probs must be (N, classes) and labels (N,), got {probs.shape}, {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no examples")
    ranks = label_ranks(probs, labels)
    return {k: float(np.mean(ranks >= k)) for k in ks}


@dataclass
class EvalResult:
    top1: float
    top5: float
    count: int
    views: int
    models: int
    per_class: dict = field(repr=False)  # class name -> {"count", "top1_error", "top5_error"}
    probs: np.ndarray | None = field(default=None, repr=False)  # (N, classes) averaged, if asked
    labels: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "top1_error": self.top1,
            "top5_error": self.top5,
            "count": self.count,
            "views": self.views,
            "models": self.models,
            "per_class": self.per_class,
        }

    def write_per_class_csv(self, path: str | os.PathLike) -> None:
        """class,count,top1_error,top5_error -- one row per class, in class-index order."""
        # Class names are folder names: bytes that may not be UTF-8 (surrogate-escaped by
        # os.fsdecode); surrogateescape writes those bytes back as they were.
        with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            w = csv.writer(f)
            w.writerow(["class", "count", "top1_error", "top5_error"])
            for name, r in self.per_class.items():
                w.writerow(
                    [
                        name,
                        r["count"],
                        "" if r["top1_error"] is None else f"{r['top1_error']:.6f}",
                        "" if r["top5_error"] is None else f"{r['top5_error']:.6f}",
                    ]
                )


def per_class_errors(ranks: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    n = len(classes)
    count = np.bincount(labels, minlength=n)
    wrong1 = np.bincount(labels, weights=(ranks >= 1), minlength=n)
    wrong5 = np.bincount(labels, weights=(ranks >= 5), minlength=n)
    out = {}
    for c, name in enumerate(classes):
        k = int(count[c])
        out[name] = {
            "count": k,
            "top1_error": float(wrong1[c] / k) if k else None,
            "top5_error": float(wrong5[c] / k) if k else None,
        }
    return out


def _check_probs(p, batch: int, num_classes: int | None, which: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if (
        p.ndim != 2
        or p.shape[0] != batch
        or (num_classes is not None and p.shape[1] != num_classes)
    ):
        want = f"({batch}, {num_classes if num_classes is not None else 'classes'})"
        raise ValueError(f"predict_fn #{which} returned shape {p.shape}, expected {want}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"predict_fn #{which} returned non-finite values")
    sums = p.sum(axis=1)
    if np.any(p < -1e-6) or np.any(np.abs(sums - 1.0) > 1e-3):
        raise ValueError(
            f"predict_fn #{which} must return softmax probabilities (rows >= 0 summing to 1); "
            f"row sums range {sums.min():.4g}..{sums.max():.4g} -- logits?"
        )
    return p


def evaluate(
    predict_fns,
    source,
    *,
    split: str = "val",
    ten_crop: bool = True,
    batch_size: int = 128,
    crop: int = 224,
    mean=None,
    classes: list[str] | None = None,
    progress: bool = True,
    keep_probs: bool = False,
) -> EvalResult:
    """Top-1/top-5 error of one model or the average of several (§4.1, §6).

    predict_fns: a callable or a list of them (models averaged).
    source: an ImageStore, a store directory (opened at `split`), or (images, labels)
        with images uint8 (N, S, S, 3); then pass `mean` (else no subtraction) and
        optionally `classes`.  A store supplies its own mean and class names.
    ten_crop: ten views (§4.1) or only the centre one.
    """
    from .store import ImageStore

    fns = list(predict_fns) if isinstance(predict_fns, (list, tuple)) else [predict_fns]
    if not fns or not all(callable(f) for f in fns):
        raise TypeError("predict_fns must be a callable or a non-empty list of callables")
    if isinstance(source, (str, os.PathLike)):
        source = ImageStore(source, split)
    if isinstance(source, ImageStore):
        images, labels = source.images, source.labels
        mean = source.mean if mean is None else mean
        classes = source.classes if classes is None else classes
    else:
        images, labels = source
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"{len(labels)} labels for images of shape {images.shape}")
    if len(labels) == 0:
        raise ValueError("nothing to evaluate: no images")
    size = images.shape[1]
    offsets = ten_crop_offsets(size, crop)
    offsets = offsets if ten_crop else [offsets[4]]
    num_classes = len(classes) if classes is not None else None

    bar = _bar(len(labels), progress)
    ranks = np.empty(len(labels), dtype=np.int64)
    kept = [] if keep_probs else None
    try:
        for lo in range(0, len(labels), batch_size):
            batch = np.asarray(images[lo : lo + batch_size])  # one sequential read from the memmap
            acc = None
            for t, left, flip in offsets:
                x = view(batch, mean, t, left, flip, crop)
                for j, fn in enumerate(fns):
                    p = _check_probs(fn(x), len(batch), num_classes, j)
                    num_classes = p.shape[1]
                    # copy on first use: a predict_fn may return the same buffer every call
                    acc = p.copy() if acc is None else acc + p
            acc /= len(offsets) * len(fns)
            y = labels[lo : lo + len(batch)]
            if y.min() < 0 or y.max() >= num_classes:
                raise ValueError(f"labels outside 0..{num_classes - 1}")
            ranks[lo : lo + len(batch)] = label_ranks(acc, y)
            if kept is not None:
                kept.append(acc.astype(np.float32))
            bar.update(len(batch))
    finally:
        bar.close()
    if classes is None:
        classes = [str(c) for c in range(num_classes)]
    return EvalResult(
        top1=float(np.mean(ranks >= 1)),
        top5=float(np.mean(ranks >= 5)),
        count=len(labels),
        views=len(offsets),
        models=len(fns),
        per_class=per_class_errors(ranks, labels, classes),
        probs=np.concatenate(kept) if kept is not None else None,
        labels=labels if keep_probs else None,
    )


def _bar(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, unit="img", desc="evaluate")
        except ImportError:
            pass

    class _Null:
        def update(self, n=1):
            pass

        def close(self):
            pass

    return _Null()
