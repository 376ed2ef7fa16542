"""Shared by the tests of the layer graph (tests/test_net_*.py): the tiny tower net, a
batch for it, and a fixture limiting BLAS to one thread."""
from __future__ import annotations

import numpy as np
import pytest

from cuda_convnet import models
from cuda_convnet.models import ConvBlock, TowerNetConfig


def tiny_config(classes: int = 5) -> TowerNetConfig:
    """AlexNet's shape in miniature (16x16 input): every layer type, both kinds of conv."""
    return TowerNetConfig(
        input_shape=(16, 16, 3),
        convs=(
            ConvBlock(8, 5, 2, 2, both_towers=True, bias=0.0, lrn=True, pool=True),   # 8x8 -> 3x3
            ConvBlock(12, 3, 1, 1, both_towers=False, bias=1.0, lrn=True, pool=False),
            ConvBlock(12, 3, 1, 1, both_towers=True, bias=0.0),
            ConvBlock(8, 3, 1, 1, both_towers=False, bias=1.0, pool=True),            # 3x3 -> 1x1
        ),
        hidden=(16, 16),
        classes=classes,
        weight_std=0.3,
    )


def tiny_net(towers=2, devices=None, seed=0, dtype="float64", **kw):
    return models.tower_net(tiny_config(**kw), towers=towers, devices=devices, seed=seed, dtype=dtype)


def batch(n=6, shape=(16, 16, 3), classes=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + tuple(shape)).astype(dtype), rng.integers(0, classes, n).astype(np.int32)


@pytest.fixture(autouse=False)
def one_blas_thread():
    """One BLAS thread: on the shared 2-core machine OpenBLAS's threads spin against each
    other and small matmuls get 5-20x slower (see cuda_convnet/cli/demo.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
