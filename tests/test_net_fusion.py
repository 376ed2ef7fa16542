"""ReLU fused by the Net: the same function and gradients as the unfused graph, on the
reference (cpu) and the kernels (emu), grouped and two towers.

The fused net runs conv2d/linear with relu=True and its ReLU layers launch nothing
forward; a ReLU read only by an LRN or a max-pool layer (relu1 -> norm1, relu2 -> norm2,
relu5 -> pool5) launches nothing backward either: that layer's backward runs with
relu_mask=True (dx zeroed where its input, the ReLU's output, is <= 0). The twin built
with fuse_relu=False runs every ReLU as its own op both ways. Same seed, same weights: the
logits, every ReLU output, the loss, the error counts and every parameter gradient must
agree bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

from cuda_convnet import models
from cuda_convnet.net import Net

CLASSES = 10


def _twins(kind: str, towers: int):
    fused = models.small_net(CLASSES, towers=towers, devices=(kind,) * towers, seed=3)
    spec = fused.spec()
    plain = Net(spec["layers"], input_shape=spec["input_shape"], devices=(kind,) * towers, seed=spec["seed"],
                dtype=spec["dtype"], fuse_relu=False)
    return fused, plain


def _batch(net, n=2, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + tuple(net.input_shape)).astype(np.float32)
    return x, rng.integers(0, CLASSES, size=n)


@pytest.mark.parametrize("kind", ["cpu", pytest.param("emu", marks=pytest.mark.emu)])
@pytest.mark.parametrize("towers", [1, 2], ids=["grouped", "two_towers"])
def test_fused_relu_same_outputs_and_gradients(kind, towers):
    fused, plain = _twins(kind, towers)
    # Every conv and fc layer followed by its ReLU is fused (5 conv + 2 fc per tower form).
    assert sorted(fused._relu_of.values()) == sorted(l.name for l in fused.layers if l.type == "relu")
    assert len(fused._relu_of) == 7 * towers
    assert plain._relu_of == {}
    # Backward: the ReLUs read only by an LRN or a max-pool (conv1, conv2: LRN; conv5: pool).
    sfx = [""] if towers == 1 else [f"/{t}" for t in range(towers)]
    assert fused._masked_by == {f"relu{k}{s}": f"{kind_}{k}{s}" for s in sfx
                                for k, kind_ in ((1, "norm"), (2, "norm"), (5, "pool"))}
    assert plain._masked_by == {}
    x, labels = _batch(fused)
    acts_f = fused._forward(x, True, keep=True)
    acts_p = plain._forward(x, True, keep=True)
    for name in fused._fused_into:
        assert np.array_equal(acts_f[name], acts_p[name]), name
        assert np.any(acts_p[name] == 0) and np.any(acts_p[name] > 0), name  # the ReLU did something
    stats_f = fused.gradients(x, labels)
    stats_p = plain.gradients(x, labels)
    assert stats_f == stats_p
    assert np.isfinite(stats_f["loss"])
    for pf, pp in zip(fused.parameters(), plain.parameters()):
        assert pf.name == pp.name
        g = np.asarray(pf.device.to_host(pf.grad))
        assert np.array_equal(g, np.asarray(pp.device.to_host(pp.grad))), pf.name
        assert np.any(g != 0), pf.name


def test_features_of_a_fused_layer_is_its_pre_activation():
    fused, plain = _twins("cpu", 1)
    x, _ = _batch(fused)
    pre = fused.features(x, "conv1")
    assert np.array_equal(pre, plain.features(x, "conv1"))
    assert pre.min() < 0  # before the ReLU
    relu_name = fused._relu_of["conv1"]
    assert np.array_equal(fused.features(x, relu_name), np.maximum(pre, 0))


def test_summary_marks_the_fused_relus():
    fused, plain = _twins("cpu", 1)
    rows = {line.split()[0]: line for line in fused.summary().splitlines()[2:-2]}
    for relu in fused._fused_into:
        assert "relu (fused)" in rows[relu]
    assert "(fused)" not in plain.summary()


def test_no_fusion_where_another_layer_reads_the_pre_activation():
    from cuda_convnet.net.layers import (
        Conv2d,
        Flatten,
        Linear,
        ReLU,
        SoftmaxCrossEntropy,
    )

    layers = [Conv2d("c1", "data", filters=4, size=3, padding=1), ReLU("r1", "c1"),
              Conv2d("c2", "c1", filters=4, size=3, padding=1),  # reads c1 before its ReLU
              ReLU("r2", "c2"), Flatten("f", "r2"), Linear("fc", "f", units=3), ReLU("r3", "fc"),
              Linear("out", "r3", units=3), SoftmaxCrossEntropy("loss", "out")]
    net = Net(layers, input_shape=(6, 6, 2), seed=0)
    assert net._relu_of == {"c2": "r2", "fc": "r3"}


@pytest.mark.parametrize("kind", ["cpu", pytest.param("emu", marks=pytest.mark.emu)])
def test_relu_backward_fused_into_lrn_and_pool_is_bit_identical(kind):
    """A small graph with both backward fusions (ReLU -> LRN, ReLU -> max-pool) and one a
    second reader blocks (a ReLU read by a pool and a conv): gradients equal the unfused
    twin's bit for bit on the reference (cpu) and the kernels (emu)."""
    from cuda_convnet.net.layers import LRN, Conv2d, Flatten, Linear, MaxPool, ReLU, SoftmaxCrossEntropy

    layers = [Conv2d("c1", "data", filters=8, size=3, padding=1), ReLU("r1", "c1"),
              LRN("n1", "r1", size=3, alpha=1.0, groups=2),
              Conv2d("c2", "n1", filters=8, size=3, padding=1), ReLU("r2", "c2"),
              MaxPool("p2", "r2", size=3, stride=2, padding=1),
              Conv2d("c3", "r2", filters=4, size=3, stride=2, padding=1),  # a second reader of r2
              Conv2d("c4", "p2", filters=4, size=1), ReLU("r4", "c4"), MaxPool("p4", "r4", size=2, stride=1),
              Flatten("f", "p4"), Flatten("f3", "c3"), Linear("fc", "f", units=3), Linear("fc3", "f3", units=3),
              Linear("out", "fc", units=3), SoftmaxCrossEntropy("loss", "out")]
    nets = [Net(layers, input_shape=(7, 7, 3), devices=(kind,), seed=1, fuse_relu=f) for f in (True, False)]
    fused, plain = nets
    assert fused._masked_by == {"r1": "n1", "r4": "p4"}
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 3)).astype(np.float32)
    labels = np.array([0, 2])
    assert fused.gradients(x, labels) == plain.gradients(x, labels)
    for pf, pp in zip(fused.parameters(), plain.parameters()):
        g = np.asarray(pf.grad, dtype=np.float32)
        np.testing.assert_array_equal(g.view(np.uint32), np.asarray(pp.grad, dtype=np.float32).view(np.uint32),
                                      err_msg=pf.name)
        if pf.name in ("c1.weight", "c4.weight"):
            assert np.any(g != 0)
