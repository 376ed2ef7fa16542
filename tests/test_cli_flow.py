"""The user's flow, run as a user runs it (subprocesses): a tree of real image files ->
`prepare` -> `train` (two towers on the CPU; resumed) -> `eval` (centre and ten-crop, one
and two checkpoints) -> `predict`; the same training on the emulated CUDA kernels; and bad
input, which must give one line on stderr and exit status 2."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli_tree import CLASSES, make_tree
from subproc import run_cli

from cuda_convnet.cli import main
from cuda_convnet.data.evaluate import topk_error_rates
from cuda_convnet.data.store import ImageStore
from cuda_convnet.data.views import test_views
from cuda_convnet.net import load_checkpoint

# The small model on 64x64 crops of 72x72 images; width 1 and batch 8 keep every run ~1 s.
TRAIN = ("--model", "small", "--width", "1", "--batch-size", "8", "--no-progress")
METRIC_FIELDS = {"epoch", "step", "lr", "lr_dropped", "train_loss", "train_top1_err", "train_top5_err", "val_top1_err",
                 "val_top5_err", "val_loss", "seconds", "images_per_second"}


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The tree, its store, and three training runs: run1 (1 epoch, then --resume to 2),
    run2 (another seed, 1 epoch), straight (2 epochs in one go, for the resume check)."""
    root = tmp_path_factory.mktemp("cli_flow")
    files = make_tree(root / "src")
    prep = ok(run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", cwd=root))
    runs = {
        "first": ok(run_cli("train", "store", *TRAIN, "--devices", "cpu,cpu", "--epochs", "1", "--out", "run1",
                            cwd=root)),
        "resumed": ok(run_cli("train", "store", "--devices", "cpu,cpu", "--epochs", "2", "--out", "run1",
                              "--resume", "--no-progress", cwd=root)),
        "run2": ok(run_cli("train", "store", *TRAIN, "--devices", "cpu", "--epochs", "1", "--seed", "1",
                           "--out", "run2", cwd=root)),
        "straight": ok(run_cli("train", "store", *TRAIN, "--devices", "cpu,cpu", "--epochs", "2", "--out",
                               "straight", cwd=root)),
    }
    return {"root": root, "files": files, "prepare": prep, "runs": runs}


def test_prepare_rerun_on_a_complete_store_says_so(flow):
    root = flow["root"]
    rerun = ok(run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", "--json",
                       cwd=root))
    report = json.loads(rerun.stdout)
    assert report["already_complete"] is True
    assert report["splits"] == json.loads((root / "store" / "report.json").read_text())["splits"]  # the first run's
    words = ok(run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", cwd=root))
    assert "(already complete: nothing to do; the counts are the first run's)" in words.stdout.splitlines()[0]


def test_prepare_packs_the_tree(flow):
    """The summary for a person: classes, each split's images, where the skipped files are listed."""
    store = (flow["root"] / "store").resolve()
    assert flow["prepare"].stdout.splitlines()[:4] == [
        f"store {store}: 3 classes",
        "  train 36 images written of 37 found, 1 skipped (unreadable)",  # the truncated JPEG
        "  val   12 images written of 12 found",
        f"skipped files and why: {store / 'report.json'}",
    ]
    assert flow["prepare"].stdout.splitlines()[4].endswith(" images/s")
    report = json.loads((store / "report.json").read_text())
    assert report["splits"]["train"] == {"found": 37, "written": 36, "skipped": 1}
    assert report["splits"]["val"]["written"] == 12
    store = ImageStore(flow["root"] / "store", "train")
    assert store.size == 72 and store.classes == list(CLASSES) and len(store) == 36


def test_train_writes_checkpoint_metrics_and_curves(flow):
    run1 = flow["root"] / "run1"
    out = flow["runs"]["first"].stdout
    assert "36 training and 12 validation images, 72x72, 3 classes" in out
    assert "towers on cpu, cpu" in out and "conv3/1" in out and "epoch   1/1" in out
    rows = metrics(run1)
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [4, 8]  # 36 // 8 steps per epoch
    for r in rows:
        assert set(r) >= METRIC_FIELDS
        assert all(0 <= r[k] <= 1 for k in ("train_top1_err", "train_top5_err", "val_top1_err", "val_top5_err"))
        assert r["lr"] == 0.01 and r["images_per_second"] > 0 and np.isfinite(r["train_loss"])
    assert (run1 / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = metrics(run1)[-1]  # the last line speaks in percent, as the epoch lines do
    final = (f"final validation error: top-1 {100 * last['val_top1_err']:.2f}%, top-5 "
             f"{100 * last['val_top5_err']:.2f}% (centre crops) after 2 epochs, 8 steps")
    assert final in flow["runs"]["resumed"].stdout
    assert "(centre crops) after 1 epoch, 4 steps" in flow["runs"]["first"].stdout
    ck = load_checkpoint(run1 / "checkpoint.npz")
    assert ck.extra["classes"] == list(CLASSES) and ck.extra["crop"] == 64 and ck.extra["image_size"] == 72
    assert ck.extra["model"] == "small" and ck.extra["epoch"] == 2 and ck.net.input_shape == (64, 64, 3)
    np.testing.assert_array_equal(ck.arrays["mean"], ImageStore(flow["root"] / "store", "train").mean)


def test_resume_continues_bit_identically(flow):
    out = flow["runs"]["resumed"].stdout
    assert "resuming" in out and "epoch   2/2" in out and "epoch   1/2" not in out
    # run1 (1 epoch, then resumed) and straight (2 epochs) are the same run.
    resumed, straight = metrics(flow["root"] / "run1"), metrics(flow["root"] / "straight")
    for key in ("train_loss", "train_top1_err", "val_loss", "val_top1_err", "step", "lr"):
        assert [r[key] for r in resumed] == [r[key] for r in straight], key
    a = load_checkpoint(flow["root"] / "run1" / "checkpoint.npz").net.state_dict()
    b = load_checkpoint(flow["root"] / "straight" / "checkpoint.npz").net.state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _ten_crop_errors(flow, checkpoints):
    """The ten-crop errors of the checkpoints' average, computed here from test_views."""
    store = ImageStore(flow["root"] / "store", "val")
    views = test_views(np.asarray(store.images), store.mean, crop=64, ten_crop=True)
    assert views.shape == (10, 12, 64, 64, 3)
    probs = []
    for c in checkpoints:
        ck = load_checkpoint(flow["root"] / c)
        probs += [ck.net.predict(np.ascontiguousarray(v * np.float32(ck.extra["input_scale"]))) for v in views]
    return topk_error_rates(np.mean(probs, axis=0), store.labels)


def test_eval_centre_one_checkpoint(flow):
    root = flow["root"]
    r = ok(run_cli("eval", "store", "run1/checkpoint.npz", "--json", "e.json", "--no-progress", cwd=root))
    assert "12 crops per checkpoint (12 images x 1 view)" in r.stdout
    res = json.loads((root / "e.json").read_text())
    # The table in percent (as train prints errors), the JSON in fractions.
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith("run1/checkpoint.npz"))
    m = res["models"][0]
    assert row == ["run1/checkpoint.npz", "2", "fp32", f"{100 * m['top1_error']:.2f}%", f"{100 * m['top5_error']:.2f}%"]
    assert res["views"] == 1 and res["images"] == 12 and len(res["models"]) == 1
    assert 0 <= res["top1_error"] <= 1 and 0 <= res["top5_error"] <= res["top1_error"]
    # The same number training reported for its last epoch (both: centre crops, the val split).
    assert res["top1_error"] == pytest.approx(metrics(root / "run1")[-1]["val_top1_err"])


def test_eval_ten_crop_averages_two_checkpoints(flow):
    root = flow["root"]
    r = ok(run_cli("eval", "store", "run1", "run2/checkpoint.npz", "--ten-crop", "--per-class", "pc.csv", "--json",
                   "e10.json", "--no-progress", cwd=root))
    assert "120 crops per checkpoint (12 images x 10 views)" in r.stdout and "average of 2" in r.stdout
    res = json.loads((root / "e10.json").read_text())
    assert res["views"] == 10 and len(res["models"]) == 2 and all(m["crops"] == 120 for m in res["models"])
    for m in res["models"] + [res]:
        assert 0 <= m["top1_error"] <= 1 and 0 <= m["top5_error"] <= 1
    average = next(line for line in r.stdout.splitlines() if line.startswith("average of 2 (§6)"))
    assert average.split()[-2:] == [f"{100 * res['top1_error']:.2f}%", f"{100 * res['top5_error']:.2f}%"]
    want = _ten_crop_errors(flow, ["run1/checkpoint.npz", "run2/checkpoint.npz"])
    assert res["top1_error"] == pytest.approx(want[1]) and res["top5_error"] == pytest.approx(want[5])
    alone = _ten_crop_errors(flow, ["run2/checkpoint.npz"])
    assert res["models"][1]["top1_error"] == pytest.approx(alone[1])
    with open(root / "pc.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["class"] for row in rows] == list(CLASSES) and all(row["count"] == "4" for row in rows)
    wrong = sum(float(row["top1_error"]) * 4 for row in rows)
    assert wrong == pytest.approx(12 * res["top1_error"])


@pytest.mark.parametrize("ten_crop", [False, True])
def test_predict_names_top_classes(flow, ten_crop):
    root = flow["root"]
    files = [str(p.relative_to(root)) for p in flow["files"]["good"]]
    r = ok(run_cli("predict", "run2", *files, "--top", "5", *(["--ten-crop"] if ten_crop else []), cwd=root))
    lines = r.stdout.splitlines()
    assert len(lines) == 2 * (1 + 3)  # a file name, then min(--top, 3 classes) lines
    for i, path in enumerate(files):
        assert lines[4 * i] == path
        ranked = [line.split() for line in lines[4 * i + 1:4 * i + 4]]
        assert [row[0] for row in ranked] == ["1.", "2.", "3."]
        assert sorted(row[1] for row in ranked) == sorted(CLASSES)
        p = [float(row[2]) for row in ranked]
        assert p == sorted(p, reverse=True) and all(0 <= q <= 1 for q in p)
        assert sum(p) <= 1 + 2e-4 and sum(p) == pytest.approx(1, abs=2e-4)  # all 3 classes listed, 4 decimals


def test_predict_shows_progress_unless_told_not_to(flow):
    """A bar over the files on stderr (as eval and train draw theirs); the results on stdout
    are the same with --no-progress, which leaves stderr empty."""
    root = flow["root"]
    files = [str(p.relative_to(root)) for p in flow["files"]["good"]] * 3
    shown = ok(run_cli("predict", "run2", *files, "--top", "2", "--batch-size", "2", cwd=root))
    quiet = ok(run_cli("predict", "run2", *files, "--top", "2", "--batch-size", "2", "--no-progress", cwd=root))
    assert shown.stdout == quiet.stdout and len(quiet.stdout.splitlines()) == 3 * len(files)
    assert quiet.stderr == ""
    assert "predict:" in shown.stderr and f"{len(files)}/{len(files)}" in shown.stderr and "img/s" in shown.stderr


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(flow):
    """SIGINT during the first epoch: no checkpoint exists, so the line says nothing was saved
    and to start again (not --resume, which would be refused)."""
    from subproc import interrupt_cli

    root, out = flow["root"], flow["root"] / "interrupted_early"
    # "SGD: " is the last line before training starts
    code, stdout, stderr = interrupt_cli("train", "store", *TRAIN, "--devices", "cpu", "--epochs", "5",
                                         "--out", out, cwd=root, at_line="SGD: ")
    assert code == 130, stderr
    assert not (out / "checkpoint.npz").exists() and "epoch   1/5" not in stdout
    assert stderr == (f"cuda-convnet train: interrupted: nothing was saved (no epoch had finished, so there is no "
                      f"checkpoint at {out / 'checkpoint.npz'}); run the same command again to start over\n")
    r = ok(run_cli("train", "store", *TRAIN, "--devices", "cpu", "--epochs", "1", "--out", out, cwd=root))
    assert "after 1 epoch, 4 steps" in r.stdout


@pytest.mark.emu
def test_train_on_emu_matches_cpu(flow):
    """Two steps with both towers on the emulated CUDA kernels, against the same on the CPU."""
    root = flow["root"]
    small = ("--epochs", "1", "--limit-train", "16", "--limit-val", "6")
    r = ok(run_cli("train", "store", *TRAIN, *small, "--devices", "emu,emu", "--out", "emu", cwd=root))
    assert "towers on emu, emu" in r.stdout and "16 training and 6 validation images (subsets)" in r.stdout
    ok(run_cli("train", "store", *TRAIN, *small, "--devices", "cpu", "--out", "cpu16", cwd=root))
    emu, cpu = metrics(root / "emu")[0], metrics(root / "cpu16")[0]
    assert emu["step"] == cpu["step"] == 2
    for key in ("train_loss", "val_loss"):
        assert emu[key] == pytest.approx(cpu[key], rel=1e-4), key
    assert load_checkpoint(root / "emu" / "checkpoint.npz", devices="cpu").extra["classes"] == list(CLASSES)


# -- bad input: one line, exit status 2 ------------------------------------------------------------
def one_line_error(capsys, *argv, match):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err


def test_bad_input_is_one_line(flow, capsys, tmp_path):
    root = flow["root"]
    store, run1 = root / "store", root / "run1"
    one_line_error(capsys, "train", tmp_path / "nowhere", *TRAIN, match="no such store directory")
    one_line_error(capsys, "train", root / "src", *TRAIN, match="not a prepared image store")
    one_line_error(capsys, "train", store, *TRAIN, "--devices", "gpu7", match="unknown device 'gpu7'")
    one_line_error(capsys, "train", store, "--model", "alexnet", "--out", tmp_path / "a",
                   match="224x224 crops for --model alexnet are larger than the store's 72x72 images")
    one_line_error(capsys, "train", store, *TRAIN, "--crop", "96", "--out", tmp_path / "b",
                   match="takes 64-pixel crops")
    one_line_error(capsys, "train", store, *TRAIN, "--out", run1, match="already holds a checkpoint")
    one_line_error(capsys, "train", store, "--resume", "--out", tmp_path / "c", match="--resume: no checkpoint")
    one_line_error(capsys, "train", store, "--resume", "--model", "alexnet", "--out", run1,
                   match="is a --model small run")
    one_line_error(capsys, "train", store, *TRAIN, "--batch-size", "64", "--out", tmp_path / "d",
                   match="fewer than one batch")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    one_line_error(capsys, "eval", store, tmp_path / "junk.npz", match="not a valid cuda_convnet checkpoint")
    one_line_error(capsys, "eval", store, tmp_path / "none.npz", match="no such checkpoint")
    one_line_error(capsys, "eval", store, run1, "--split", "test", match="no split 'test'")
    one_line_error(capsys, "eval", store, run1, "--devices", "cpu,tpu", match="unknown device 'tpu'")
    one_line_error(capsys, "predict", run1, flow["files"]["truncated"], "--no-progress",
                   match="cannot decode as an image")
    one_line_error(capsys, "predict", run1, tmp_path / "missing.jpg", "--no-progress", match="no such file")
    one_line_error(capsys, "predict", tmp_path / "junk.npz", flow["files"]["good"][0],
                   match="not a valid cuda_convnet checkpoint")


def test_bad_input_from_the_shell(flow, tmp_path):
    """The same as a user sees it: a subprocess, exit status 2, one line, no traceback."""
    r = run_cli("predict", flow["root"] / "run1", flow["files"]["truncated"], "--no-progress", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith("cuda-convnet predict: error:") and "truncated.JPEG" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_for_each_command(tmp_path):
    for command, words in (("train", "--resume"), ("eval", "--ten-crop"), ("predict", "--classes-from")):
        r = ok(run_cli(command, "--help", cwd=tmp_path))
        assert words in r.stdout and "usage: cuda-convnet " + command in r.stdout


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_continues(flow):
    """SIGINT (Ctrl-C) during training: one line naming the checkpoint, exit status 130, and
    what is on disk is whole (checkpoint, metrics, curves readable; no temporary files);
    --resume continues from it."""
    import os

    from subproc import interrupt_cli

    root, out = flow["root"], flow["root"] / "interrupted"
    # --patience 50: no learning-rate drop ends the run before the signal comes
    code, stdout, stderr = interrupt_cli(
        "train", "store", *TRAIN, "--devices", "cpu", "--epochs", "500", "--patience", "50", "--out", out, cwd=root,
        when=lambda: (out / "metrics.jsonl").exists() and len(metrics(out)) >= 2)
    assert code == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("cuda-convnet train: interrupted: ") and stderr.rstrip().endswith("--resume"), stderr
    ck = load_checkpoint(out / "checkpoint.npz")
    done = ck.extra["epoch"]
    assert done >= 2 and f"after epoch {done}" in stderr
    assert [r["epoch"] for r in metrics(out)][:done] == list(range(1, done + 1))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-") or p.endswith(".tmp")]
    r = ok(run_cli("train", "store", "--epochs", str(done + 1), "--out", out, "--resume", "--no-progress", cwd=root))
    assert f"epoch {done + 1:3d}/{done + 1}" in r.stdout
    assert load_checkpoint(out / "checkpoint.npz").extra["epoch"] == done + 1
