"""Shared by the tests of the layer graph (tests/test_net_*.py).

`requires_ops(backend, *names)`: a pytest mark that skips a test while `backend` lacks
one of the ops (the emu/cuda kernels for conv, LRN, pooling, dropout, softmax and SGD are
being written on other branches); once they are merged `hasattr(backend, name)` turns
true and the tests run, with no edit here.
"""
from __future__ import annotations

import numpy as np
import pytest

import cuda_convnet as ccn
from cuda_convnet import models
from cuda_convnet.models import ConvBlock, TowerNetConfig
from cuda_convnet.net.devices import NET_OPS


def missing_ops(backend_name: str, *names) -> list[str] | str:
    """The ops `backend_name` lacks, or a string saying why the backend is unavailable."""
    try:
        b = ccn.backend(backend_name)
    except Exception as e:  # noqa: BLE001 - no GPU, extension not built, ...
        return f"backend {backend_name!r} unavailable: {e}"
    return [n for n in names if not hasattr(b, n)]


def requires_ops(backend_name: str, *names):
    """Skip unless `backend_name` exists and has every op in `names` (default: all of NET_OPS)."""
    names = names or NET_OPS
    missing = missing_ops(backend_name, *names)
    if isinstance(missing, str):
        return pytest.mark.skip(reason=missing)
    return pytest.mark.skipif(bool(missing), reason=f"the {backend_name} backend has no {', '.join(missing)} "
                                                    "yet (kernels not merged); runs automatically once it does")


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
