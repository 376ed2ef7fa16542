"""Files rewritten during a run (checkpoint, curves PNG, metrics, experiment records) are
replaced whole or not at all, with the mode a plain open() gives: an interruption while
one is written keeps the previous version, and nothing is left private (0o600) to the
user who trained."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from net_support import tiny_net

import cuda_convnet as ccn
from cuda_convnet.atomic import open_atomic
from cuda_convnet.experiments import plotting
from cuda_convnet.viz import plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def _history(epochs):
    rng = np.random.default_rng(epochs)
    return [{"epoch": e, "train_loss": float(rng.uniform(0.5, 2)), "train_top1_err": float(rng.uniform(0.1, 0.9)),
             "val_top1_err": float(rng.uniform(0.1, 0.9)), "lr_dropped": e == 2} for e in range(1, epochs + 1)]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith(".tmp-"))


def test_checkpoint_has_the_umask_mode_not_private(tmp_path, umask_027):
    net = tiny_net(seed=3)
    path = tmp_path / "ckpt.npz"
    ccn.save_checkpoint(path, net, optimizer=ccn.SGD(net.parameters()))
    assert _mode(path) == umask_027
    os.umask(0o022)
    ccn.save_checkpoint(path, net)  # a rewrite takes the umask of its own time
    assert _mode(path) == 0o644
    assert _leftovers(tmp_path) == []


def test_outputs_of_a_run_have_the_umask_mode(tmp_path, umask_027):
    png = plot_training_curves(_history(3), tmp_path / "curves.png")
    rec = plotting.write_record(str(tmp_path), "rec", {"x": 1}, command=["demo"])
    with open_atomic(tmp_path / "m.jsonl", "w") as f:
        f.write("{}\n")
    for p in (png, rec, tmp_path / "m.jsonl"):
        assert _mode(p) == umask_027, p
    assert Path(png).read_bytes()[:8] == PNG_MAGIC
    assert json.loads(Path(rec).read_text())["command"] == "python -m cuda_convnet demo"


def test_checkpoint_interrupted_while_written_keeps_the_previous_one(tmp_path, monkeypatch):
    net = tiny_net(seed=1)
    path = tmp_path / "ckpt.npz"
    ccn.save_checkpoint(path, net)
    before = path.read_bytes()
    w = net.state_dict()

    def savez_then_ctrl_c(f, **members):
        f.write(b"PK\x03\x04 half a zip")  # the bytes a real interruption leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_ctrl_c)
    net.step = 7
    with pytest.raises(KeyboardInterrupt):
        ccn.save_checkpoint(path, net)
    monkeypatch.undo()
    assert path.read_bytes() == before
    ck = ccn.load_checkpoint(path)
    assert ck.net.step == 0
    for name, a in ck.net.state_dict().items():
        np.testing.assert_array_equal(a, w[name])
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("writer", ["curves", "figure"])
def test_png_interrupted_while_written_keeps_the_previous_one(tmp_path, monkeypatch, writer):
    import matplotlib.figure

    path = tmp_path / "out.png"
    plt = plotting.pyplot()

    def write(epochs):
        if writer == "curves":
            plot_training_curves(_history(epochs), path)
        else:
            fig, ax = plt.subplots()
            ax.plot(np.arange(epochs), np.arange(epochs) ** 2)
            plotting.save_figure(fig, path)
            plt.close(fig)

    write(3)
    before = path.read_bytes()
    assert before[:8] == PNG_MAGIC and len(before) > 1000
    real = matplotlib.figure.Figure.savefig

    def savefig_then_ctrl_c(self, fname, **kw):
        part = PNG_MAGIC + b"\0\0\0\rIHDR"  # a truncated PNG, as Ctrl-C mid-write leaves
        if isinstance(fname, (str, os.PathLike)):  # a writer that opens the target itself
            with open(fname, "wb") as f:
                f.write(part)
        else:
            fname.write(part)
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write(4)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", real)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    write(5)  # and the next epoch's write replaces it
    after = path.read_bytes()
    assert after[:8] == PNG_MAGIC and after != before


def test_open_atomic_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="open_atomic: mode must be 'wb' or 'w', got 'a'"), \
            open_atomic(tmp_path / "x", "a"):
        pass
    assert os.listdir(tmp_path) == []


def test_a_file_name_of_the_longest_length_is_written(tmp_path):
    """The temporary name must fit NAME_MAX (255 bytes) whatever the target's name."""
    path = tmp_path / ("r" * 250 + ".json")
    with open_atomic(path, "w") as f:
        f.write('{"epoch": 3}\n')
    assert json.loads(path.read_text()) == {"epoch": 3}
    assert _leftovers(tmp_path) == []
