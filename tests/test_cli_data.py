"""The data commands as people use them (subprocesses on a tree of real image files):
file names that are not UTF-8, EXIF orientation, predict with a bad file among good
ones, eval and train on a store that does not fit the checkpoint or the model, train
--resume with changed settings, and bad arguments (one line on stderr, exit status 2)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from cli_tree import make_tree, picture
from PIL import Image
from subproc import env, run_cli

from cuda_convnet.cli import main
from cuda_convnet.data.images import load_fixed_size
from cuda_convnet.data.store import ImageStore
from cuda_convnet.net import load_checkpoint
from cuda_convnet.net.checkpoint import save_checkpoint

TRAIN = ("--model", "small", "--width", "1", "--batch-size", "8", "--no-progress", "--devices", "cpu")
# Latin-1 file names: bytes that are not valid UTF-8 (a POSIX name is any bytes but / and NUL).
STRASSE = os.fsdecode(b"Stra\xdfe.png")
KAPUTT = os.fsdecode(b"kaputt\xe9.JPEG")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def run_bytes(*args, cwd):
    """`python -m cuda_convnet *args` with stdout/stderr kept as bytes (names may not be UTF-8)."""
    return subprocess.run([sys.executable, "-m", "cuda_convnet", *map(os.fspath, args)], check=False,
                          capture_output=True, cwd=cwd, env=env(), timeout=600)


def sideways(stored: np.ndarray, path, orientation=6):
    """Save `stored` with an EXIF Orientation tag (6: a viewer turns it 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """cli_tree's tree plus: a Latin-1-named image and a Latin-1-named corrupt file; a
    photo stored sideways with an EXIF orientation tag and the same photo stored upright;
    its store at 72 and one epoch of the small model on it."""
    root = tmp_path_factory.mktemp("cli_data")
    files = make_tree(root / "src")
    ember, sky = root / "src/train/ember", root / "src/train/sky"
    Image.fromarray(picture(0, 90, 70, 501)).save(ember / STRASSE)
    (ember / KAPUTT).write_bytes(b"\xff\xd8\xff not a whole JPEG")
    stored = picture(2, 96, 70, 502)  # wide as stored; upright it is tall
    sideways(stored, sky / "phone_exif.png")
    Image.fromarray(np.ascontiguousarray(np.rot90(stored, k=-1))).save(sky / "phone_upright.png")
    prep = ok(run_bytes("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", "--json",
                         cwd=root))
    ok(run_cli("train", "store", *TRAIN, "--epochs", "1", "--out", "run1", cwd=root))
    return {"root": root, "files": files, "prepare": prep}


# -- names that are not UTF-8 -----------------------------------------------------------------------
def test_prepare_names_of_any_bytes(tree):
    root = tree["root"]
    assert json.loads(tree["prepare"].stdout)["splits"]["train"] == {"found": 41, "written": 39, "skipped": 2}
    # files.txt holds the name's own bytes; ImageStore.files gives the str open() takes.
    assert b"train/ember/Stra\xdfe.png" in (root / "store/train/files.txt").read_bytes().split(b"\n")
    store = ImageStore(root / "store", "train")
    i = store.files.index(f"train/ember/{STRASSE}")
    np.testing.assert_array_equal(store.images[i], load_fixed_size(root / "src/train/ember" / STRASSE, 72))
    assert store.classes[store.labels[i]] == "ember"
    # report.json: the skipped Latin-1 file, escaped in JSON, back to its bytes with os.fsencode.
    report = json.loads((root / "store/report.json").read_text())
    skipped = [os.fsencode(s["file"]) for s in report["skipped"]["train"]]
    assert b"train/ember/kaputt\xe9.JPEG" in skipped


def test_predict_prints_a_latin1_name(tree):
    root = tree["root"]
    r = run_bytes("predict", "run1", root / "src/train/ember" / STRASSE, "--top", "1", cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == os.fsencode(root / "src/train/ember" / STRASSE)


# -- EXIF orientation: the same pixels in prepare and predict ------------------------------------
def test_prepare_applies_exif_orientation(tree):
    store = ImageStore(tree["root"] / "store", "train")
    exif = store.images[store.files.index("train/sky/phone_exif.png")]
    upright = store.images[store.files.index("train/sky/phone_upright.png")]
    np.testing.assert_array_equal(exif, upright)  # lossless PNGs: exactly the same image


def test_predict_applies_exif_orientation(tree):
    root = tree["root"]
    sky = root / "src/train/sky"
    r = ok(run_cli("predict", "run1", sky / "phone_exif.png", sky / "phone_upright.png", "--ten-crop", cwd=root))
    lines = r.stdout.splitlines()
    assert lines[0].endswith("phone_exif.png") and lines[4].endswith("phone_upright.png")
    assert lines[1:4] == lines[5:8]  # the same classes and probabilities, to the printed digits
    # The stored (sideways) pixels give other probabilities.
    sideways_only = root / "sideways.png"
    Image.open(sky / "phone_exif.png").save(sideways_only)  # the pixels without the tag
    r2 = ok(run_cli("predict", "run1", sideways_only, "--ten-crop", cwd=root))
    assert r2.stdout.splitlines()[1:4] != lines[1:4]


# -- predict: one bad file among several ------------------------------------------------------------
def test_predict_reports_each_bad_file_and_predicts_the_rest(tree):
    root = tree["root"]
    good = [str(p) for p in tree["files"]["good"]]
    bad, missing = str(tree["files"]["truncated"]), str(root / "no_such.jpg")
    r = run_cli("predict", "run1", good[0], bad, good[1], missing, "--top", "2", "--batch-size", "2",
                "--no-progress", cwd=root)
    assert r.returncode == 2
    assert r.stdout.splitlines()[0::3] == good  # each good file: its name, then 2 classes
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in r.stderr
    assert bad in errors[0] and "cannot decode as an image" in errors[0]
    assert missing in errors[1] and "no such file" in errors[1]


# -- eval and train: a store that does not fit ---------------------------------------------------------
def test_eval_refuses_another_image_size(tree):
    root = tree["root"]
    ok(run_cli("prepare", "src", "store80", "--size", "80", "--workers", "0", "--no-progress", cwd=root))
    r = run_cli("eval", "store80", "run1", "--no-progress", cwd=root)
    assert r.returncode == 2 and r.stdout == ""
    assert "trained on 72x72 images; store80 holds 80x80 images" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_eval_refuses_a_checkpoint_without_class_names(tree):
    root = tree["root"]
    ck = load_checkpoint(root / "run1/checkpoint.npz")
    extra = {k: v for k, v in ck.extra.items() if k != "classes"}
    save_checkpoint(root / "unnamed.npz", ck.net, extra=extra, arrays=ck.arrays)
    r = run_cli("eval", "store", "unnamed.npz", "--no-progress", cwd=root)
    assert r.returncode == 2 and "records no class names" in r.stderr and "--assume-store-classes" in r.stderr
    named = ok(run_cli("eval", "store", "run1", "--json", "named.json", "--no-progress", cwd=root))
    assumed = ok(run_cli("eval", "store", "unnamed.npz", "--assume-store-classes", "--json", "assumed.json",
                         "--no-progress", cwd=root))
    assert "training mean image" in named.stdout and "training mean image" in assumed.stdout
    a, b = (json.loads((root / f).read_text()) for f in ("named.json", "assumed.json"))
    assert a["top1_error"] == b["top1_error"] and a["top5_error"] == b["top5_error"]


def test_eval_names_the_class_that_differs(tree):
    root = tree["root"]
    shutil.copytree(root / "store", root / "store_renamed")
    manifest = json.loads((root / "store_renamed/manifest.json").read_text())
    manifest["classes"][1] = "lichen"
    (root / "store_renamed/manifest.json").write_text(json.dumps(manifest))
    r = run_cli("eval", "store_renamed", "run1", "--no-progress", cwd=root)
    assert r.returncode == 2 and r.stdout == ""
    assert "class 1 is 'moss' there, 'lichen' here (1 of 3 differ)" in r.stderr


def test_small_model_on_a_256_store_says_how_much_a_crop_covers(tree):
    root = tree["root"]
    ok(run_cli("prepare", "src", "store256", "--workers", "0", "--no-progress", cwd=root))
    r = ok(run_cli("train", "store256", *TRAIN, "--epochs", "1", "--limit-train", "8", "--limit-val", "3",
                   "--out", "run256", cwd=root))
    assert "warning: --model small's 64x64 crops cover 6% of each of the store's 256x256 images" in r.stderr
    assert "prepare with --size 72" in r.stderr
    r72 = ok(run_cli("train", "store", *TRAIN, "--epochs", "1", "--limit-train", "8", "--limit-val", "3",
                     "--out", "run72", cwd=root))
    assert "warning" not in r72.stderr


# -- train --resume: a setting is kept, or refused by name ---------------------------------------------
@pytest.mark.parametrize("flag,value,recorded", [("--batch-size", "16", "--batch-size 8"), ("--seed", "3", "--seed 0"),
                                                 ("--lr", "0.5", "--lr 0.01"), ("--limit-train", "10", "without"),
                                                 ("--patience", "5", "--patience 2")])
def test_resume_refuses_a_changed_setting(tree, flag, value, recorded):
    root = tree["root"]
    r = run_cli("train", "store", "--resume", "--out", "run1", "--epochs", "2", flag, value, cwd=root)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{flag} {value} (the run was trained {'with ' if recorded != 'without' else ''}{recorded}" in r.stderr
    assert "bit-identically" in r.stderr


def test_resume_accepts_unchanged_settings(tree):
    root = tree["root"]
    shutil.copytree(root / "run1", root / "run1_again")
    r = ok(run_cli("train", "store", "--resume", "--out", "run1_again", "--epochs", "2", "--lr", "0.01",
                   "--batch-size", "8", "--seed", "0", "--model", "small", "--no-progress", cwd=root))
    assert "epoch   2/2" in r.stdout


# -- bad arguments: one line, exit status 2, before any work ----------------------------------------------
@pytest.mark.parametrize("argv,match", [
    (("train", "store", *TRAIN, "--out", "afile"), "--out"),
    (("train", "store", *TRAIN, "--out", "afile/sub"), "is a file"),
    (("demo", "--out", "afile", "--quick"), "exists and is a file"),
    (("demo", "--lr", "-1"), "argument --lr: must be a positive finite number, got -1"),
    (("demo", "--lr", "nan"), "argument --lr"),
    (("demo", "--seed", "-1"), "argument --seed: must be >= 0"),
    (("selfcheck", "--batch", "0"), "argument --batch/--batch-size: must be >= 1, got 0"),
    (("demo", "--batch-size", "0", "--quick"), "argument --batch/--batch-size: must be >= 1, got 0"),
    (("demo", "--devices", "gpu", "--quick"), "--device: unknown device 'gpu'"),
    (("figure", "filters", "run1", "--devices", "gpu0"), "unknown device 'gpu0'"),
    (("experiment", "ablate", "--epochs", "0", "--quick"), "argument --epochs: must be >= 1, got 0"),
    (("experiment", "ablate", "--lr", "-0.1", "--quick"), "argument --lr: must be a positive finite number"),
    (("experiment", "relu-vs-tanh", "--seed", "-2", "--quick"), "argument --seed: must be >= 0, got -2"),
    (("experiment", "relu-vs-tanh", "--threads", "0", "--quick"), "argument --threads: must be >= 1, got 0"),
    (("figure", "neighbours", "run1", "digits", "--k", "0"), "argument --k: must be >= 1, got 0"),
    (("eval", "store", "run1", "--json", "missing_dir/x.json"), "no such folder"),
    (("eval", "store", "run1", "--per-class", "missing_dir/x.csv"), "no such folder"),
    (("eval", "store", "run1", "--json", "store"), "is a folder"),
    (("eval", "store", "run1", "--limit", "0"), "argument --limit: must be >= 1"),
    (("predict", "run1", "afile", "--top", "0"), "argument --top: must be >= 1"),
    (("prepare", "src", "src"), "the destination is the source tree"),
    (("prepare", "src", "src/train/store"), "the destination is inside the source tree"),
    (("prepare", "src", "x", "--workers", "-1"), "argument --workers: must be >= 0"),
    (("prepare", "src", "x", "--size", "0"), "argument --size: must be >= 1"),
    (("prepare", "src", "store", "--size", "64"), "size (--size) is 72 there, 64 now"),
    (("prepare", "src", "store", "--chunk-size", "5"), "chunk_size (--chunk-size) is 128 there, 5 now"),
    (("train", "store", *TRAIN, "--lr", "inf", "--out", "r"), "argument --lr"),
    (("train", "store", *TRAIN, "--crop", "0", "--out", "r"), "argument --crop: must be >= 1"),
    (("nosuchcommand",), "invalid choice"),
    (("prepare", "src", ""), "argument dst: an empty path"),
    (("train", "", *TRAIN), "argument store: an empty path"),
    (("train", "store", *TRAIN, "--out", ""), "argument --out: an empty path"),
    (("eval", "store", "run1", "--json", ""), "argument --json: an empty path"),
    (("prepare", "src", "x", "--val-labels", "src/train"), "a label file is only for a flat"),
])
def test_bad_arguments_are_one_line(tree, monkeypatch, capsys, argv, match):
    root = tree["root"]
    (root / "afile").write_text("a file, not a folder")
    monkeypatch.chdir(root)
    before = sorted(p.name for p in root.iterdir())
    code = status(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    assert out == ""  # refused before any work (eval: before the evaluation ran)
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written
    assert not (root / "src/train/store").exists()


def status(argv) -> int:
    """main()'s exit status: returned, or raised by argparse as SystemExit."""
    try:
        return main(list(argv))
    except SystemExit as e:
        return e.code


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="uses /proc, where no file can be created")
@pytest.mark.parametrize("argv,match", [
    (("eval", "store", "run1", "--json", "/proc/x.json"), "--json /proc/x.json: cannot be written"),
    (("eval", "store", "run1", "--per-class", "/proc/x.csv"), "--per-class /proc/x.csv: cannot be written"),
    (("prepare", "src", "/proc/x"), "/proc/x: cannot create the destination"),
    (("train", "store", *TRAIN, "--out", "/proc/x"), "--out /proc/x: cannot create the folder"),
    (("demo", "--quick", "--out", "/proc/x"), "--out /proc/x: cannot create the folder"),
    (("predict", "run1", "src", "--no-progress"), "src: is a folder, not an image file"),
])
def test_unwritable_outputs_are_refused_before_the_work(tree, monkeypatch, capsys, argv, match):
    """Paths whose folder exists but where nothing can be created (even by root)."""
    monkeypatch.chdir(tree["root"])
    code = status(argv)
    out, err = capsys.readouterr()
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert out == ""  # eval: refused before the evaluation ran


@pytest.mark.parametrize("argv,match", [
    (("train", "store", *TRAIN, "--out", "afile"), "exists and is a file"),
    (("demo", "--lr", "-1"), "argument --lr"),
    (("selfcheck", "--batch", "0"), "argument --batch"),
])
def test_bad_arguments_from_the_shell(tree, argv, match):
    root = tree["root"]
    (root / "afile").write_text("a file, not a folder")
    r = run_cli(*argv, cwd=root)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"cuda-convnet {argv[0]}: error:") and match in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_class_name_that_is_not_utf8(tmp_path):
    """A class folder named with Latin-1 bytes (b'gr\\xfcn'): prepare, train, eval
    --per-class and predict carry the name's own bytes through."""
    make_tree(tmp_path / "src", train_per_class=4, val_per_class=2)
    for split in ("train", "val"):
        os.rename(tmp_path / "src" / split / "moss", tmp_path / "src" / split / os.fsdecode(b"gr\xfcn"))
    ok(run_bytes("prepare", "src", "store", "--size", "72", "--workers", "0", "--no-progress", cwd=tmp_path))
    assert ImageStore(tmp_path / "store", "train").classes == ["ember", os.fsdecode(b"gr\xfcn"), "sky"]
    ok(run_bytes("train", "store", *TRAIN, "--epochs", "1", "--out", "run1", cwd=tmp_path))
    ok(run_bytes("eval", "store", "run1", "--per-class", "pc.csv", "--no-progress", cwd=tmp_path))
    rows = (tmp_path / "pc.csv").read_bytes().splitlines()
    assert [r.split(b",")[0] for r in rows] == [b"class", b"ember", b"gr\xfcn", b"sky"]
    r = ok(run_bytes("predict", "run1", "src/val/ember/ember_01.png", "--top", "3", cwd=tmp_path))
    assert sorted(line.split()[1] for line in r.stdout.splitlines()[1:]) == [b"ember", b"gr\xfcn", b"sky"]


def test_demo_resume_keeps_or_refuses_its_settings(tmp_path):
    ok(run_cli("demo", "--quick", "--epochs", "1", "--device", "cpu", "--no-progress", "--out", "d", cwd=tmp_path))
    r = run_cli("demo", "--resume", "--epochs", "2", "--batch", "16", "--device", "cpu", "--out", "d", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--batch 16 (the run was trained with --batch 32)" in r.stderr
    # Nothing given: the recorded settings (--quick included) continue the run.
    r = ok(run_cli("demo", "--resume", "--epochs", "2", "--device", "cpu", "--no-progress", "--out", "d",
                   cwd=tmp_path))
    history = json.loads((tmp_path / "d/history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "after 2 epochs" in r.stdout
    ck = load_checkpoint(tmp_path / "d/checkpoint.npz")
    assert ck.extra["quick"] is True and ck.extra["batch"] == 32 and ck.extra["lr"] == 0.02


# -- prepare: Ctrl-C says what a rerun keeps ------------------------------------------------------
@pytest.mark.parametrize("event,chunk", [("appended", 0), ("recorded", 1)])
def test_prepare_ctrl_c_says_what_was_saved(tmp_path, monkeypatch, capsys, event, chunk):
    """Ctrl-C (KeyboardInterrupt, raised at data.prepare's test hook: after the chunk's bytes
    are written, or after it is recorded): status 130, one line with the finished chunks and
    their images read back from the progress state, or that nothing was saved."""
    from cuda_convnet.data import prepare as prepare_mod

    make_tree(tmp_path / "src")

    def hook(ev, split, k):
        if ev == event and k == chunk:
            raise KeyboardInterrupt

    monkeypatch.setattr(prepare_mod, "_hook", hook)
    dst = tmp_path / "store"
    code = main(["prepare", str(tmp_path / "src"), str(dst), "--size", "32", "--workers", "0", "--chunk-size", "4",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    if event == "appended":  # chunk 0 written but not recorded: a rerun decodes it again
        assert err == (f"cuda-convnet prepare: interrupted: no chunk had finished, so nothing was saved in {dst}; "
                       "run the same command again to start over\n")
    else:
        state = json.loads((dst / ".progress" / "state.json").read_text())
        (split,) = state["splits"].values()
        assert split["chunks_done"] == 2 and 0 < split["count"] <= 8
        assert err == (f"cuda-convnet prepare: interrupted: 2 finished chunks ({split['count']} images) saved in "
                       f"{dst}; run the same command again to resume\n")
    monkeypatch.setattr(prepare_mod, "_hook", None)
    assert main(["prepare", str(tmp_path / "src"), str(dst), "--size", "32", "--workers", "0", "--chunk-size", "4",
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["written"] == 36
