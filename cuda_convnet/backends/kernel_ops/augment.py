"""§4.1 training views on a uint8 batch, fused into one launch (csrc/augment.cuh).

The reference is cuda_convnet.reference.augment.train_views_from_constants (the cpu backend's
`train_views`): the recipe of that module's docstring, which the kernel reproduces bit for
bit (on a GPU up to one float32 ulp of a lighting coefficient, ~1e-8 per image, from the
double-precision libm; see the docstring).
"""
from __future__ import annotations

import numpy as np

from ... import checks


class AugmentOps:
    def train_views(self, images, *, seed, offset, mean, sigma, P, crop=224, lighting_std=0.1):
        """images uint8 (N, H, W, 3) -> float32 (N, crop, crop, 3): random crop, flip, PCA
        lighting and mean subtraction, image i drawing with counter offset + i.

        `mean` float32 (H, W, 3) on this backend's device, or None. `sigma` float32 (3,) and
        `P` float32 (3, 3) are the host constants of augment.lighting_constants (CuPy arrays
        are accepted and read back: 12 numbers that travel in the kernel's parameters).
        """
        seed, offset, crop, lighting_std = checks.check_train_views_args(
            images, seed, offset, mean, sigma, P, crop, lighting_std)
        self._ptr(images), self._ptr(mean)  # the device check: NumPy on emu, CuPy on cuda
        sigma, P = (a.get() if hasattr(a, "get") else np.asarray(a) for a in (sigma, P))
        n, h, w, _ = images.shape
        out = self._empty((n, crop, crop, 3))
        self.ext.train_views(
            images=self._ptr(images), mean=self._ptr(mean), out=self._ptr(out), n=n, h=h, w=w, crop=crop, seed=seed,
            offset=offset, sigma=[float(v) for v in sigma], P=[float(v) for v in P.reshape(-1)],
            lighting_std=float(np.float32(lighting_std)), stream=self._stream())
        return out
