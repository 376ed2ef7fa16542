"""`--precision` on the commands, run as a user runs them (subprocesses, real files): train
records it in the checkpoint, eval and predict use the recorded one unless told
otherwise, a resumed run keeps it, and a bad value is one line with exit status 2."""
from __future__ import annotations

import json

import numpy as np
import pytest
from cli_tree import make_tree
from subproc import run_cli

from cuda_convnet.net import load_checkpoint

TRAIN = ("--model", "small", "--width", "1", "--batch-size", "8", "--no-progress", "--devices", "cpu",
         "--epochs", "1")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def one_line_error(r, match):
    assert r.returncode == 2, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_precision")
    files = make_tree(root / "src")
    ok(run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", cwd=root))
    run = ok(run_cli("train", "store", *TRAIN, "--precision", "tf32", "--out", "run", cwd=root))
    return {"root": root, "files": files, "train": run}


def test_train_records_the_precision(flow):
    assert "precision tf32" in flow["train"].stdout
    ck = load_checkpoint(flow["root"] / "run" / "checkpoint.npz")
    assert ck.net.precision == "tf32" and ck.extra["precision"] == "tf32"


def test_eval_uses_the_recorded_precision_unless_told(flow):
    root = flow["root"]
    ok(run_cli("eval", "store", "run", "--json", "rec.json", "--no-progress", cwd=root))
    ok(run_cli("eval", "store", "run", "--json", "bf16.json", "--precision", "bf16", "--no-progress", cwd=root))
    rec, bf16 = (json.loads((root / f).read_text()) for f in ("rec.json", "bf16.json"))
    assert rec["models"][0]["precision"] == "tf32" and bf16["models"][0]["precision"] == "bf16"
    # Training's last validation used the recorded precision: eval reproduces its number.
    last = json.loads((root / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["top1_error"] == pytest.approx(last["val_top1_err"])


def test_predict_takes_precision(flow):
    root = flow["root"]
    img = flow["files"]["good"][0]
    outs = [ok(run_cli("predict", "run", img, *extra, cwd=root)).stdout
            for extra in ((), ("--precision", "tf32"), ("--precision", "fp32"))]
    assert outs[0] == outs[1]  # the recorded precision is tf32
    assert outs[0].splitlines()[0] == outs[2].splitlines()[0]  # same image line; probabilities may differ


def test_resume_keeps_the_precision(flow):
    root = flow["root"]
    r = run_cli("train", "store", "--out", "run", "--resume", "--epochs", "2", "--precision", "bf16",
                "--no-progress", cwd=root)
    one_line_error(r, "--precision bf16 (the run was trained with --precision tf32)")


@pytest.mark.parametrize("argv", [
    ("train", "store", *TRAIN, "--precision", "fp16", "--out", "r"),
    ("eval", "store", "run", "--precision", "highest"),
    ("predict", "run", "x.png", "--precision", "TF32"),
    ("demo", "--precision", "half"),
    ("figure", "filters", "run", "--precision", "fp64"),
])
def test_bad_precision_is_one_line(flow, argv):
    r = run_cli(*argv, cwd=flow["root"])
    one_line_error(r, "argument --precision: invalid choice")
    assert "'fp32', '3xtf32', 'tf32', 'bf16'" in r.stderr


def test_demo_precision_is_recorded(tmp_path):
    r = ok(run_cli("demo", "--quick", "--epochs", "1", "--precision", "bf16", "--device", "cpu", "--out", "d",
                   "--no-progress", cwd=tmp_path))
    assert "precision bf16" in r.stdout
    ck = load_checkpoint(tmp_path / "d" / "checkpoint.npz")
    assert ck.net.precision == "bf16" and ck.extra["precision"] == "bf16"
    probs = ck.net.predict(np.zeros((2, 32, 32, 3), np.float32))
    assert probs.shape == (2, 10) and np.isfinite(probs).all()


def test_experiment_records_the_precision(tmp_path):
    from cuda_convnet.cli import main

    out = tmp_path / "fig1"
    assert main(["experiment", "relu-vs-tanh", "--quick", "--epochs", "1", "--lrs", "0.03", "--target", "0.9",
                 "--precision", "bf16", "--out", str(out)]) == 0
    rec = json.loads((out / "relu-vs-tanh.json").read_text())
    assert rec["precision"] == "bf16" and all(np.isfinite(r["train_error"]).all() for r in rec["runs"]["relu"])
