"""Top-1 / top-5 error over a store split, centre-crop or ten-crop, one or several models.

§2: "top-5 error rate is the fraction of test images for which the correct label is not
among the five labels considered most probable by the model".
§4.1: at test time, "averaging the predictions made by the network's softmax layer on
the ten patches" (the four corners, the centre, and their reflections).
§6: "Averaging the predictions of five similar CNNs" -- the same operation across
models.  So the prediction for an image is the plain mean of softmax probabilities over
(models x views), and the errors are computed from that mean.

Counting: the backend op ``topk_errors`` (cuda_convnet.reference.softmax) is the one
definition of the rule, and every count here comes from it: an image is top-k correct
only when fewer than k classes other than its label have a mean probability >= the
label's, and its mean probabilities are finite. A tie never counts in the model's favour
(a uniform output is 100 % wrong) and a NaN output is an error, never a hit.

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

from .views import ten_crop_offsets, view


def _count_topk(probs, labels, ks) -> dict[int, int]:
    # The one counting rule: the backend op (host arrays, so the cpu backend's).
    from ..backends import backend

    return backend("cpu").topk_errors(np.ascontiguousarray(probs), np.ascontiguousarray(labels), ks=ks)


def error_rates(counts: dict[int, int], n: int) -> dict[int, float]:
    """{k: count / n} from ``topk_errors`` counts over n examples (n >= 1)."""
    if n < 1:
        raise ValueError(f"error rates need at least one example, got n={n}")
    return {k: c / n for k, c in counts.items()}


def topk_error_rates(probs, labels, ks=(1, 5)) -> dict[int, float]:
    """{k: top-k error rate} for probabilities (N, classes) and integer labels (N,), N >= 1.

    The counts of the backend op ``topk_errors`` (its rule: a label tied with the k-th
    class, or a non-finite row, is an error) divided by N. Raises ValueError/TypeError for
    bad shapes or labels, or no examples.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"probs must be (N, classes) and labels (N,), got {probs.shape}, {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no examples")
    return error_rates(_count_topk(probs, labels, ks), len(labels))


def per_class_topk_counts(probs, labels, num_classes: int, ks=(1, 5)) -> np.ndarray:
    """int64 (num_classes, len(ks)): top-k error counts of each label's examples.

    One ``topk_errors`` call per label present, so the per-class counts follow the same
    rule as the totals (and sum to them).
    """
    out = np.zeros((num_classes, len(ks)), dtype=np.int64)
    labels = np.asarray(labels)
    for c in np.unique(labels):
        rows = labels == c
        got = _count_topk(probs[rows], labels[rows], ks)
        out[c] = [got[k] for k in ks]
    return out


@dataclass
class EvalResult:
    top1: float
    top5: float
    count: int
    views: int
    models: int
    per_class: dict = field(repr=False)  # class name -> {"count", "top1_error", "top5_error"}
    non_finite: int = 0  # images whose averaged probabilities held a NaN/inf (counted as errors)
    probs: np.ndarray | None = field(default=None, repr=False)  # (N, classes) averaged, if asked
    labels: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "top1_error": self.top1,
            "top5_error": self.top5,
            "count": self.count,
            "views": self.views,
            "models": self.models,
            "non_finite": self.non_finite,
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


def per_class_errors(wrong: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """{class name: {"count", "top1_error", "top5_error"}} from per_class_topk_counts (ks 1, 5)."""
    count = np.bincount(labels, minlength=len(classes))
    out = {}
    for c, name in enumerate(classes):
        k = int(count[c])
        rates = error_rates({1: int(wrong[c, 0]), 5: int(wrong[c, 1])}, k) if k else {1: None, 5: None}
        out[name] = {"count": k, "top1_error": rates[1], "top5_error": rates[5]}
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
    # Non-finite rows (a diverged net) are not refused: they are counted, as errors.
    finite = np.isfinite(p).all(axis=1)
    sums = p[finite].sum(axis=1)
    if np.any(p[finite] < -1e-6) or np.any(np.abs(sums - 1.0) > 1e-3):
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

    Errors are counted by the backend op ``topk_errors`` on the averaged probabilities
    (ties and non-finite rows are errors; ``non_finite`` says how many rows were not
    finite). Raises ValueError for mismatched shapes, labels outside the classes, or a
    predict_fn returning something other than probabilities; TypeError for bad predict_fns.
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
    wrong = None  # (classes, 2) top-1 / top-5 error counts per class
    non_finite = 0
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
            if wrong is None:
                wrong = np.zeros((num_classes, 2), dtype=np.int64)
            wrong += per_class_topk_counts(acc, y, num_classes, ks=(1, 5))
            non_finite += int((~np.isfinite(acc).all(axis=1)).sum())
            if kept is not None:
                kept.append(acc.astype(np.float32))
            bar.update(len(batch))
    finally:
        bar.close()
    if classes is None:
        classes = [str(c) for c in range(num_classes)]
    rates = error_rates({1: int(wrong[:, 0].sum()), 5: int(wrong[:, 1].sum())}, len(labels))
    return EvalResult(
        top1=rates[1],
        top5=rates[5],
        non_finite=non_finite,
        count=len(labels),
        views=len(offsets),
        models=len(fns),
        per_class=per_class_errors(wrong, labels, classes),
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
