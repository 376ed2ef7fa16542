"""A small ImageNet-style tree of real image files for the command-line tests.

Three classes, each a colour family (so a few steps of training can tell them apart),
12 training and 4 validation images each, of several sizes and aspect ratios, saved as
JPEG and PNG in RGB, grayscale and CMYK; plus one truncated JPEG that `prepare` must skip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("ember", "moss", "sky")
SIZES = ((80, 100), (100, 80), (96, 96), (120, 76), (76, 90), (88, 120))  # (width, height)


def picture(cls: int, w: int, h: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): class `cls`'s dominant colour, a gradient and noise."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.full(3, 60.0)
    base[cls] = 190.0
    a = base + 40 * np.stack([x / w, y / h, (x + y) / (w + h)], -1) * r.uniform(-1, 1, 3)
    a += r.normal(0, 18, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def write(img: np.ndarray, path: Path, k: int) -> None:
    """Save in one of several forms, chosen by k: JPEG, PNG, grayscale JPEG, CMYK JPEG."""
    form = k % 4
    if form == 0:
        Image.fromarray(img).save(path.with_suffix(".JPEG"), quality=90)
    elif form == 1:
        Image.fromarray(img).save(path.with_suffix(".png"))
    elif form == 2:
        Image.fromarray(img).convert("L").save(path.with_suffix(".jpg"), quality=90)
    else:
        Image.fromarray(img).convert("CMYK").save(path.with_suffix(".JPEG"), quality=90)


def make_tree(root: Path, train_per_class: int = 12, val_per_class: int = 4) -> dict:
    """train/<class>/..., val/<class>/...; returns {"truncated": path, "good": [two image paths]}."""
    seed = 0
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                w, h = SIZES[(i + c) % len(SIZES)]
                seed += 1
                write(picture(c, w, h, seed), d / f"{name}_{i:02d}", i + c)
    bad = root / "train" / CLASSES[0] / "truncated.JPEG"
    Image.fromarray(picture(0, 100, 80, 999)).save(bad, quality=90)
    bad.write_bytes(bad.read_bytes()[:300])
    good = [sorted((root / "val" / CLASSES[c]).iterdir())[1] for c in (0, 2)]  # a png and a CMYK JPEG
    return {"truncated": bad, "good": good}
