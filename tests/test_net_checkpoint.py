"""Checkpoints: round trip, bit-identical resume, atomic writes, bad files (ARCHITECTURE.md §8.4-5)."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from net_support import batch, one_blas_thread, tiny_net  # noqa: F401

from cuda_convnet import SGD, PlateauSchedule, models
from cuda_convnet.net import CheckpointError, load_checkpoint, save_checkpoint
from cuda_convnet.net import checkpoint as ckmod
from cuda_convnet.training import fit

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def batches(n_steps, dtype=np.float64, seed=0):
    return [batch(n=6, seed=seed + i, dtype=dtype) for i in range(n_steps)]


def test_round_trip(tmp_path):
    net = tiny_net(towers=2, seed=4)
    opt = SGD(net.parameters(), lr=0.03, momentum=0.8, weight_decay=1e-3)
    sched = PlateauSchedule(opt, patience=2, max_drops=3)
    for x, y in batches(2):
        net.train_step(x, y, opt)
    sched.step(0.5)
    sched.step(0.6)
    path = tmp_path / "run" / "ck.npz"  # the folder is created
    save_checkpoint(path, net, optimizer=opt, schedule=sched, extra={"epoch": 7, "note": "hi"})
    assert os.listdir(path.parent) == ["ck.npz"]  # no temporary file left behind
    ck = load_checkpoint(path)
    assert ck.net.spec() == net.spec() and ck.net.step == net.step == 2 == ck.step
    assert ck.extra == {"epoch": 7, "note": "hi"}
    for a, b in zip(net.parameters(), ck.net.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(opt.velocities[a.name], ck.optimizer.velocities[b.name])
    assert ck.optimizer.hyperparameters() == opt.hyperparameters()
    assert ck.schedule.state_dict() == sched.state_dict()
    assert ck.schedule.optimizer is ck.optimizer
    # The net alone, on other devices on request.
    again = load_checkpoint(path, devices="cpu").net
    np.testing.assert_array_equal(again.parameters()[0].data, net.parameters()[0].data)
    # The manifest is plain JSON inside the .npz.
    with np.load(path) as z:
        manifest = json.loads(z["manifest"].tobytes())
    assert manifest["format"] == "cuda_convnet.checkpoint" and manifest["net"]["layers"][0]["type"] == "conv2d"


def test_checkpoint_with_the_old_layer_type_names_loads(tmp_path):
    """A checkpoint written when the layer types were "conv", "fc", "maxpool" and "softmax"
    (before they took their op's name) loads into the same net, bit for bit."""
    from cuda_convnet.net.layers import OLD_TYPE_NAMES

    net = tiny_net(towers=2, seed=3)
    opt = SGD(net.parameters(), lr=0.03, momentum=0.8)
    for x, y in batches(1):
        net.train_step(x, y, opt)
    save_checkpoint(tmp_path / "new.npz", net, optimizer=opt)
    with np.load(tmp_path / "new.npz") as z:
        members = {k: z[k] for k in z.files}
    manifest = json.loads(members["manifest"].tobytes())
    old_of = {new: old for old, new in OLD_TYPE_NAMES.items()}
    for layer in manifest["net"]["layers"]:
        layer["type"] = old_of.get(layer["type"], layer["type"])
    assert {l["type"] for l in manifest["net"]["layers"]} >= {"conv", "fc", "maxpool", "softmax"}
    members["manifest"] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **members)
    ck = load_checkpoint(tmp_path / "old.npz")
    assert ck.net.spec() == net.spec() and ck.step == net.step == 1
    assert {l.type for l in ck.net.layers} >= {"conv2d", "linear", "max_pool", "softmax_cross_entropy"}
    for a, b in zip(net.parameters(), ck.net.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(opt.velocities[a.name], ck.optimizer.velocities[b.name])
    x, _ = batch(n=6, seed=9)
    np.testing.assert_array_equal(ck.net.predict(x), net.predict(x))


def test_named_arrays_round_trip(tmp_path):
    """`arrays=` (e.g. the training mean image, for classifying files from the checkpoint alone)."""
    net = tiny_net(towers=1, seed=1)
    mean = np.random.default_rng(0).uniform(0, 255, (20, 20, 3)).astype(np.float32)
    save_checkpoint(tmp_path / "ck.npz", net, arrays={"mean": mean, "names": np.array(["a", "b"])}, extra={"crop": 16})
    ck = load_checkpoint(tmp_path / "ck.npz")
    np.testing.assert_array_equal(ck.arrays["mean"], mean)
    assert ck.arrays["mean"].dtype == np.float32 and list(ck.arrays["names"]) == ["a", "b"]
    assert ck.extra == {"crop": 16} and ck.optimizer is None
    assert load_checkpoint(tmp_path / "ck.npz").net.num_parameters() == net.num_parameters()
    with pytest.raises(TypeError, match="dtype object"):  # would need pickle to read back
        save_checkpoint(tmp_path / "bad.npz", net, arrays={"x": np.array([{}, 1], dtype=object)})
    assert not (tmp_path / "bad.npz").exists()
    save_checkpoint(tmp_path / "plain.npz", net)
    assert load_checkpoint(tmp_path / "plain.npz").arrays == {}


def run_steps(net, opt, data):
    for x, y in data:
        net.train_step(x, y, opt)


def assert_bit_identical(a_net, a_opt, b_net, b_opt):
    assert a_net.step == b_net.step
    for pa, pb in zip(a_net.parameters(), b_net.parameters()):
        np.testing.assert_array_equal(a_net.devices[0].to_host(pa.data), b_net.devices[0].to_host(pb.data),
                                      err_msg=pa.name)
        np.testing.assert_array_equal(a_net.devices[0].to_host(a_opt.velocities[pa.name]),
                                      b_net.devices[0].to_host(b_opt.velocities[pb.name]), err_msg=pa.name)


def check_resume(tmp_path, devices, dtype):
    data = batches(6, dtype=dtype)
    # Uninterrupted: 6 steps (dropout draws new masks every step).
    a = tiny_net(towers=2, devices=devices, dtype=dtype)
    a_opt = SGD(a.parameters(), lr=0.05)
    run_steps(a, a_opt, data)
    # Interrupted after 3, resumed in fresh objects.
    b = tiny_net(towers=2, devices=devices, dtype=dtype)
    b_opt = SGD(b.parameters(), lr=0.05)
    run_steps(b, b_opt, data[:3])
    save_checkpoint(tmp_path / "ck.npz", b, optimizer=b_opt)
    del b, b_opt
    ck = load_checkpoint(tmp_path / "ck.npz")
    run_steps(ck.net, ck.optimizer, data[3:])
    assert_bit_identical(a, a_opt, ck.net, ck.optimizer)


def test_resume_is_bit_identical_cpu(tmp_path):
    check_resume(tmp_path, ("cpu", "cpu"), "float64")
    check_resume(tmp_path, ("cpu", "cpu"), "float32")


@pytest.mark.emu
def test_resume_is_bit_identical_emu(tmp_path):
    check_resume(tmp_path, ("emu", "emu"), "float32")


@pytest.mark.cuda
def test_resume_is_bit_identical_cuda(tmp_path):
    check_resume(tmp_path, ("cuda:0", "cuda:0"), "float32")


def test_fit_resume_is_bit_identical(tmp_path):
    """The training loop: 2 epochs straight == 1 epoch, checkpoint, resume for the 2nd
    (batch order, augmentation offsets, dropout masks and the lr schedule all restored)."""
    from cuda_convnet.data.digits import DigitsAugment, load_digits

    d = load_digits(standardize=True)
    train, val = (d.train_images[:96], d.train_labels[:96]), (d.val_images[:40], d.val_labels[:40])

    def run(epochs, ckpt, resume=None):
        net = models.digits_net(towers=2, weight_std="he", bias=0.1, seed=1)
        opt = SGD(net.parameters(), lr=0.05)
        sched = PlateauSchedule(opt, patience=1, max_drops=2)
        hist = fit(net, opt, train, val, epochs=epochs, batch_size=32, schedule=sched, seed=3,
                   augment=DigitsAugment(seed=3, pad=2), checkpoint=ckpt, resume=resume, progress=False, log=None)
        return net, opt, sched, hist

    a_net, a_opt, a_sched, a_hist = run(2, tmp_path / "a.npz")
    run(1, tmp_path / "b.npz")
    b_net, b_opt, b_sched, b_hist = run(2, tmp_path / "b.npz", resume=tmp_path / "b.npz")
    assert_bit_identical(a_net, a_opt, b_net, b_opt)
    assert a_sched.state_dict() == b_sched.state_dict()
    timing = ("seconds", "images_per_second")
    strip = lambda h: [{k: v for k, v in e.items() if k not in timing} for e in h]  # noqa: E731
    assert strip(a_hist) == strip(b_hist)


def test_save_is_atomic(tmp_path, monkeypatch):
    net = tiny_net(towers=1)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net)
    good = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckmod.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, net)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    net = tiny_net(towers=2)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net, optimizer=SGD(net.parameters()))
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"{bad}: not a valid cuda_convnet checkpoint"):
            load_checkpoint(bad)


@pytest.mark.parametrize("make", ["foreign_npz", "npy", "text", "bad_manifest", "other_format", "missing_param",
                                  "wrong_shape"])
def test_foreign_or_damaged_files_are_refused(tmp_path, make):
    path = tmp_path / "f.npz"
    net = tiny_net(towers=1)
    if make == "foreign_npz":
        np.savez(path, weights=np.zeros(3))
    elif make == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif make == "text":
        path.write_text("hello, world\n")
    else:
        save_checkpoint(path, net)
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        manifest = json.loads(arrays["manifest"].tobytes())
        if make == "bad_manifest":
            arrays["manifest"] = np.frombuffer(b"{not json", dtype=np.uint8)
        elif make == "other_format":
            manifest["format"] = "someone.else"
        elif make == "missing_param":
            del arrays["param/conv1.weight"]
        elif make == "wrong_shape":
            arrays["param/fc6.bias"] = np.zeros(3)
        if make != "bad_manifest":
            arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=f"{path}: not a valid cuda_convnet checkpoint"):
        load_checkpoint(path)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")
    assert zipfile  # (the .npz is a zip; truncation shows as BadZipFile underneath)
