"""The layer graph: gradients (checked by central differences), accumulation where a layer
feeds several, copies between devices, dropout counters, specs, and bad graphs."""
from __future__ import annotations

import numpy as np
import pytest
from net_support import batch, one_blas_thread, tiny_net  # noqa: F401

import cuda_convnet as ccn
from cuda_convnet.net import (
    LRN,
    ChannelSlice,
    Concat,
    Conv2d,
    Copy,
    Dropout,
    Flatten,
    Linear,
    MaxPool,
    Net,
    ReLU,
    SoftmaxCrossEntropy,
    Tanh,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def loss_of(net, x, y):
    return net.gradients(x, y)["loss"]


def check_net_gradients(net, x, y, *, h=1e-6, rtol=1e-6, seed=0):
    """Directional derivative of the training loss (dropout mask fixed by net.step) along a
    random direction over all parameters, against sum <grad, direction>; and the same per
    parameter tensor, so a wrong tensor is named."""
    rng = np.random.default_rng(seed)
    net.gradients(x, y)
    params = net.parameters()
    grads = {p.name: p.grad.copy() for p in params}
    for p in params:
        d = rng.standard_normal(p.shape)
        d /= np.linalg.norm(d)
        w0 = p.data.copy()
        p.data[...] = w0 + h * d
        lp = loss_of(net, x, y)
        p.data[...] = w0 - h * d
        lm = loss_of(net, x, y)
        p.data[...] = w0
        numeric = (lp - lm) / (2 * h)
        analytic = float(np.vdot(grads[p.name], d))
        assert abs(numeric - analytic) <= 1e-8 + rtol * max(1.0, np.linalg.norm(grads[p.name])), \
            f"{p.name}: numeric {numeric} analytic {analytic}"


def test_tower_net_gradients_float64():
    """Every layer type of the tiny AlexNet in both forms, copies and concats included."""
    x, y = batch(n=4)
    for towers in (2, 1):
        check_net_gradients(tiny_net(towers=towers), x, y)


def test_gradient_accumulates_where_a_layer_feeds_two():
    """relu1 feeds two fc layers (one on another device) and a slice; its gradient is the sum."""
    layers = [Flatten("flat", "data"),
              Linear("fc1", "flat", units=6, weight_std=0.5, bias_init=0.1),
              ReLU("relu1", "fc1"),
              Linear("a", "relu1", units=4, weight_std=0.5),
              Linear("b", "relu1", units=4, weight_std=0.5, device=1),
              Tanh("tb", "b", device=1),
              ChannelSlice("s", "relu1", start=1, stop=4),
              Concat("m", ["a", "tb", "s"]),
              Linear("out", "m", units=3, weight_std=0.5),
              SoftmaxCrossEntropy("loss", "out")]
    net = Net(layers, input_shape=(2, 2, 3), devices=("cpu", "cpu"), dtype="float64")
    assert [l.name for l in net._exec if isinstance(l, Copy)] == ["relu1->1", "tb->0"]
    x, y = batch(n=5, shape=(2, 2, 3), classes=3)
    check_net_gradients(net, x, y)
    # Without the branch through "b", fc1's gradient changes: the accumulation is real.
    net.gradients(x, y)
    g_full = net.params["fc1"]["weight"].grad.copy()
    net.params["b"]["weight"].data[...] = 0.0
    net.gradients(x, y)
    assert not np.allclose(net.params["fc1"]["weight"].grad, g_full)


def test_cross_device_copies_change_nothing():
    """The same layers with devices (cpu, cpu) vs everything on one device: identical bits."""
    def layers(dev1):
        return [Conv2d("c0", "data", filters=4, size=3, padding=1, weight_std=0.3),
                Conv2d("c1", "data", filters=4, size=3, padding=1, weight_std=0.3, device=dev1),
                ReLU("r1", "c1", device=dev1),
                Concat("m", ["c0", "r1"]),
                MaxPool("p", "m"), Flatten("f", "p"),
                Linear("fc", "f", units=3, weight_std=0.3),
                SoftmaxCrossEntropy("loss", "fc")]
    x, y = batch(n=3, shape=(5, 5, 2), classes=3)
    a = Net(layers(1), input_shape=(5, 5, 2), devices=("cpu", "cpu"), dtype="float64")
    b = Net(layers(0), input_shape=(5, 5, 2), devices=("cpu", "cpu"), dtype="float64")
    assert sum(isinstance(l, Copy) for l in a._exec) == 2 and not any(isinstance(l, Copy) for l in b._exec)
    sa, sb = a.gradients(x, y), b.gradients(x, y)
    assert sa == sb
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.grad, pb.grad)


def test_lrn_and_dropout_groups_match_per_tower_ops():
    """Grouped LRN/dropout == the op on each channel range (so towers never mix)."""
    cpu = ccn.backend("cpu")
    x = np.abs(np.random.default_rng(0).standard_normal((2, 3, 3, 8))) * 3
    lo, hi = np.ascontiguousarray(x[..., :4]), np.ascontiguousarray(x[..., 4:])
    net = Net([LRN("n", "data", groups=2)], input_shape=(3, 3, 8), dtype="float64")
    want = np.concatenate([cpu.lrn(lo), cpu.lrn(hi)], axis=-1)
    np.testing.assert_array_equal(net.forward(x), want)
    assert not np.allclose(want, cpu.lrn(x))  # the windows really would cross
    d = Net([Dropout("d", "data", groups=2, subsequence=4)], input_shape=(3, 3, 8), dtype="float64")
    assert d.dropout_subsequences == 6
    y = d.forward(x, train=True)
    off = lambda s: d.step * d.dropout_subsequences + s  # noqa: E731
    want = np.concatenate([cpu.dropout(lo, seed=d.dropout_seed, offset=off(4)),
                           cpu.dropout(hi, seed=d.dropout_seed, offset=off(5))], axis=-1)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(d.forward(x), x * 0.5)  # test mode: the paper's x 0.5


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_grouped_lrn_layer_is_bit_identical_to_the_split_form(device):
    """The LRN layer with groups=2 makes one lrn / lrn_backward call over both groups (no
    channel split or concat); forward and backward equal the ops on each channel range,
    split and concatenated, bit for bit, in float32 on the reference and the kernels."""
    rng = np.random.default_rng(1)
    x = (np.abs(rng.standard_normal((2, 5, 5, 96))) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    net = Net([LRN("n", "data", groups=2)], input_shape=(5, 5, 96), devices=(device,))
    dev, layer = net.devices[0], net.layers[0]
    y = dev.to_host(layer.forward(dev, [dev.asarray(x)], {}, False, None))
    [dx], _ = layer.backward(dev, [dev.asarray(x)], dev.asarray(y), dev.asarray(dy), {}, None, [True])
    ops = dev.ops
    halves = [np.ascontiguousarray(a[..., :48]) for a in (x, y, dy)], [np.ascontiguousarray(a[..., 48:])
                                                                      for a in (x, y, dy)]
    want_y = np.concatenate([ops.lrn(h[0]) for h in halves], axis=-1)
    want_dx = np.concatenate([ops.lrn_backward(*h) for h in halves], axis=-1)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dev.to_host(dx), want_dx)
    assert not np.allclose(y, ops.lrn(x))  # the windows really would cross


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_gradients_added_in_place_are_bit_identical_to_the_separate_add(device, monkeypatch):
    """Two towers: each tower's pool2, pool5 and drop6 output feeds its own Concat and a copy
    to the other device. Where the Concat's backward runs second its split adds into the
    gradient already there (split_channels' beta = 1) instead of a new array plus the Net's
    add; the parameter gradients are those of the separate add, bit for bit."""
    x, labels = batch(dtype=np.float32)
    runs = []
    for in_place in (True, False):
        monkeypatch.setattr(Concat, "accumulates_dx", in_place)
        net = tiny_net(towers=2, devices=(device, device), dtype="float32")
        adds = []
        orig = net._add_gradients
        net._add_gradients = lambda a, b, adds=adds, orig=orig: adds.append(1) or orig(a, b)
        stats = net.gradients(x, labels)
        runs.append((stats, {p.name: p.device.to_host(p.grad) for p in net.parameters()}, len(adds)))
    (s_new, g_new, adds_new), (s_old, g_old, adds_old) = runs
    assert (adds_new, adds_old) == (3, 6)
    assert s_new == s_old
    assert g_new.keys() == g_old.keys()
    for name in g_new:
        np.testing.assert_array_equal(g_new[name], g_old[name], err_msg=name)


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_fc_dx_gemm_accumulates_in_place_bit_identically(device, monkeypatch):
    """A hidden layer read by two fc layers: the second fc backward's dx GEMM runs with
    beta = 1 into the gradient the first left (no separate add); gradients bit-identical."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 12)).astype(np.float32)
    labels = rng.integers(0, 3, 4)

    def build():
        return Net([Linear("fc0", "data", units=16), ReLU("relu0", "fc0"),
                    Linear("fa", "relu0", units=8), Linear("fb", "relu0", units=8),
                    Concat("cat", ["fa", "fb"]), Linear("out", "cat", units=3),
                    SoftmaxCrossEntropy("loss", "out")], input_shape=(12,), devices=(device,), seed=3)

    runs = []
    for in_place in (True, False):
        monkeypatch.setattr(Linear, "accumulates_dx", in_place)
        net = build()
        adds = []
        orig = net._add_gradients
        net._add_gradients = lambda a, b, adds=adds, orig=orig: adds.append(1) or orig(a, b)
        net.gradients(x, labels)
        runs.append(({p.name: p.device.to_host(p.grad) for p in net.parameters()}, len(adds)))
    (g_new, adds_new), (g_old, adds_old) = runs
    assert (adds_new, adds_old) == (0, 1)
    for name in g_new:
        np.testing.assert_array_equal(g_new[name], g_old[name], err_msg=name)


def test_a_dropout_spec_written_with_stream_loads_as_its_subsequence():
    """Checkpoints written before the key was renamed name the subsequence "stream"."""
    from cuda_convnet.net.layers import layer_from_spec

    new = Dropout("d", "data", groups=2, subsequence=4)
    spec = new.spec()
    assert spec["subsequence"] == 4 and "stream" not in spec
    old = dict(spec)
    old["stream"] = old.pop("subsequence")
    layer = layer_from_spec(old)
    assert layer.subsequence == 4 and layer.spec() == spec


def test_dropout_masks_follow_the_step_counter():
    net = tiny_net(towers=2)
    x, _ = batch()
    a = net.forward(x, train=True)
    np.testing.assert_array_equal(a, net.forward(x, train=True))  # same step, same masks
    net.step += 1
    assert not np.array_equal(a, net.forward(x, train=True))
    net.step -= 1
    np.testing.assert_array_equal(a, net.forward(x, train=True))
    np.testing.assert_array_equal(net.forward(x), net.forward(x))  # test mode is deterministic


def test_predict_is_softmax_of_forward():
    net = tiny_net(towers=2)
    x, _ = batch()
    logits = net.forward(x)
    p = net.predict(x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_spec_round_trip_rebuilds_the_same_net():
    net = tiny_net(towers=2, seed=7)
    again = Net.from_spec(net.spec())
    assert again.spec() == net.spec()
    for a, b in zip(net.parameters(), again.parameters()):
        assert a.name == b.name
        np.testing.assert_array_equal(a.data, b.data)
    assert Net.from_spec(net.spec(), devices="cpu").device_names == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="logical devices"):
        Net.from_spec(net.spec(), devices=["cpu"] * 3)
    with pytest.raises(ValueError, match="spec"):
        Net.from_spec({"layers": []})


def test_summary_lists_layers_devices_shapes_parameters():
    s = tiny_net(towers=2).summary()
    assert "conv1/0" in s and "cpu#1" in s and "norm2/1->0" in s and "cpu#1 -> cpu#0" in s
    assert "copy" in s and "total parameters: 3,301" in s


@pytest.mark.parametrize("make, match", [
    (lambda: Net([ReLU("r", "nope")], input_shape=(2, 2, 1)), "not defined before"),
    (lambda: Net([ReLU("r", "data"), ReLU("r", "r")], input_shape=(2, 2, 1)), "duplicate"),
    (lambda: Net([ReLU("data", "data")], input_shape=(2, 2, 1)), "input"),
    (lambda: Net([ReLU("r", "data", device=1)], input_shape=(2, 2, 1)), "device 1"),
    (lambda: Net([Linear("f", "data", units=2)], input_shape=(2, 2, 1)), "Flatten"),
    (lambda: Net([Flatten("f", "data"), SoftmaxCrossEntropy("l", "f"), ReLU("r", "f")], input_shape=(2, 2, 1)),
     "last layer"),
    (lambda: Net([Conv2d("c", "data", filters=3, size=3, groups=2)], input_shape=(4, 4, 2)), "groups"),
    (lambda: Net([Conv2d("c", "data", filters=2, size=5)], input_shape=(4, 4, 2)), "larger than"),
    (lambda: Net([ReLU("r", "data")], input_shape=(2, 2, 1), devices=("gpu",)), "unknown device"),
    (lambda: Net([ReLU("r", "data")], input_shape=(2, 2, 1), devices=("emu",), dtype="float64"), "float32"),
    (lambda: Net([ReLU("r.x", "data")], input_shape=(2, 2, 1)), "layer name"),
])
def test_bad_graphs_are_refused_with_a_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_are_refused():
    net = tiny_net(towers=2)
    x, y = batch()
    with pytest.raises(ValueError, match=r"input of shape \(N, 16, 16, 3\)") as e:
        net.forward(x[:, :8])
    assert "NCHW" not in str(e.value)
    # PyTorch's layout: named, with the transpose that gives the net's NHWC
    with pytest.raises(ValueError, match=r"got \(6, 3, 16, 16\): that is NCHW; .*x.transpose\(0, 2, 3, 1\)"):
        net.predict(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with pytest.raises(TypeError, match="float64"):
        net.forward(x.astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        net.gradients(x, y[:3])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        net.gradients(x, y + 10)
    with pytest.raises(ValueError, match="no SoftmaxCrossEntropy"):
        Net([ReLU("r", "data")], input_shape=(2, 2, 1)).gradients(np.zeros((1, 2, 2, 1), np.float32), [0])
