"""Training (§5): SGD with momentum and weight decay, the lr rule, loss going down on real
data, and the NaN/Inf guard."""
from __future__ import annotations

import numpy as np
import pytest
from net_support import batch, one_blas_thread, tiny_net  # noqa: F401

from cuda_convnet import SGD, PlateauSchedule, models
from cuda_convnet.net import NonFiniteError, load_checkpoint
from cuda_convnet.training import fit, validation_pass

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def digits():
    from cuda_convnet.data.digits import load_digits

    return load_digits(standardize=True, seed=0)


def test_train_step_reduces_the_loss_on_digits(digits):
    net = models.digits_net(towers=2, weight_std="he", bias=0.1, seed=0)
    opt = SGD(net.parameters(), lr=0.1)
    x, y = digits.train_images[:64], digits.train_labels[:64]
    before = validation_pass(net, x, y)["loss"]
    for _ in range(20):
        stats = net.train_step(x, y, opt)
        assert set(stats) == {"loss", "top1_err", "top5_err"}
        assert 0 <= stats["top5_err"] <= stats["top1_err"] <= 1
    assert net.step == 20
    after = validation_pass(net, x, y)["loss"]
    assert after < 0.7 * before, (before, after)  # 2.36 -> 1.37 (dropout slows the start)


class CountingOps:
    """A backend wrapper that counts sgd_update calls and the tensors of each."""

    def __init__(self, ops, log):
        self._ops, self._log = ops, log

    def __getattr__(self, name):
        op = getattr(self._ops, name)
        if name != "sgd_update":
            return op

        def counted(params, grads, velocities, **kw):
            self._log.append(len(params))
            return op(params, grads, velocities, **kw)

        return counted


def test_sgd_is_one_fused_update_per_device_per_step():
    net = tiny_net(towers=2)
    log = []
    for d in net.devices:
        d.ops = CountingOps(d.ops, log)
    opt = SGD(net.parameters())
    x, y = batch()
    net.train_step(x, y, opt)
    per_device = [sum(p.device is d for p in net.parameters()) for d in net.devices]
    assert log == per_device  # two calls, one with every tensor of each device
    net.train_step(x, y, opt)
    assert log == per_device * 2


def test_sgd_is_the_papers_rule():
    """v = 0.9 v - 0.0005 lr w - lr g; w = w + v, on every tensor, lr inside v."""
    net = tiny_net(towers=2)
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = batch()
    w0 = net.state_dict()
    net.train_step(x, y, opt)
    g0 = {p.name: p.grad.copy() for p in net.parameters()}
    w1 = net.state_dict()
    net.train_step(x, y, opt)
    g1 = {p.name: p.grad.copy() for p in net.parameters()}
    for p in net.parameters():
        v1 = -0.0005 * 0.1 * w0[p.name] - 0.1 * g0[p.name]
        np.testing.assert_allclose(w1[p.name], w0[p.name] + v1, rtol=1e-12, atol=1e-15)
        v2 = 0.9 * v1 - 0.0005 * 0.1 * w1[p.name] - 0.1 * g1[p.name]
        np.testing.assert_allclose(p.data, w1[p.name] + v2, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.velocities[p.name], v2, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="lr"):
        SGD(net.parameters(), lr=-1)


def test_sgd_refuses_a_step_without_gradients():
    net = tiny_net(towers=2)
    with pytest.raises(ValueError, match="no gradient"):
        SGD(net.parameters()).step()


def test_plateau_schedule_divides_by_10_at_most_n_times():
    net = tiny_net(towers=1)
    opt = SGD(net.parameters(), lr=0.01)
    s = PlateauSchedule(opt, patience=2, max_drops=2)
    drops = [s.step(e) for e in [0.5, 0.4, 0.45, 0.41, 0.3, 0.3, 0.31, 0.2, 0.25, 0.25, 0.25, 0.25]]
    # 0.45, 0.41: two epochs without improvement -> drop; 0.3, 0.31 -> drop; then none left.
    assert drops == [False, False, False, True, False, False, True, False, False, False, False, False]
    assert opt.lr == pytest.approx(1e-4) and s.drops == 2 and s.finished
    state = s.state_dict()
    s2 = PlateauSchedule(SGD(net.parameters(), lr=1e-4))
    s2.load_state_dict(state)
    assert s2.state_dict() == state
    with pytest.raises(ValueError):
        PlateauSchedule(opt, factor=2.0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's "invalid value" on the NaN
def test_nan_loss_stops_training_naming_the_step_and_layer():
    net = tiny_net(towers=2)
    opt = SGD(net.parameters())
    x, y = batch()
    net.train_step(x, y, opt)
    net.params["conv3/1"]["weight"].data[0, 0, 0, 0] = np.nan
    before = net.state_dict()
    with pytest.raises(NonFiniteError, match=r"step 1: the loss is nan; first non-finite output: layer 'conv3/1'") \
            as e:
        net.train_step(x, y, opt)
    assert e.value.step == 1 and e.value.layer == "conv3/1" and net.step == 1
    after = net.state_dict()
    for k in before:  # nothing was updated
        np.testing.assert_array_equal(after[k], before[k])
    with pytest.raises(NonFiniteError, match="input batch"):
        bad = x.copy()
        bad[0, 0, 0, 0] = np.inf
        other = tiny_net(towers=1)
        other.train_step(bad, y, SGD(other.parameters()))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_in_fit_keeps_the_last_good_checkpoint(tmp_path, digits):
    """A run that diverges mid-way: the exception names the step, the checkpoint on disk is
    the one of the last completed epoch, intact."""
    net = models.digits_net(towers=2, weight_std="he", bias=0.1)
    opt = SGD(net.parameters(), lr=0.02)
    train = (digits.train_images[:64], digits.train_labels[:64])
    val = (digits.val_images[:32], digits.val_labels[:32])
    ckpt = tmp_path / "ck.npz"
    fit(net, opt, train, val, epochs=1, batch_size=32, checkpoint=ckpt, progress=False, log=None)
    good = ckpt.read_bytes()
    poisoned = (train[0] * np.float32(1e38) * np.float32(1e38), train[1])  # inf: the loss goes NaN
    with pytest.raises(NonFiniteError, match="step 2") as e:
        fit(net, opt, poisoned, val, epochs=3, batch_size=32, checkpoint=ckpt, resume=ckpt, progress=False,
            log=None)
    assert f"{ckpt} on disk holds the checkpoint written after epoch 1" in "".join(e.value.__notes__)
    assert ckpt.read_bytes() == good
    assert load_checkpoint(ckpt).extra["epoch"] == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverged_validation_stops_training_and_keeps_the_checkpoint(tmp_path, digits):
    """A huge learning rate: the epoch's one training step has a finite loss, but the weights it
    leaves give NaN probabilities. That epoch must not reach the schedule (a NaN never becomes
    its best), must not overwrite the good checkpoint on disk, and the message says what is
    there."""
    train = (digits.train_images[:64], digits.train_labels[:64])
    val = (digits.val_images[:32], digits.val_labels[:32])
    ckpt = tmp_path / "ck.npz"
    good_net = models.digits_net(towers=1, weight_std="he", bias=0.1)
    fit(good_net, SGD(good_net.parameters(), lr=0.02), train, val, epochs=1, batch_size=64, checkpoint=ckpt,
        progress=False, log=None)
    good = ckpt.read_bytes()

    net = models.digits_net(towers=1, weight_std="he", bias=0.1, seed=3)
    opt = SGD(net.parameters(), lr=1e35)
    sched = PlateauSchedule(opt)
    with pytest.raises(NonFiniteError, match="training stopped after step 1") as e:
        fit(net, opt, train, val, epochs=3, batch_size=64, schedule=sched, checkpoint=ckpt, progress=False,
            log=None)
    notes = "".join(e.value.__notes__)
    assert f"nothing of this epoch was saved: {ckpt} on disk holds the checkpoint written after epoch 1" in notes
    assert ckpt.read_bytes() == good
    assert sched.best is None and sched.evaluations == 0 and opt.lr == 1e35
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]

    # With no checkpoint file at all, the message says so.
    net = models.digits_net(towers=1, weight_std="he", bias=0.1, seed=3)
    with pytest.raises(NonFiniteError) as e:
        fit(net, SGD(net.parameters(), lr=1e35), train, val, epochs=1, batch_size=64,
            checkpoint=tmp_path / "new.npz", progress=False, log=None)
    assert f"there is no checkpoint at {tmp_path / 'new.npz'}" in "".join(e.value.__notes__)
    assert not (tmp_path / "new.npz").exists()


def test_validation_pass_counts_ties_and_nan_as_errors():
    """A uniform output (all classes tied) is 100 % wrong; NaN outputs are errors with a NaN loss."""
    class Fixed:
        dtype = np.float32

        def __init__(self, value):
            self.value = value

        def predict(self, x):
            return np.full((len(x), 10), self.value, np.float32)

    x, y = np.zeros((7, 3), np.float32), np.arange(14)[::2] // 2  # strided labels, as a column of a table
    assert validation_pass(Fixed(0.1), x, y, batch_size=3) == {
        "top1_err": 1.0, "top5_err": 1.0, "loss": pytest.approx(np.log(10)), "non_finite": 0}
    got = validation_pass(Fixed(np.nan), x, y, batch_size=3)
    assert (got["top1_err"], got["top5_err"], got["non_finite"]) == (1.0, 1.0, 7) and np.isnan(got["loss"])


def test_schedule_refuses_a_non_finite_error():
    net = tiny_net(towers=1)
    sched = PlateauSchedule(SGD(net.parameters()), patience=1)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="validation error is"):
            sched.step(bad)
    assert sched.best is None and sched.evaluations == 0
    sched.step(0.5)
    assert sched.best == 0.5


def test_fit_history_and_schedule(tmp_path, digits):
    net = models.digits_net(towers=2, weight_std="he", bias=0.1)
    opt = SGD(net.parameters(), lr=0.02)
    sched = PlateauSchedule(opt, patience=1, max_drops=1)
    lines = []
    hist = fit(net, opt, (digits.train_images[:64], digits.train_labels[:64]),
               (digits.val_images[:32], digits.val_labels[:32]), epochs=2, batch_size=32, schedule=sched,
               progress=False, log=lines.append)
    assert [h["epoch"] for h in hist] == [1, 2] and hist[-1]["step"] == 4
    assert all(0 <= h["val_top1_err"] <= 1 and h["train_loss"] > 0 for h in hist)
    assert len(lines) >= 2 and "val top-1 err" in lines[0]
    from cuda_convnet.viz import plot_training_curves

    png = plot_training_curves(hist, tmp_path / "c.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _train_digits(devices, digits, steps):
    net = models.digits_net(towers=2, devices=devices, weight_std="he", bias=0.1, seed=0)
    opt = SGD(net.parameters(), lr=0.1)
    x, y = digits.train_images[:32], digits.train_labels[:32]
    return net, [net.train_step(x, y, opt)["loss"] for _ in range(steps)]


@pytest.mark.emu
def test_emu_training_follows_the_reference(digits):
    """A few steps on digits through the emulated kernels track the reference's steps."""
    # Float32 rounding differs between kernels and reference and grows a little each step
    # (a pooling or ReLU decision near a tie can flip): loose tolerances, few steps.
    emu, emu_losses = _train_digits(("emu", "emu"), digits, 4)
    cpu, cpu_losses = _train_digits(("cpu", "cpu"), digits, 4)
    np.testing.assert_allclose(emu_losses, cpu_losses, rtol=5e-3)
    for pe, pc in zip(emu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(pe.data, pc.data, rtol=1e-2, atol=1e-3, err_msg=pe.name)


@pytest.mark.cuda
def test_cuda_training_follows_the_reference(digits):
    _, gpu_losses = _train_digits(("cuda:0", "cuda:0"), digits, 4)
    _, cpu_losses = _train_digits(("cpu", "cpu"), digits, 4)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=5e-3)


def test_on_disk_says_what_the_checkpoint_file_holds(tmp_path, digits):
    from cuda_convnet.training import on_disk

    ckpt = tmp_path / "ck.npz"
    assert on_disk(None) == "no checkpoint file is written by this run"
    assert on_disk(ckpt) == f"there is no checkpoint at {ckpt}"
    net = models.digits_net(towers=1, weight_std="he", bias=0.1)
    fit(net, SGD(net.parameters(), lr=0.02), (digits.train_images[:64], digits.train_labels[:64]),
        (digits.val_images[:32], digits.val_labels[:32]), epochs=2, batch_size=64, checkpoint=ckpt, progress=False,
        log=None)
    assert on_disk(ckpt) == f"{ckpt} on disk holds the checkpoint written after epoch 2"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert on_disk(ckpt).startswith(f"the file at {ckpt} is not a readable checkpoint ({ckpt}: not a valid")
