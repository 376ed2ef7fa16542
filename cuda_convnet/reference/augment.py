"""The §4.1 training-view recipe in NumPy: random crop, flip, PCA lighting, mean (§2).

§4.1, first form: "extracting random 224x224 patches (and their horizontal reflections)
from the 256x256 images". §4.1, second form (PCA lighting): to every pixel of an image add
[p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, with p_i, l_i the eigenvectors / eigenvalues of the
3x3 covariance of training RGB pixels and a_i ~ N(0, 0.1) drawn once per image per use.
§2: subtract the training mean.

This module is the definition the fused CUDA augmentation kernel (csrc/augment.cuh, the
kernel backends' `train_views`; cuda_convnet.data.augment.KernelTrainAugment puts it in the loader) reproduces bit
for bit.  Everything random is a pure function of (seed, offset, image index), drawn with
Philox4x32-10 (cuda_convnet.random.philox4x32, the generator dropout uses). The
loader-side parts live in cuda_convnet.data: TrainAugment in augment.py, the test views in
views.py.

The recipe, for image i (0 <= i < N) of a call train_views(images, seed=, offset=)
---------------------------------------------------------------------------------
Inputs: images uint8 (N, H, W, 3) NHWC (H = W = 256), crop c (224), mean float32
(H, W, 3), seed and offset unsigned 64-bit, per-component magnitudes sigma float32 (3,)
and eigenvectors P float32 (3, 3) (P[:, k] is p_k), both computed on the host by
`lighting_constants` (see "magnitudes" below), lighting_std float32 (0.1).

    g       = (offset + i) mod 2**64                  the image's draw number
    key     = (seed & 0xffffffff, seed >> 32)
    r0[0:4] = philox4x32_10((g & 0xffffffff, g >> 32, 0, AUGMENT_TAG), key)  geometry
    r1[0:4] = philox4x32_10((g & 0xffffffff, g >> 32, 1, AUGMENT_TAG), key)  lighting
    AUGMENT_TAG = 0x41554731 ("AUG1"; keeps these counters disjoint from dropout's)

    crop_y  = r0[0] % (H - c + 1)          uint32 remainder (33 positions for 256/224)
    crop_x  = r0[1] % (W - c + 1)
    flip    = r0[2] >> 31                  1 = horizontal reflection
    (r0[3] is unused, reserved)

    three normals, Box-Muller in float64 (every step below is float64):
    u_k     = ((r1[k] >> 8) + 0.5) * 2**-24        exact; in (0, 1), never 0 or 1
    rad_a   = sqrt(-2 * log(u_0)),  th_a = 6.283185307179586 * u_1
    rad_b   = sqrt(-2 * log(u_2)),  th_b = 6.283185307179586 * u_3
    z_0     = rad_a * cos(th_a),  z_1 = rad_a * sin(th_a),  z_2 = rad_b * cos(th_b)
    alpha_k = (float) z_k                          round to nearest float32

    then float32, each operation rounded to float32, in this order, no FMA contraction
    (in CUDA: __fmul_rn / __fadd_rn / __fsub_rn, or compile with -fmad=false):
    a_k     = alpha_k * lighting_std
    s_k     = a_k * sigma_k
    delta_c = ((P[c,0] * s_0) + (P[c,1] * s_1)) + (P[c,2] * s_2)      for c = R, G, B
    for 0 <= y, x < c:
        sy  = crop_y + y
        sx  = crop_x + (c - 1 - x) if flip else crop_x + x
        out[i, y, x, ch] = ((float) images[i, sy, sx, ch] - mean[sy, sx, ch]) + delta_ch

So the mean is subtracted at the source position of each output pixel: the mean image
is cropped at the same window and reflected the same way, which is exactly "subtract
the full 256x256 mean, then crop and flip".  (cuda-convnet2 subtracted the *centre*
crop of the mean from every random crop; §2 says per-pixel mean, so we align it.)  The
lighting noise is added after the mean subtraction, as in cuda-convnet2's convdata.py.

Why float64 for Box-Muller: float32 logf/cosf differ between CUDA and any CPU libm by
an ulp in a large fraction of inputs, which would break bit-equality.  Double-precision
results rounded once to float32 agree unless a result falls within the libraries'
~1-ulp double error of a float32 rounding boundary: about 1e-8 per draw, and then by
one float32 ulp of alpha.  Only 3 normals per image, so the cost is nothing.

Magnitudes (sigma): the paper multiplies alpha_i by "the eigenvalue" l_i but does not
say in which pixel units, and taken literally in our 0..255 units (l_1 is thousands)
the noise would exceed the pixel range.  Two readings are supported (`pca_scale`), both
computed on the host in float64 and rounded once to float32:
  "stdev" (default)  sigma_k = sqrt(l_k), l_k in (0..255)^2 units: the noise along p_k
                     has 0.1 x the data's own standard deviation along p_k (its
                     covariance is 0.01 x the pixel covariance).  This follows the
                     author's cuda-convnet2 (convdata.py: noise = randn * color_stdevs,
                     per-component standard deviations from its precomputed PCA).
  "eigval01"         sigma_k = 255 * (l_k / 255**2): the formula applied verbatim to
                     pixels scaled to [0, 1] (as many re-implementations do), expressed
                     back in 0..255 units.
(cuda-convnet2 also rescaled the noisy data by 1/(1 + coeff); the paper does not, nor
do we.)
"""

from __future__ import annotations

import numpy as np

from .. import checks
from ..random import philox4x32

AUGMENT_TAG = 0x41554731  # "AUG1"
TWO_PI = 6.283185307179586  # float64(2*pi), the constant in the recipe

PCA_SCALES = ("stdev", "eigval01")


def _u64(v: int, name: str) -> int:
    v = int(v)
    if not 0 <= v < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def draw_numbers(n: int, seed: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The raw Philox words for images 0..n-1: (r0 (n, 4), r1 (n, 4)) uint32."""
    seed, offset = _u64(seed, "seed"), _u64(offset, "offset")
    g = np.uint64(offset) + np.arange(n, dtype=np.uint64)  # wraps mod 2**64 as specified
    counter = np.empty((2, n, 4), dtype=np.uint32)
    counter[:, :, 0] = (g & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    counter[:, :, 1] = (g >> np.uint64(32)).astype(np.uint32)
    counter[0, :, 2] = 0
    counter[1, :, 2] = 1
    counter[:, :, 3] = AUGMENT_TAG
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    r = philox4x32(counter, key)
    return r[0], r[1]


def box_muller_normals(words: np.ndarray) -> np.ndarray:
    """Three float32 N(0, 1) from four uint32 words per row (n, 4) -> (n, 3), as specified."""
    u = ((words >> np.uint32(8)).astype(np.float64) + 0.5) * 2.0**-24
    rad_a = np.sqrt(-2.0 * np.log(u[:, 0]))
    rad_b = np.sqrt(-2.0 * np.log(u[:, 2]))
    th_a = TWO_PI * u[:, 1]
    th_b = TWO_PI * u[:, 3]
    z = np.stack([rad_a * np.cos(th_a), rad_a * np.sin(th_a), rad_b * np.cos(th_b)], axis=1)
    return z.astype(np.float32)


def train_view_params(
    n: int, *, seed: int, offset: int, size: int = 256, crop: int = 224, width: int | None = None
):
    """The random choices for n images: (crop_y, crop_x, flip, alpha (n, 3) float32 N(0,1)).

    `size` is the images' height, and their width unless `width` is given.
    """
    width = size if width is None else width
    if not 0 < crop <= min(size, width):
        raise ValueError(f"crop {crop} must be in (0, {min(size, width)}]")
    r0, r1 = draw_numbers(n, seed, offset)
    crop_y = (r0[:, 0] % np.uint32(size - crop + 1)).astype(np.int64)
    crop_x = (r0[:, 1] % np.uint32(width - crop + 1)).astype(np.int64)
    flip = (r0[:, 2] >> np.uint32(31)).astype(bool)
    return crop_y, crop_x, flip, box_muller_normals(r1)


def lighting_constants(eigvals, eigvecs, pca_scale: str = "stdev") -> tuple[np.ndarray, np.ndarray]:
    """Host-side (sigma float32 (3,), P float32 (3, 3)); see "Magnitudes" above."""
    eigvals = np.asarray(eigvals, dtype=np.float64)
    eigvecs = np.asarray(eigvecs, dtype=np.float64)
    if eigvals.shape != (3,) or eigvecs.shape != (3, 3):
        raise ValueError(
            f"eigvals must be (3,) and eigvecs (3, 3), got {eigvals.shape}, {eigvecs.shape}"
        )
    if np.any(eigvals < 0) or not np.all(np.isfinite(eigvals)):
        raise ValueError(f"eigenvalues of a covariance must be finite and >= 0, got {eigvals}")
    if pca_scale == "stdev":
        sigma = np.sqrt(eigvals)
    elif pca_scale == "eigval01":
        sigma = 255.0 * (eigvals / 255.0**2)
    else:
        raise ValueError(f"pca_scale must be one of {PCA_SCALES}, got {pca_scale!r}")
    return sigma.astype(np.float32), eigvecs.astype(np.float32)


def lighting_deltas(
    alpha: np.ndarray, sigma: np.ndarray, P: np.ndarray, lighting_std: float
) -> np.ndarray:
    """Per-image RGB offsets (n, 3) float32, in the recipe's exact float32 order."""
    f32 = np.float32
    a = alpha.astype(f32) * f32(lighting_std)  # (n, 3)
    s = a * sigma.astype(f32)[None, :]
    P = P.astype(f32)
    delta = np.empty_like(s)
    for ch in range(3):  # explicit sums, no matmul: BLAS may reorder or fuse
        delta[:, ch] = ((P[ch, 0] * s[:, 0]) + (P[ch, 1] * s[:, 1])) + (P[ch, 2] * s[:, 2])
    return delta


def _check_images(images: np.ndarray, crop: int) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[1] < crop or images.shape[2] < crop:
        raise ValueError(f"images {images.shape[1]}x{images.shape[2]} smaller than the {crop} crop")
    return images


def _check_mean(mean, images: np.ndarray) -> np.ndarray | None:
    if mean is None:
        return None
    mean = np.asarray(mean, dtype=np.float32)
    if mean.shape != images.shape[1:]:
        raise ValueError(f"mean image {mean.shape} does not match images {images.shape[1:]}")
    return mean


def train_views(
    images,
    *,
    seed: int,
    offset: int,
    mean,
    eigvals,
    eigvecs,
    crop: int = 224,
    lighting_std: float = 0.1,
    pca_scale: str = "stdev",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Random crop + flip + PCA lighting + mean subtraction (§4.1), float32 (N, crop, crop, 3).

    Exactly the recipe in the module docstring.  `mean` may be None (no subtraction),
    `lighting_std=0` disables lighting noise.  `out` may be a preallocated float32 array.
    """
    images = _check_images(images, crop)
    mean = _check_mean(mean, images)
    n, h, w, _ = images.shape
    if h != w:
        raise ValueError(f"train_views expects square images, got {h}x{w}")
    crop_y, crop_x, flip, alpha = train_view_params(n, seed=seed, offset=offset, size=h, crop=crop)
    sigma, P = lighting_constants(eigvals, eigvecs, pca_scale)
    delta = lighting_deltas(alpha, sigma, P, lighting_std)
    return _write_views(images, mean, crop_y, crop_x, flip, delta, crop, out)


def _write_views(images, mean, crop_y, crop_x, flip, delta, crop, out):
    """The recipe's last line for every image, given its crop, flip and delta."""
    n = images.shape[0]
    if out is None:
        out = np.empty((n, crop, crop, 3), dtype=np.float32)
    elif out.shape != (n, crop, crop, 3) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {(n, crop, crop, 3)}, got {out.dtype} {out.shape}")
    for i in range(n):
        y, x = crop_y[i], crop_x[i]
        src = images[i, y : y + crop, x : x + crop]
        m = mean[y : y + crop, x : x + crop] if mean is not None else None
        if flip[i]:
            src = src[:, ::-1]
            m = m[:, ::-1] if m is not None else None
        o = out[i]
        if m is not None:
            np.subtract(src, m, out=o)  # uint8 -> float32 (exact) and subtract, one pass
        else:
            o[...] = src
        np.add(o, delta[i], out=o)
    return out


def train_views_from_constants(
    images, *, seed: int, offset: int, mean, sigma, P, crop: int = 224, lighting_std: float = 0.1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """train_views given the host lighting constants (sigma, P) = lighting_constants(...).

    The op form every backend shares (the cpu backend's `train_views`; the kernel backends
    run csrc/augment.cuh with the same signature): the arguments are checked as the kernels
    check them (cuda_convnet.checks.check_train_views_args: uint8, C-contiguous, float32
    constants), and H may differ from W (crop_y draws from H - crop + 1 positions, crop_x
    from W - crop + 1, as the recipe says).
    """
    seed, offset, crop, lighting_std = checks.check_train_views_args(
        images, seed, offset, mean, sigma, P, crop, lighting_std
    )
    n, h, w, _ = images.shape
    crop_y, crop_x, flip, alpha = train_view_params(
        n, seed=seed, offset=offset, size=h, width=w, crop=crop
    )
    delta = lighting_deltas(alpha, sigma, P, lighting_std)
    return _write_views(images, mean, crop_y, crop_x, flip, delta, crop, out)
