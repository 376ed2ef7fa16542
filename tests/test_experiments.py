"""`experiment relu-vs-tanh`, `experiment ablate`, `experiment report`: their quick forms on the
bundled digits, and the pieces they are made of (models.ablated, the augmentation, the tables)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from experiment_support import tiny_digits
from subproc import run_cli

from cuda_convnet import models
from cuda_convnet.cli import main
from cuda_convnet.experiments import ablate, relu_tanh
from cuda_convnet.experiments.data import Augment, Standardise, load_dataset, pixel_pca


def _labels_and_legend(ax):
    assert ax.get_xlabel() and ax.get_ylabel()
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


@pytest.fixture(scope="module")
def ablate_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate")
    assert main(["experiment", "ablate", "--quick", "--out", str(out)]) == 0
    return out


def test_ablate_quick_writes_every_variant_with_its_seeds(ablate_run, capsys):
    rec = json.loads((ablate_run / "ablate.json").read_text())
    assert rec["kind"] == "ablate" and rec["command"].startswith("python -m cuda_convnet experiment ablate --quick")
    assert [r["variant"] for r in rec["rows"]] == list(models.ABLATIONS)
    for row in rec["rows"]:
        assert row["seeds"] == [0, 1, 2]
        runs = [r for r in rec["runs"] if r["variant"] == row["variant"]]
        assert sorted(r["seed"] for r in runs) == [0, 1, 2]
        for m in ablate.METRICS:
            vals = np.array([r[m] for r in runs])
            assert np.all((vals >= 0) & (vals <= 1))
            assert row[m]["mean"] == pytest.approx(vals.mean()) and row[m]["std"] == pytest.approx(vals.std())
            if m.endswith("top5_err"):  # top-5 can never be worse than top-1
                assert np.all(vals <= np.array([r[m.replace("top5", "top1")] for r in runs]) + 1e-12)
        if row["variant"] != "full":
            assert row["paper"]["section"].startswith("§")
    by = {r["variant"]: r for r in rec["rows"]}
    assert by["no-lrn"]["paper"]["delta_top1"] == 1.4 and by["no-lrn"]["paper"]["delta_top5"] == 1.2
    assert by["pool-2/2"]["paper"]["delta_top1"] == 0.4 and by["one-tower"]["paper"]["delta_top1"] == 1.7
    # The delta is the paired difference of the val errors, seed by seed.
    full = {r["seed"]: r["val_top1_err"] for r in rec["runs"] if r["variant"] == "full"}
    d = [100 * (r["val_top1_err"] - full[r["seed"]]) for r in rec["runs"] if r["variant"] == "no-conv4"]
    assert by["no-conv4"]["delta_top1"]["mean"] == pytest.approx(np.mean(d))
    md = (ablate_run / "ablate.md").read_text()
    assert md.count("\n| ") == len(models.ABLATIONS) + 1 and "+1.4 / +1.2 (§3.3)" in md
    assert "images; 1 epoch, batch 32, lr 0.02, seeds 0, 1, 2)" in md  # --quick: 1 epoch, 3 seeds
    assert (ablate_run / "ablate.png").stat().st_size > 5000
    assert (ablate_run / "full-seed0" / "checkpoint.npz").exists()


def test_ablate_plot_has_title_labels_legend(ablate_run):
    rec = json.loads((ablate_run / "ablate.json").read_text())
    fig = ablate.plot(rec)
    ax = fig.axes[0]
    assert "Ablations" in ax.get_title()
    assert _labels_and_legend(ax) == ["validation top-1", "training top-1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(models.ABLATIONS)
    heights = [p.get_height() for p in ax.patches]
    assert heights[:len(rec["rows"])] == pytest.approx([100 * r["val_top1_err"]["mean"] for r in rec["rows"]])


def test_ablated_configs_change_one_thing():
    base = models.digits_config(1, "he", 0.1)
    assert not any(c.lrn for c in models.ablated(base, "no-lrn").convs)
    pool = models.ablated(base, "pool-2/2")
    assert (pool.pool_size, pool.pool_stride) == (2, 2) and pool.convs == base.convs
    assert models.ablated(base, "no-dropout").dropout == 0.0
    one = models.ablated(base, "one-tower")
    assert one.towers == 1 and one.hidden == base.hidden
    assert [c.filters for c in one.convs] == [c.filters // 2 for c in base.convs[:-1]] + [base.convs[-1].filters]
    assert len(models.ablated(base, "no-conv4").convs) == 4
    assert models.ablated(base, "no-lighting") is base
    with pytest.raises(ValueError, match="unknown ablation"):
        models.ablated(base, "no-softmax")
    # no-dropout really trains without masks: a train-mode forward equals the test-mode one.
    net = models.tower_net(models.ablated(base, "no-dropout"), towers=2, seed=3)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x, train=True), net.forward(x, train=False))


def test_augment_lighting_is_a_per_image_shift_along_the_pixel_pca():
    ds = tiny_digits()
    vals, vecs = pixel_pca(ds)
    # Grey digits: one non-zero eigenvalue, its eigenvector (1, 1, 1) / sqrt(3).
    assert vals[0] > 1 and np.all(vals[1:] < 1e-6 * vals[0])
    assert np.allclose(np.abs(vecs[:, 0]), 1 / np.sqrt(3))
    imgs = ds.train_images[:16]
    plain = Augment(ds, seed=5, pad=0, lighting_std=0.0)(imgs, offset=32)
    lit = Augment(ds, seed=5, pad=0, lighting_std=0.1)(imgs, offset=32)
    np.testing.assert_allclose(plain, Standardise(ds.mean, ds.std)(imgs), rtol=0, atol=0)
    shift = lit - plain
    per_image = shift.reshape(16, -1, 3)
    assert np.allclose(per_image, per_image[:, :1, :], atol=1e-5)  # one offset per image
    assert np.allclose(per_image[..., 0], per_image[..., 2], atol=1e-5)  # along (1, 1, 1)
    assert 0.01 < np.abs(per_image[:, 0, 0]).mean() < 1.0
    np.testing.assert_array_equal(lit, Augment(ds, seed=5, pad=0)(imgs, offset=32))  # deterministic
    assert not np.array_equal(lit, Augment(ds, seed=5, pad=0)(imgs, offset=48))


def test_relu_vs_tanh_quick(tmp_path):
    out = tmp_path / "fig1"
    # A loose target so both units reach it on the tiny subset and the ratio is defined.
    assert main(["experiment", "relu-vs-tanh", "--quick", "--target", "0.9", "--out", str(out)]) == 0
    rec = json.loads((out / "relu-vs-tanh.json").read_text())
    assert rec["target"] == 0.9 and rec["lrs"] == [0.01, 0.03]
    for act in ("relu", "tanh"):
        runs = rec["runs"][act]
        assert [r["lr"] for r in runs] == [0.01, 0.03]
        for r in runs:
            assert len(r["epochs"]) == len(r["train_error"]) and r["epochs"][-1] == pytest.approx(2.0)
            assert all(0 <= e <= 1 for e in r["train_error"])
        best = relu_tanh.best_run(runs, 0.9)
        assert rec["best"][act]["lr"] == best["lr"]
        assert rec["best"][act]["epochs_to_target"] == relu_tanh.epochs_to(best, 0.9)
    er, et = rec["best"]["relu"]["epochs_to_target"], rec["best"]["tanh"]["epochs_to_target"]
    assert rec["ratio"] == pytest.approx(et / er)
    fig = relu_tanh.plot(rec)
    ax = fig.axes[0]
    assert "ReLU vs tanh" in ax.get_title()
    texts = _labels_and_legend(ax)
    assert texts[0].startswith("ReLU (lr") and texts[1].startswith("tanh (lr") and texts[2] == "target 90%"
    target_line = ax.get_lines()[2]
    assert list(target_line.get_ydata()) == [90.0, 90.0]
    assert ax.get_lines()[0].get_linestyle() == "-" and ax.get_lines()[1].get_linestyle() == "--"
    assert (out / "relu-vs-tanh.png").stat().st_size > 5000


def test_relu_vs_tanh_says_never_for_a_target_not_reached(tmp_path, capsys):
    out = tmp_path / "fig1"
    assert main(["experiment", "relu-vs-tanh", "--quick", "--epochs", "1", "--lrs", "0.03", "--target", "0.001",
                 "--out", str(out)]) == 0
    rec = json.loads((out / "relu-vs-tanh.json").read_text())
    assert rec["best"]["relu"]["epochs_to_target"] is None and rec["best"]["tanh"]["epochs_to_target"] is None
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epochs to"))
    assert line == "epochs to 0.1% training error: ReLU never, tanh never; a unit never reached the target, no ratio"


def test_four_layer_nets_differ_only_in_the_unit():
    relu, tanh = models.four_layer_net("relu", seed=7), models.four_layer_net("tanh", seed=7)
    head = ["flatten", "linear", "softmax_cross_entropy"]
    assert [l.type for l in relu.layers] == ["conv2d", "relu", "max_pool"] * 3 + head
    assert [l.type for l in tanh.layers] == ["conv2d", "tanh", "max_pool"] * 3 + head
    a, b = relu.state_dict(), tanh.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    x = np.random.default_rng(2).standard_normal((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(tanh.features(x, "tanh1"), np.tanh(tanh.features(x, "conv1")).astype(np.float32))


def test_epochs_to_and_best_run_rules():
    a = {"lr": 0.1, "epochs": [0.5, 1.0, 1.5], "train_error": [0.6, 0.2, 0.1]}
    b = {"lr": 0.01, "epochs": [0.5, 1.0, 1.5], "train_error": [0.5, 0.3, 0.05]}
    assert relu_tanh.epochs_to(a, 0.25) == 1.0 and relu_tanh.epochs_to(b, 0.25) == 1.5
    assert relu_tanh.epochs_to(a, 0.01) is None
    assert relu_tanh.best_run([a, b], 0.25) is a       # first to the target
    assert relu_tanh.best_run([a, b], 0.01) is b       # neither: the lower final error


def test_report_collects_the_records(ablate_run, tmp_path):
    page = tmp_path / "site" / "report.md"
    assert main(["experiment", "report", str(ablate_run), "--out", str(page)]) == 0
    text = page.read_text()
    assert "## Ablations" in text and "python -m cuda_convnet experiment ablate --quick" in text
    assert "](../" in text and "ablate.png)" in text  # the picture, linked relative to the page
    assert "+1.7 / +1.2 (§3.2)" in text


def test_user_errors_are_one_line(tmp_path):
    r = run_cli("experiment", "ablate", "--quick", "--variants", "no-softmax", cwd=tmp_path)
    assert r.returncode == 2 and "unknown ['no-softmax']" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("experiment", "relu-vs-tanh", "--data", tmp_path / "nothing", cwd=tmp_path)
    assert r.returncode == 2 and "neither a prepared store" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("experiment", "report", tmp_path, cwd=tmp_path)
    assert r.returncode == 2 and "no experiment records" in r.stderr
    (tmp_path / "page.md").write_text("x")
    r = run_cli("experiment", "report", tmp_path / "page.md", cwd=tmp_path)
    assert r.returncode == 2 and "page.md: not a folder" in r.stderr


@pytest.mark.parametrize("args,message", [
    (("ablate", "--lr", "nan"), "argument --lr: must be a positive finite number, got nan"),
    (("ablate", "--lr", "-1"), "argument --lr: must be a positive finite number, got -1"),
    (("ablate", "--seeds", "0"), "argument --seeds: must be >= 1, got 0"),
    (("relu-vs-tanh", "--threads", "0"), "argument --threads: must be >= 1, got 0"),
    (("relu-vs-tanh", "--seed", "-1"), "argument --seed: must be >= 0, got -1"),
    (("relu-vs-tanh", "--batch", "0"), "argument --batch/--batch-size: must be >= 1, got 0"),
])
def test_bad_numbers_are_one_line_before_any_training(tmp_path, args, message):
    """A NaN or negative learning rate reached SGD's check inside the first run and ended
    in a traceback; every number flag is now a checked type: one line, exit 2, nothing
    written."""
    r = run_cli("experiment", *args, "--quick", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_load_dataset_reads_a_store_and_cifar_batches(tmp_path):
    import pickle

    from cuda_convnet.data.store import write_store

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 20).astype(np.int32)
    write_store(tmp_path / "store", {"train": (x, y), "val": (x[:6], y[:6])}, ["a", "b", "c"])
    ds = load_dataset(tmp_path / "store")
    np.testing.assert_array_equal(ds.train_images, x)
    np.testing.assert_array_equal(ds.val_labels, y[:6])
    assert ds.classes == ["a", "b", "c"]
    np.testing.assert_allclose(ds.mean, x.reshape(-1, 3).mean(0), rtol=1e-5)
    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    planes = x.transpose(0, 3, 1, 2).reshape(20, -1)  # CIFAR's R, G, B planes
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps({b"data": planes, b"labels": [int(v) for v in y]}))
    (cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b", b"c"]}))
    ds = load_dataset(tmp_path)
    assert ds.name == "CIFAR-10" and len(ds.train_labels) == 100
    np.testing.assert_array_equal(ds.train_images[:20], x)
    assert load_dataset(None).size == 32


def test_ablate_counts_read_as_english(tmp_path):
    """One variant, one seed, one epoch: singular nouns, in the printed line and the table."""
    r = run_cli("experiment", "ablate", "--quick", "--seeds", "1", "--variants", "full", "--out", "one", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "; 1 variant x 1 seed, 1 epoch each" in r.stdout.splitlines()[0]
    md = (tmp_path / "one" / "ablate.md").read_text()
    assert "images; 1 epoch, batch 32, lr 0.02, seed 0)" in md
    r = run_cli("experiment", "relu-vs-tanh", "--quick", "--epochs", "1", "--lrs", "0.03", "--out", "rt",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("learning rates [0.03]; 1 epoch each")
