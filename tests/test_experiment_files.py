"""What the experiment and figure commands leave on disk when something goes wrong: a write
that fails part way leaves the previous file whole (records, figures), and a run that
diverges is recorded as the worst error, not lost and not counted as good."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from experiment_support import tiny_digits

from cuda_convnet.experiments import ablate
from cuda_convnet.experiments.plotting import pyplot, save_figure, write_record


def test_a_failed_record_write_leaves_the_previous_record(tmp_path):
    """The record is serialised before the file is touched, then moved into place: a value
    json cannot write (here an object) fails the call and the earlier record stays."""
    from pathlib import Path

    first = Path(write_record(str(tmp_path), "ablate", {"kind": "ablate", "val": 0.25},
                              command=["experiment", "ablate"]))
    before = first.read_bytes()
    with pytest.raises(TypeError):
        write_record(str(tmp_path), "ablate", {"kind": "ablate", "val": object()}, command=["x"])
    assert first.read_bytes() == before
    assert json.loads(before)["val"] == 0.25
    assert sorted(os.listdir(tmp_path)) == ["ablate.json"]  # no temporary left behind


def test_a_failed_figure_write_leaves_the_previous_figure(tmp_path, monkeypatch):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "curves.png"
    save_figure(fig, path)
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")

    def interrupted(target, **kwargs):  # half a PNG, then the process is interrupted
        data = b"\x89PNG\r\n\x1a\n half"
        if hasattr(target, "write"):
            target.write(data)
        else:
            with open(target, "wb") as f:
                f.write(data)
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, path)
    assert path.read_bytes() == before
    plt.close(fig)


def test_a_diverging_ablation_run_is_recorded_at_the_worst_error(tmp_path):
    """lr = 1e30 makes the loss NaN in the first step: fit raises NonFiniteError. The run is
    kept with every error at 1.0 and diverged = True (the sweep goes on), the mean over
    seeds takes it at 1.0, and its checkpoint file is never written with NaN weights."""
    ds = tiny_digits()
    ckpt = tmp_path / "checkpoint.npz"
    with np.errstate(all="ignore"):
        r = ablate.train_variant(ds, "full", 0, epochs=1, batch=32, lr=1e30, width=1, checkpoint=str(ckpt))
    assert r["diverged"] is True
    assert all(r[m] == 1.0 for m in ablate.METRICS)
    assert not ckpt.exists()
    good = {"variant": "full", "seed": 1, "train_top1_err": 0.1, "train_top5_err": 0.0, "val_top1_err": 0.2,
            "val_top5_err": 0.05, "parameters": r["parameters"], "diverged": False, "seconds": 1.0}
    row = ablate.summarise([r, good], ["full"])[0]
    assert row["val_top1_err"]["mean"] == pytest.approx(0.6)
    assert row["val_top5_err"]["mean"] == pytest.approx(0.525)
