"""§4.1 training views: a uint8 256x256 batch -> float32 224x224 crops, flips, PCA lighting,
mean (one fused launch); also in images/s. Bytes: the images read, the crops written, the
mean image once (it is shared by the batch and stays in cache)."""

from __future__ import annotations

import numpy as np

from cuda_convnet.reference.augment import lighting_constants
from kernel_cases.case import Case, nhwc


def cases(env):
    dev, R, batch = env.dev, env.R, env.batch
    ishape = (batch, 256, 256, 3)
    eigvecs = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    sigma, P = lighting_constants(np.array([4200.0, 610.0, 95.0]), eigvecs)
    aug = dict(seed=2012, offset=0, sigma=sigma, P=P, crop=224)
    return [Case(
        "train_views 256->224", nhwc(ishape),
        lambda s: {"images": dev.randint(s, 256, ishape).astype(np.uint8),
                   "mean": dev.randn(s + 1, ishape[1:], 40.0) + np.float32(120)},
        lambda B, X: (B.train_views(X["images"], mean=X["mean"], **aug),),
        lambda H: (R.train_views(H["images"], mean=H["mean"].astype(np.float32), **aug),),
        batch * 224 * 224 * 3 * (1 + 4) + 256 * 256 * 3 * 4, per_sample=False, images=batch)]
