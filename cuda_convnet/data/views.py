"""The test views of 256x256 uint8 images (§4.1): "five 224x224 patches (the four corner
patches and the center patch) as well as their horizontal reflections (hence ten patches
in all)", softmax averaged (evaluate.py does the averaging); §2: the training mean
subtracted. The training views' recipe is the reference op, cuda_convnet.reference.augment.
"""

from __future__ import annotations

import numpy as np

from ..reference.augment import _check_images, _check_mean

VIEW_NAMES = (
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "centre",
    "top-left flipped",
    "top-right flipped",
    "bottom-left flipped",
    "bottom-right flipped",
    "centre flipped",
)


def ten_crop_offsets(size: int = 256, crop: int = 224) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of the ten test views (§4.1), in VIEW_NAMES order.

    Corners at 0 and size - crop; the centre at (size - crop) // 2 (16 for 256/224).
    """
    if not 0 < crop <= size:
        raise ValueError(f"crop {crop} must be in (0, {size}]")
    far, mid = size - crop, (size - crop) // 2
    five = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    return [(t, left, False) for t, left in five] + [(t, left, True) for t, left in five]


def view(images, mean, top: int, left: int, flip: bool, crop: int = 224) -> np.ndarray:
    """One fixed view of every image: float32 (N, crop, crop, 3), mean-subtracted (aligned)."""
    images = _check_images(images, crop)
    mean = _check_mean(mean, images)
    x = images[:, top : top + crop, left : left + crop].astype(np.float32)
    if mean is not None:
        x -= mean[top : top + crop, left : left + crop]
    if flip:
        x = np.ascontiguousarray(x[:, :, ::-1])
    return x


def test_views(images, mean, *, crop: int = 224, ten_crop: bool = True) -> np.ndarray:
    """Centre view (N, crop, crop, 3), or all ten views (10, N, crop, crop, 3) (§4.1).

    The ten are in VIEW_NAMES order.  Memory: 10 * N * crop^2 * 12 bytes (770 MB for
    N = 128); evaluate.py produces one view at a time instead.
    """
    images = _check_images(images, crop)
    size = images.shape[1]
    if images.shape[2] != size:
        raise ValueError(
            f"test_views expects square images, got {images.shape[1]}x{images.shape[2]}"
        )
    offsets = ten_crop_offsets(size, crop)
    if not ten_crop:
        t, left, _ = offsets[4]
        return view(images, mean, t, left, False, crop)
    return np.stack([view(images, mean, t, left, f, crop) for t, left, f in offsets])


test_views.__test__ = False  # not a pytest test, despite the name
