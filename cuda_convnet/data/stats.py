"""Training-set statistics: the mean image (§2) and the RGB PCA for lighting noise (§4.1).

§2: "subtracting the mean activity over the training set from each pixel" -> the mean
image, float32 (256, 256, 3), the per-position mean over all training images.

§4.1: "we perform PCA on the set of RGB pixel values throughout the ImageNet training
set" -> the 3x3 covariance of all training pixels (every pixel of every image is one
3-vector) and its eigen-decomposition.

Streaming and exact.  The sums are integers (pixels are uint8), so they are accumulated
exactly instead of in float64 as an approximation:

- mean image: int64 sum per (y, x, c); at most 255 * N, no overflow for any N.
- covariance: sum of x (3) and sum of x x^T (3x3) over all pixels.  Per chunk they are
  computed as float64 BLAS products, which are exact because every partial sum stays
  below 2**53 (a chunk of k images sums at most k * 65536 * 65025 < 2**53 for k < 2e6);
  across chunks they are accumulated as Python ints (unbounded; int64 would overflow at
  ~2M ImageNet-sized images).

Exact sums make the result independent of chunking, worker count and resume points, so
an interrupted-and-resumed prepare is byte-identical to an uninterrupted one.  Nothing
ever holds all pixels: memory is one chunk plus the (256, 256, 3) int64 sum.
"""

from __future__ import annotations

import numpy as np


def chunk_sums(images: np.ndarray) -> tuple[np.ndarray, list[int], list[list[int]]]:
    """Exact sums over a chunk of uint8 images (k, H, W, 3).

    Returns (image_sum int64 (H, W, 3), pixel_sum [3] ints, pixel_outer [3][3] ints).
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (k, H, W, 3) images, got {images.dtype} {images.shape}")
    image_sum = images.sum(axis=0, dtype=np.int64)
    s1 = image_sum.reshape(-1, 3).sum(axis=0)  # int64, exact
    s2 = np.zeros((3, 3), dtype=np.float64)
    for img in images:  # one image at a time: bounded float64 temporaries (1.5 MB)
        # Planar (3, H*W) layout: a reduction along 3-wide rows is ~4x slower in NumPy.
        x = np.ascontiguousarray(img.reshape(-1, 3).T, dtype=np.float64)
        s2 += x @ x.T
    return image_sum, [int(v) for v in s1], [[int(v) for v in row] for row in s2]


class PixelStats:
    """Accumulates exact training-set sums chunk by chunk; see the module docstring."""

    def __init__(self, height: int = 256, width: int = 256):
        self.count = 0  # images
        self.image_sum = np.zeros((height, width, 3), dtype=np.int64)
        self.pixel_sum = [0, 0, 0]
        self.pixel_outer = [[0] * 3 for _ in range(3)]

    def add_chunk(self, count: int, image_sum: np.ndarray, pixel_sum, pixel_outer) -> None:
        self.count += int(count)
        self.image_sum += image_sum
        self.pixel_sum = [a + int(b) for a, b in zip(self.pixel_sum, pixel_sum)]
        self.pixel_outer = [
            [a + int(b) for a, b in zip(ra, rb)] for ra, rb in zip(self.pixel_outer, pixel_outer)
        ]

    def add_images(self, images: np.ndarray) -> None:
        self.add_chunk(len(images), *chunk_sums(images))

    # -- state for the resumable progress file (JSON ints are exact) --------------------
    def state(self) -> dict:
        return {"count": self.count, "pixel_sum": self.pixel_sum, "pixel_outer": self.pixel_outer}

    @classmethod
    def from_state(cls, state: dict, image_sum: np.ndarray) -> PixelStats:
        s = cls(*image_sum.shape[:2])
        s.count = int(state["count"])
        s.image_sum = np.asarray(image_sum, dtype=np.int64).copy()
        s.pixel_sum = [int(v) for v in state["pixel_sum"]]
        s.pixel_outer = [[int(v) for v in row] for row in state["pixel_outer"]]
        return s

    # -- results --------------------------------------------------------------------------
    def mean_image(self) -> np.ndarray:
        """float32 (H, W, 3): the per-position training mean, rounded once from float64."""
        if self.count == 0:
            raise ValueError("no training images: the mean image is undefined")
        return (self.image_sum.astype(np.float64) / self.count).astype(np.float32)

    def covariance(self) -> np.ndarray:
        """float64 (3, 3) population covariance of RGB pixel values in 0..255 units."""
        n = self.count * self.image_sum.shape[0] * self.image_sum.shape[1]
        if n < 2:
            raise ValueError("need at least two training pixels for a covariance")
        # Centre with exact integer arithmetic before going to float: n*S2 - s1 s1^T.
        s1 = self.pixel_sum
        num = [[n * self.pixel_outer[i][j] - s1[i] * s1[j] for j in range(3)] for i in range(3)]
        return np.array(num, dtype=np.float64) / float(n) / float(n)

    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigvals (3,), eigvecs (3, 3)) of the covariance, float64; see `rgb_pca`."""
        return rgb_pca(self.covariance())


def rgb_pca(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a 3x3 RGB covariance, in a canonical form.

    eigvals: descending, float64, variances in (0..255)^2 units.
    eigvecs: columns are the unit eigenvectors p_1, p_2, p_3 (eigvecs[:, i] pairs with
    eigvals[i]); each column's sign is fixed so its largest-magnitude entry is positive,
    so the result does not depend on the LAPACK build.
    """
    cov = np.asarray(cov, dtype=np.float64)
    vals, vecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    for i in range(vecs.shape[1]):
        j = int(np.argmax(np.abs(vecs[:, i])))
        if vecs[j, i] < 0:
            vecs[:, i] = -vecs[:, i]
    vals = np.maximum(vals, 0.0)  # a covariance is PSD; clip -1e-13 style round-off
    return vals, np.ascontiguousarray(vecs)
