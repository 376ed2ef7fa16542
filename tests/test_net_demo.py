"""The README's main command, `python -m cuda_convnet demo`, run as a user runs it; and the
emulated AlexNet step benchmark."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from net_support import one_blas_thread  # noqa: F401
from subproc import run_cli

from cuda_convnet.net import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def demo(*args, timeout=300):
    return run_cli("demo", *args, cwd=ROOT / "tests", timeout=timeout)


@pytest.mark.slow
def test_demo_quick_writes_a_checkpoint_and_curves(tmp_path):
    out = tmp_path / "demo"
    r = demo("--quick", "--out", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "epoch   1/2" in r.stdout and "final validation top-1 error" in r.stdout
    assert "total parameters" in r.stdout and "conv3/1" in r.stdout  # the summary
    with open(out / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.extra["epoch"] == 2 and len(ck.extra["history"]) == 2
    assert ck.net.device_names == ["cpu", "cpu"] and ck.optimizer is not None and ck.schedule is not None
    probs = ck.net.predict(np.zeros((2, 32, 32, 3), np.float32))
    assert probs.shape == (2, 10)
    # --resume continues from the checkpoint to a third epoch.
    r = demo("--quick", "--out", str(out), "--device", "cpu", "--epochs", "3", "--resume")
    assert r.returncode == 0, r.stderr
    assert "epoch   3/3" in r.stdout and "epoch   1/3" not in r.stdout


def test_demo_bad_arguments_are_one_line(tmp_path):
    r = demo("--device", "gpu7", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown device" in r.stderr and "Traceback" not in r.stderr
    r = demo("--resume", "--out", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no checkpoint" in r.stderr


@pytest.mark.slow
@pytest.mark.emu
def test_demo_quick_on_emu(tmp_path):
    r = demo("--quick", "--epochs", "1", "--out", str(tmp_path), "--device", "emu", "--no-progress", timeout=1800)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "checkpoint.npz").exists()


@pytest.mark.slow
@pytest.mark.cuda
def test_demo_quick_on_cuda(tmp_path):
    r = demo("--quick", "--out", str(tmp_path), "--device", "cuda:0", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "towers on cuda:0, cuda:0" in r.stdout


def _bench():
    spec = importlib.util.spec_from_file_location("net_step_emu", ROOT / "bench" / "net_step_emu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.usefixtures("one_blas_thread")
def test_net_step_bench_harness_on_cpu():
    """The benchmark's harness, run on the reference so it is always exercised."""
    r = _bench().run(batch=1, towers=2, device="cpu", check=False)
    assert r["train_step"] > 0 and np.isfinite(r["loss"])


@pytest.mark.slow
@pytest.mark.alexnet_shapes
@pytest.mark.emu
def test_net_step_emu_alexnet_batch_2(capsys):
    """Time one emulated AlexNet training step at batch 2, checked against the reference."""
    bench = _bench()
    assert bench.main(["--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "train step" in out
    print(out)


def test_demo_ctrl_c_names_the_checkpoint_kept_and_resume_continues(tmp_path):
    """SIGINT during the demo: one line saying which epoch's checkpoint is on disk, status
    130; `demo --resume` continues from it."""
    from subproc import interrupt_cli

    from cuda_convnet.net.checkpoint import read_manifest

    out = tmp_path / "demo"
    ckpt = out / "checkpoint.npz"
    code, _, stderr = interrupt_cli("demo", "--quick", "--epochs", "500", "--patience", "400", "--device", "cpu",
                                    "--no-progress", "--out", out, cwd=tmp_path, when=ckpt.exists)
    assert code == 130, stderr
    done = read_manifest(ckpt)["extra"]["epoch"]
    assert stderr == (f"cuda-convnet demo: interrupted: {ckpt} on disk holds the checkpoint written after "
                      f"epoch {done}; continue with --resume\n")
    r = demo("--quick", "--resume", "--epochs", str(done + 1), "--device", "cpu", "--no-progress", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"epoch {done + 1:3d}/{done + 1}" in r.stdout
    assert load_checkpoint(ckpt).extra["epoch"] == done + 1


def test_demo_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tmp_path):
    """SIGINT before the first epoch's checkpoint: one line saying nothing was saved and to
    start again (--resume would find no checkpoint), status 130."""
    from subproc import interrupt_cli

    out = tmp_path / "demo"
    # The full data: an epoch is 44 steps, seconds on a CPU, so the signal lands inside it.
    # "SGD: " is the last line before training starts.
    code, stdout, stderr = interrupt_cli("demo", "--epochs", "3", "--device", "cpu", "--no-progress", "--out", out,
                                         cwd=tmp_path, at_line="SGD: ")
    assert code == 130, stderr
    ckpt = out / "checkpoint.npz"
    assert not ckpt.exists() and "epoch   1/3" not in stdout
    assert stderr == (f"cuda-convnet demo: interrupted: nothing was saved (no epoch had finished, so there is no "
                      f"checkpoint at {ckpt}); run the same command again to start over\n")
