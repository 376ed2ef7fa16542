"""Two towers on two devices == one device's grouped form (ARCHITECTURE.md §6, §8.4): same weights
in, same outputs, loss and gradients out; on cpu now, on emu and cuda when they can."""
from __future__ import annotations

import numpy as np
import pytest
from net_support import batch, one_blas_thread, tiny_net  # noqa: F401

import cuda_convnet as ccn
from cuda_convnet import models

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _grads(net):
    return {p.name: np.array(p.device.to_host(p.grad)) for p in net.parameters()}


def assert_same_function(net2, net1, x, labels, *, rtol, atol, steps=2):
    """Outputs (test and training mode), loss, errors and gradients agree; then `steps`
    SGD steps keep them together (the optimizer updates each device once per step)."""
    net1.load_state_dict(models.map_weights(net2.state_dict(), net1))
    to_host = net2.devices[0].to_host  # every output here is on the first device
    np.testing.assert_allclose(to_host(net2.forward(x)), to_host(net1.forward(x)), rtol=rtol, atol=atol)
    np.testing.assert_allclose(to_host(net2.forward(x, train=True)), to_host(net1.forward(x, train=True)),
                               rtol=rtol, atol=atol)
    opt2, opt1 = ccn.SGD(net2.parameters(), lr=0.05), ccn.SGD(net1.parameters(), lr=0.05)
    for _ in range(steps):
        s2 = net2.gradients(x, labels)
        s1 = net1.gradients(x, labels)
        assert s2["loss"] == pytest.approx(s1["loss"], rel=rtol, abs=atol)
        assert (s2["top1_err"], s2["top5_err"]) == (s1["top1_err"], s1["top5_err"])
        mapped = models.map_weights(_grads(net2), net1)
        for name, g in _grads(net1).items():
            np.testing.assert_allclose(mapped[name], g, rtol=rtol, atol=atol, err_msg=name)
        for net, opt in ((net2, opt2), (net1, opt1)):
            opt.step()
            net.step += 1
    mapped = models.map_weights(net2.state_dict(), net1)
    for name, w in net1.state_dict().items():
        np.testing.assert_allclose(mapped[name], w, rtol=rtol, atol=atol, err_msg=name)


def test_two_towers_equal_grouped_form_cpu_float64():
    x, y = batch()
    net2 = tiny_net(towers=2, devices=("cpu", "cpu"), seed=3)
    net1 = tiny_net(towers=1, devices=("cpu",), seed=3)  # the seed also keys the dropout masks
    # Other weights in net1, so that map_weights must set every one of them.
    net1.load_state_dict({k: v + 1.0 for k, v in net1.state_dict().items()})
    assert net2.num_parameters() == net1.num_parameters()
    assert_same_function(net2, net1, x, y, rtol=1e-10, atol=1e-12)


def test_same_seed_gives_same_weights_in_both_forms():
    net2, net1 = tiny_net(towers=2, seed=5), tiny_net(towers=1, seed=5)
    mapped = models.map_weights(net2.state_dict(), net1)
    for name, w in net1.state_dict().items():
        np.testing.assert_array_equal(mapped[name], w, err_msg=name)


def test_map_weights_round_trip_and_velocities():
    net2, net1 = tiny_net(towers=2, seed=1), tiny_net(towers=1, seed=2)
    s2 = net2.state_dict()
    back = models.map_weights(models.map_weights(s2, net1), net2)
    assert set(back) == set(s2)
    for k in s2:
        np.testing.assert_array_equal(back[k], s2[k])
    # A tower's conv2 is its slice of the grouped filters (axis 0).
    g = models.map_weights(s2, net1)["conv2.weight"]
    np.testing.assert_array_equal(g[: g.shape[0] // 2], s2["conv2/0.weight"])
    # Velocities map the same way.
    opt2 = ccn.SGD(net2.parameters())
    vel = models.map_weights(opt2.state_dict()["velocities"], net1)
    assert set(vel) == {p.name for p in net1.parameters()}
    with pytest.raises(ValueError, match="maps to"):
        models.map_weights({"nothing.weight": np.zeros(1)}, net1)


def test_float32_two_towers_equal_grouped_form_cpu():
    x, y = batch(dtype=np.float32)
    net2 = tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32")
    net1 = tiny_net(towers=1, devices=("cpu",), dtype="float32")
    assert_same_function(net2, net1, x, y, rtol=2e-4, atol=1e-5)


@pytest.mark.emu
def test_two_towers_equal_grouped_form_emu():
    x, y = batch(dtype=np.float32)
    net2 = tiny_net(towers=2, devices=("emu", "emu"), dtype="float32")
    net1 = tiny_net(towers=1, devices=("emu",), dtype="float32")
    assert_same_function(net2, net1, x, y, rtol=2e-4, atol=1e-5)


@pytest.mark.emu
def test_emu_towers_equal_cpu_towers():
    """The kernels through the emulator against the reference, the whole net at once."""
    x, y = batch(dtype=np.float32)
    emu = tiny_net(towers=2, devices=("emu", "emu"), dtype="float32")
    cpu = tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32")
    assert_same_function(emu, cpu, x, y, rtol=2e-4, atol=1e-5)


@pytest.mark.cuda
def test_two_towers_equal_grouped_form_cuda():
    """Both towers on one GPU (two logical devices, two streams), against the grouped form
    on that GPU and against the reference; on two GPUs also across them (peer copies)."""
    import cupy

    x, y = batch(dtype=np.float32)
    gpus = cupy.cuda.runtime.getDeviceCount()
    pairs = [("cuda:0", "cuda:0")] + ([("cuda:0", "cuda:1")] if gpus > 1 else [])
    for devices in pairs:
        net2 = tiny_net(towers=2, devices=devices, dtype="float32")
        assert_same_function(net2, tiny_net(towers=1, devices=("cuda:0",), dtype="float32"), x, y, rtol=2e-4,
                             atol=1e-5)
        net2 = tiny_net(towers=2, devices=devices, dtype="float32")
        assert_same_function(net2, tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32"), x, y, rtol=2e-4,
                             atol=1e-5)


@pytest.mark.emu
def test_towers_of_fc_layers_on_emu():
    """Two towers of fc layers on emu with the copies between them, the channel concat
    and flatten, forward and backward, against the reference."""
    from cuda_convnet.net import Concat, Flatten, Linear, Net, ReLU

    def layers():
        return [Flatten("flat", "data"),
                Linear("fc1/0", "flat", units=8, weight_std=0.2, bias_init=0.1, device=0),
                Linear("fc1/1", "flat", units=8, weight_std=0.2, bias_init=0.1, device=1),
                ReLU("relu1/0", "fc1/0", device=0), ReLU("relu1/1", "fc1/1", device=1),
                Concat("merge/1", ["relu1/0", "relu1/1"], device=1),
                Linear("fc2", "merge/1", units=4, weight_std=0.2, device=1)]

    emu = Net(layers(), input_shape=(4, 4, 3), devices=("emu", "emu"))
    cpu = Net(layers(), input_shape=(4, 4, 3), devices=("cpu", "cpu"))
    x = np.random.default_rng(0).standard_normal((5, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(emu.forward(x), cpu.forward(x), rtol=1e-5, atol=1e-6)
    # Backward through the graph (no softmax kernel yet: feed the logits' gradient directly).
    dlogits = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    for net in (emu, cpu):
        acts = net._forward(x, train=True, keep=True)
        net._backward(acts, {net.output_name: net.devices[1].asarray(dlogits)})
    for pe, pc in zip(emu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(pe.grad, pc.grad, rtol=1e-4, atol=1e-5, err_msg=pe.name)
