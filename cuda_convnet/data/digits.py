"""A tiny real dataset that needs no network: scikit-learn's 8x8 handwritten digits.

`sklearn.datasets.load_digits()` ships inside scikit-learn (1797 images, 8x8, values
0..16, 10 classes, from the UCI optical-digits set).  The demo (`python -m cuda_convnet
demo`) trains a small AlexNet-shaped net on it in seconds on a CPU, so every stage of
the pipeline runs on real images anywhere.

`load_digits()` returns NHWC float32 (N, 32, 32, 3) images: each 8x8 image is
upsampled by pixel replication (each pixel becomes a 4x4 block; exact, no resampling
choices) and copied to three channels, so the net's RGB input layer is exercised.
Values are in [0, 1] (x / 16) or, with `standardize=True`, per-channel zero mean / unit
variance over the training split.  The train/validation split is stratified and fixed
by `seed`: the same seed gives the same split on every machine.

`augment_digits` is a deterministic random-translation augmentation (pad then random
crop, §4.1's first form at this scale; no reflection, digits are not mirror-symmetric),
a pure function of (seed, offset, index) via Philox like reference.augment.train_views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Digits:
    train_images: np.ndarray  # float32 (n_train, S, S, 3)
    train_labels: np.ndarray  # int32
    val_images: np.ndarray
    val_labels: np.ndarray
    classes: list[str]
    mean: np.ndarray | None = None  # per-channel (3,) train mean if standardised
    std: np.ndarray | None = None


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), each sorted; per class round(val_fraction * n_c) to val."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):  # sorted classes: the draw order is fixed
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(val_fraction * len(idx)))
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_digits(
    *, size: int = 32, val_fraction: float = 0.2, seed: int = 0, standardize: bool = False
) -> Digits:
    """The digits demo dataset; see the module docstring.  `size` must be a multiple of 8."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError(
            "the digits demo dataset needs scikit-learn: pip install scikit-learn"
        ) from e
    if size % 8 or size < 8:
        raise ValueError(f"size must be a positive multiple of 8, got {size}")
    d = _sk_load_digits()
    images = d.images.astype(np.float32) / np.float32(16.0)  # (N, 8, 8) in [0, 1]
    f = size // 8
    images = np.repeat(np.repeat(images, f, axis=1), f, axis=2)  # pixel replication
    images = np.ascontiguousarray(np.repeat(images[..., None], 3, axis=3))
    labels = d.target.astype(np.int32)
    tr, va = stratified_split(labels, val_fraction, seed)
    out = Digits(images[tr], labels[tr], images[va], labels[va], [str(c) for c in range(10)])
    if standardize:
        mean = out.train_images.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
        std = out.train_images.std(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
        out.train_images = (out.train_images - mean) / std
        out.val_images = (out.val_images - mean) / std
        out.mean, out.std = mean, std
    return out


def augment_digits(
    images: np.ndarray, *, seed: int, offset: int, pad: int = 4, fill: float = 0.0
) -> np.ndarray:
    """Random translation by up to `pad` pixels, deterministic.

    The uncovered border is `fill` (0 = the background of unstandardised digits; for
    standardised ones pass the standardised background, -mean/std).

    Image i is shifted by (dy, dx) = (r0[0] % (2 pad + 1) - pad, r0[1] % (2 pad + 1) - pad),
    with r0 the geometry words of reference.augment.draw_numbers(seed, offset) for image i.
    """
    from ..reference.augment import draw_numbers

    images = np.asarray(images)
    n, h, w, c = images.shape
    r0, _ = draw_numbers(n, seed, offset)
    k = np.uint32(2 * pad + 1)
    dy = (r0[:, 0] % k).astype(np.int64)
    dx = (r0[:, 1] % k).astype(np.int64)
    padded = np.full((n, h + 2 * pad, w + 2 * pad, c), fill, dtype=images.dtype)
    padded[:, pad : pad + h, pad : pad + w] = images
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


class DigitsAugment:
    """augment_digits as a BatchLoader callable."""

    def __init__(self, *, seed: int, pad: int = 4, fill: float = 0.0):
        self.seed, self.pad, self.fill = seed, pad, fill

    def __call__(self, images, *, offset: int):
        return augment_digits(images, seed=self.seed, offset=offset, pad=self.pad, fill=self.fill)
