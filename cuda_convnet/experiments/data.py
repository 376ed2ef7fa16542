"""The data the experiments run on, as uint8 NHWC arrays plus one way to feed them to a net.

    ds = load_dataset(None)                 # the digits that ship with scikit-learn
    ds = load_dataset("cifar-10-batches-py")  # CIFAR-10 python batches (data/cifar.py)
    ds = load_dataset("prepared_store/")    # a store written by `prepare` (data/store.py)

Every source becomes a `Dataset`: uint8 (N, S, S, 3) training and validation images
(memory-mapped for a store, so a large one is never read whole), int32 labels, class
names, and the per-channel mean and standard deviation of the training pixels (0..255
units). The nets see `standardise(x) = (x - mean) / std` in float32; `Augment` adds the
training-time changes of §4.1 at this scale: a random translation (pad and crop) and
the PCA lighting noise, in the standardised space.

The digits are scikit-learn's 1,797 8x8 images (data/digits.py), upsampled to 32x32 and
stored as round(255 x / 16): the same images the demo trains on, in the uint8 form a
store holds, so a checkpoint trained here reads a digits store the same way.

A checkpoint trained by the experiments records `input_record(ds)` in its extra; the
figure commands rebuild the same preprocessing from it (`input_transform`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

DIGITS = "digits"


@dataclass
class Dataset:
    name: str
    train_images: np.ndarray   # uint8 (N, S, S, 3), possibly memory-mapped
    train_labels: np.ndarray   # int32 (N,)
    val_images: np.ndarray | None
    val_labels: np.ndarray | None
    classes: list
    mean: np.ndarray           # float32 (3,), training pixels, 0..255
    std: np.ndarray            # float32 (3,)

    @property
    def size(self) -> int:
        return int(self.train_images.shape[1])


def digits_uint8(seed: int = 0):
    """The bundled digits as (train uint8, train labels, val uint8, val labels, classes)."""
    from ..data.digits import load_digits

    d = load_digits(size=32, standardize=False, seed=seed)
    to8 = lambda a: np.rint(a * 255.0).astype(np.uint8)
    return to8(d.train_images), d.train_labels, to8(d.val_images), d.val_labels, d.classes


def _channel_stats(images, limit: int = 4096):
    """Per-channel mean and std (0..255) over up to `limit` evenly spaced images."""
    n = len(images)
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64))
    x = np.asarray(images[idx], dtype=np.float64).reshape(-1, 3)
    std = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def load_dataset(source=None, *, seed: int = 0) -> Dataset:
    """source: None or "digits" (the bundled set), a CIFAR-10 python-batches folder or
    tarball, or a prepared store (a folder with manifest.json). Raises ValueError (with the
    path) for anything else, and data.cifar.CifarError / data.store.StoreError for a
    broken one."""
    if source is None or source == DIGITS:
        xt, yt, xv, yv, classes = digits_uint8(seed)
        name = "digits"
    else:
        path = os.fspath(source)
        if os.path.isfile(os.path.join(path, "manifest.json")):
            from ..data.store import ImageStore, read_manifest

            splits = read_manifest(path).get("splits", {})
            tr = ImageStore(path, "train")
            val = next((ImageStore(path, s) for s in ("val", "validation", "test") if s in splits), None)
            xt, yt, classes = tr.images, tr.labels, tr.classes
            xv, yv = (val.images, val.labels) if val is not None else (None, None)
            name = f"store {path}"
        elif os.path.exists(path) and (os.path.isfile(path) or _looks_like_cifar(path)):
            from ..data.cifar import load_cifar10

            c = load_cifar10(path)
            xt, yt, xv, yv, classes = c.train_images, c.train_labels, c.test_images, c.test_labels, c.label_names
            name = "CIFAR-10"
        else:
            raise ValueError(f"{path}: neither a prepared store (no manifest.json) nor a CIFAR-10 python-batches "
                             "folder (no data_batch_1)")
    mean, std = _channel_stats(xt)
    return Dataset(name, xt, np.asarray(yt, dtype=np.int32), xv,
                   None if yv is None else np.asarray(yv, dtype=np.int32), list(classes), mean, std)


def _looks_like_cifar(path: str) -> bool:
    return any(os.path.isfile(os.path.join(p, "data_batch_1"))
               for p in (path, os.path.join(path, "cifar-10-batches-py")))


def subset(ds: Dataset, train_every: int, val_every: int) -> Dataset:
    """Every k-th image of each split (the quick forms)."""
    sl = lambda a, k: None if a is None else a[::k]
    return Dataset(ds.name + " (subset)", sl(ds.train_images, train_every), sl(ds.train_labels, train_every),
                   sl(ds.val_images, val_every), sl(ds.val_labels, val_every), ds.classes, ds.mean, ds.std)


class Standardise:
    """uint8 (N, S, S, 3) -> float32 (x - mean) / std; a BatchLoader augment and an evaluate view."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, images, *, offset: int = 0) -> np.ndarray:
        return (np.asarray(images, dtype=np.float32) - self.mean) / self.std


def pixel_pca(ds: Dataset, limit: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(eigvals (3,) descending, eigvecs (3, 3) columns) of the standardised RGB covariance (§4.1)."""
    n = len(ds.train_images)
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64))
    x = Standardise(ds.mean, ds.std)(ds.train_images[idx]).reshape(-1, 3).astype(np.float64)
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(vals)[::-1]
    return np.maximum(vals[order], 0.0), vecs[:, order]


class Augment:
    """Standardise, then §4.1's two augmentations at this scale, deterministic in (seed, offset).

    translation: shift by up to `pad` pixels (pad with `fill`, then crop back to S x S), as
    data.digits.augment_digits; lighting: add P (alpha * lighting_std * sqrt(eigvals)) to
    every pixel of an image, alpha ~ N(0, 1) per image (the paper's PCA lighting; eigvals
    and P of the standardised pixels, pixel_pca). Both draw from reference.augment.draw_numbers
    (geometry words and normals of the same counters). lighting_std=0 turns lighting off.
    """

    def __init__(self, ds: Dataset, *, seed: int, pad: int = 4, lighting_std: float = 0.1):
        self.standardise = Standardise(ds.mean, ds.std)
        self.seed, self.pad, self.lighting_std = int(seed), int(pad), float(lighting_std)
        self.fill = float(((0.0 - ds.mean) / ds.std).mean())  # the standardised black background
        vals, vecs = pixel_pca(ds)
        self.sigma, self.P = np.sqrt(vals).astype(np.float32), vecs.astype(np.float32)

    def __call__(self, images, *, offset: int) -> np.ndarray:
        from ..data.digits import augment_digits
        from ..reference.augment import box_muller_normals, draw_numbers

        x = self.standardise(images)
        if self.pad:
            x = augment_digits(x, seed=self.seed, offset=offset, pad=self.pad, fill=self.fill)
        if self.lighting_std:
            _, r1 = draw_numbers(len(x), self.seed, offset)
            alpha = box_muller_normals(r1)[:, :3].astype(np.float32)
            delta = (alpha * np.float32(self.lighting_std) * self.sigma) @ self.P.T  # (n, 3)
            x += delta[:, None, None, :]
        return x


def input_record(ds: Dataset) -> dict:
    """What a checkpoint's extra records so the figure commands can feed it images."""
    return {"input": {"kind": "standardise", "mean": [float(v) for v in ds.mean],
                      "std": [float(v) for v in ds.std], "image_size": ds.size},
            "classes": list(ds.classes), "data": ds.name}


def input_transform(ck):
    """(image side S, f: uint8 (N, S, S, 3) -> the net's float32 input) for a loaded checkpoint.

    Reads input_record's entry, or what `train` records (a mean image, input_scale: the
    centre crop of data.views.test_views). Raises ValueError when the checkpoint says
    neither (e.g. the demo's, which trains on digits standardised in memory).
    """
    rec = ck.extra.get("input")
    if rec and rec.get("kind") == "standardise":
        return int(rec["image_size"]), Standardise(rec["mean"], rec["std"])
    mean, size = ck.arrays.get("mean"), ck.extra.get("image_size")
    if mean is not None and size:
        from ..data.views import test_views

        crop, scale = ck.net.input_shape[0], np.float32(ck.extra.get("input_scale", 1.0))
        return int(size), lambda b: test_views(b, mean, crop=crop, ten_crop=False) * scale
    raise ValueError("the checkpoint records no input preprocessing (train one with `experiment ablate` or "
                     "`train`)")
