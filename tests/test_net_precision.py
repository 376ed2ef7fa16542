"""``precision=`` on the Net, the model builders and checkpoints (cpu backend).

The Net passes its precision to every conv and fc op, forward and backward: checked
against the reference ops called by hand in float64 (the rounding is the only difference
between precisions, so a layer that forgot the keyword is off by ~2^-11 relative, far
outside the 1e-12 of the comparison). Checkpoints record it; files written before nets
had a precision load as "fp32".
"""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from net_support import one_blas_thread  # noqa: F401

from cuda_convnet import SGD, models
from cuda_convnet import reference as R
from cuda_convnet.checks import PRECISIONS
from cuda_convnet.net import (
    CheckpointError,
    Conv2d,
    Flatten,
    Linear,
    Net,
    ReLU,
    SoftmaxCrossEntropy,
    load_checkpoint,
    save_checkpoint,
)
from cuda_convnet.net.checkpoint import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_blas_thread")
PAD = (1, 1, 1, 1)


def conv_fc_net(precision="fp32"):
    layers = [Conv2d("c1", "data", filters=4, size=3, padding=1, weight_std=0.3, bias_init=0.1), ReLU("r1", "c1"),
              Flatten("flat", "r1"), Linear("fc", "flat", units=3, weight_std=0.1),
              SoftmaxCrossEntropy("loss", "fc")]
    return Net(layers, input_shape=(6, 6, 2), devices=("cpu",), seed=3, dtype="float64", precision=precision)


def by_hand(net, x, labels, p):
    """(logits, {param: grad}) of conv_fc_net from the reference ops, at precision p."""
    s = net.state_dict()
    y = R.conv2d(x, s["c1.weight"], s["c1.bias"], padding=PAD, relu=True, precision=p)
    flat = y.reshape(len(x), -1)
    logits = R.linear(flat, s["fc.weight"], s["fc.bias"], precision=p)
    _, probs = R.softmax_cross_entropy(logits, labels)
    dlogits = R.softmax_cross_entropy_backward(probs, labels)
    dflat, dw2, db2 = R.linear_backward(flat, s["fc.weight"], dlogits, precision=p)
    dy = dflat.reshape(y.shape) * (y > 0)
    _, dw1, db1 = R.conv2d_backward(x, s["c1.weight"], dy, padding=PAD, need_dx=False, precision=p)
    return logits, {"c1.weight": dw1, "c1.bias": db1, "fc.weight": dw2, "fc.bias": db2}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_conv_and_fc_op_gets_the_nets_precision(precision):
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((5, 6, 6, 2)), np.array([0, 1, 2, 1, 0])
    net = conv_fc_net(precision)
    assert net.precision == precision and net.spec()["precision"] == precision
    want_logits, want_grads = by_hand(net, x, labels, precision)
    np.testing.assert_allclose(net.forward(x), want_logits, rtol=1e-12, atol=1e-12)
    net.gradients(x, labels)
    for p in net.parameters():
        np.testing.assert_allclose(p.grad, want_grads[p.name], rtol=1e-12, atol=1e-12, err_msg=p.name)
    # The precisions are told apart at this tolerance: tf32 and bf16 differ from fp32 by
    # orders of magnitude more (3xtf32 is the float32 reference: identical).
    fp32_logits, fp32_grads = by_hand(net, x, labels, "fp32")
    gap = max(np.abs(want_grads[k] - fp32_grads[k]).max() for k in fp32_grads)
    assert (gap == 0) == (precision in ("fp32", "3xtf32"))
    assert precision in ("fp32", "3xtf32") or gap > 1e-6


def test_precision_is_checked_and_can_change_between_steps():
    for bad in ("fp16", "highest", None, 1):
        with pytest.raises(ValueError, match="Net: precision must be one of 'fp32', '3xtf32', 'tf32', 'bf16'"):
            conv_fc_net(bad)
    net = conv_fc_net()
    with pytest.raises(ValueError, match="Net: precision"):
        net.precision = "tf16"
    assert net.precision == "fp32"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 2))
    net.precision = "bf16"
    np.testing.assert_array_equal(net.forward(x), by_hand(net, x, np.zeros(2, int), "bf16")[0])


def test_model_builders_take_precision():
    assert models.small_net(10, towers=1, devices=("cpu",), width=1, precision="tf32").precision == "tf32"
    assert models.digits_net(devices=("cpu", "cpu"), precision="bf16").precision == "bf16"
    assert models.four_layer_net(width=2, precision="3xtf32").precision == "3xtf32"
    assert models.small_net(10, devices=("cpu", "cpu"), width=1).precision == "fp32"  # the default
    with pytest.raises(ValueError, match="Net: precision must be one of"):
        models.small_net(10, devices=("cpu", "cpu"), width=1, precision="tf64")


def test_alexnet_takes_precision():
    net = models.alexnet(towers=1, devices=("cpu",), num_classes=10, precision="tf32")
    assert net.precision == "tf32" and net.spec()["precision"] == "tf32"


def test_spec_round_trip_and_override():
    net = conv_fc_net("tf32")
    assert Net.from_spec(net.spec()).precision == "tf32"
    assert Net.from_spec(net.spec(), precision="bf16").precision == "bf16"
    old = {k: v for k, v in net.spec().items() if k != "precision"}  # a spec written before precision existed
    assert Net.from_spec(old).precision == "fp32"


def _rewrite_manifest(src, dst, edit):
    """Copy checkpoint `src` to `dst` with its manifest changed by edit(manifest)."""
    manifest, arrays = read_checkpoint(src)
    edit(manifest)
    members = {k: v for k, v in arrays.items()}
    members["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(dst, **members)


def test_checkpoint_records_and_restores_precision(tmp_path):
    rng = np.random.default_rng(2)
    net = conv_fc_net("bf16")
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, labels = rng.standard_normal((4, 6, 6, 2)), np.array([0, 1, 2, 0])
    net.train_step(x, labels, opt)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net, optimizer=opt)
    ck = load_checkpoint(path)
    assert ck.net.precision == "bf16"
    np.testing.assert_array_equal(ck.net.forward(x), net.forward(x))
    assert load_checkpoint(path, precision="tf32").net.precision == "tf32"
    with pytest.raises(ValueError, match="load_checkpoint: precision must be one of"):
        load_checkpoint(path, precision="fp8")

    # A checkpoint written before nets had a precision: fp32, what it was trained in.
    old = tmp_path / "old.npz"
    _rewrite_manifest(path, old, lambda m: m["net"].pop("precision"))
    with zipfile.ZipFile(old) as z:
        assert b"precision" not in z.read("manifest.npy")
    ck = load_checkpoint(old)
    assert ck.net.precision == "fp32"
    np.testing.assert_array_equal(ck.net.forward(x), by_hand(ck.net, x, labels, "fp32")[0])

    for bad in ("fp16", 7, None):
        crafted = tmp_path / "bad.npz"
        _rewrite_manifest(path, crafted, lambda m, v=bad: m["net"].__setitem__("precision", v))
        with pytest.raises(CheckpointError, match=r"net.precision must be one of fp32, 3xtf32, tf32, bf16"):
            load_checkpoint(crafted)
