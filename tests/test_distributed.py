"""Data-parallel training (cuda_convnet.distributed) in real processes launched by torchrun.

Each multi-rank test starts `python -m torch.distributed.run --nproc-per-node N
tests/distributed_worker.py` (gloo on localhost, a free port) and compares what rank 0
wrote with a one-process run made here. Needs torch (the `distributed` extra); without
it the multi-rank tests skip and the rest (sharding, seeds, running without torch) run.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import subproc

from cuda_convnet.data.loader import BatchLoader
from cuda_convnet.distributed import has_torch, rank_dropout_seed, shard_order
from cuda_convnet.distributed.sharding import ShardedBatchLoader

WORKER = str(pathlib.Path(__file__).with_name("distributed_worker.py"))
TESTS = str(pathlib.Path(__file__).parent)
needs_torch = pytest.mark.skipif(not has_torch(), reason="torch (the `distributed` extra) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out, nproc: int, *args, timeout=120):
    """Run the worker on `nproc` ranks; -> (CompletedProcess, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), WORKER, str(out), *map(str, args)]
    env = subproc.env(OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], TESTS])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=out, env=env, timeout=timeout, check=False)
    return r, time.perf_counter() - t0


def one_process(device, batch, epochs=2, dropout=False):
    """The reference: fit on one process with the global batch."""
    sys.path.insert(0, TESTS)
    from distributed_worker import dp_dataset, make_optimizer, tiny_dp_net

    from cuda_convnet.training import fit

    net = tiny_dp_net(device, dropout=dropout)
    opt = make_optimizer(net)
    x, y = dp_dataset()
    fit(net, opt, (x, y), (x[:20], y[:20]), epochs=epochs, batch_size=batch, seed=5, progress=False, log=None)
    return net


def weights(out):
    with np.load(out / "weights.npz") as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------ sharding (no torch)
@pytest.mark.parametrize("world,b", [(2, 4), (3, 4), (3, 7)])
def test_shard_order_partitions_each_global_batch(world, b):
    n = 61
    perm = np.random.default_rng([5, 1]).permutation(n)
    shards = [shard_order(perm, b, world, r) for r in range(world)]
    steps = n // (world * b)
    assert all(len(s) == steps * b for s in shards)                     # same step count on every rank
    both = np.concatenate(shards)
    assert len(np.unique(both)) == len(both)                            # no example twice in an epoch
    for k in range(steps):                                              # rank order inside global batch k
        glob = np.concatenate([s[k * b:(k + 1) * b] for s in shards])
        np.testing.assert_array_equal(glob, perm[k * world * b:(k + 1) * world * b])
    with pytest.raises(ValueError, match="rank 3"):
        shard_order(perm, b, world, 3)


def test_sharded_loader_gives_the_global_batch_views():
    """Rank r's batch k, images and augmentation offsets, is rows r*b.. of one process's batch k."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (50, 2, 2, 3)).astype(np.uint8)
    y = rng.integers(0, 5, 50).astype(np.int32)

    def aug(images, *, offset):  # the view depends on the image and its offset + index
        return images.astype(np.float32) + (offset + np.arange(len(images), dtype=np.float32))[:, None, None, None]

    world, b = 3, 4
    with BatchLoader((x, y), world * b, shuffle=True, seed=9, augment=aug, drop_last=True) as one:
        ref = list(one.iter_epoch(2))
    ranks = []
    for r in range(world):
        with ShardedBatchLoader((x, y), b, world_size=world, rank=r, seed=9, augment=aug) as ld:
            assert len(ld) == 50 // 12
            ranks.append(list(ld.iter_epoch(2)))
    assert len(ref) == len(ranks[0]) == 4
    for k, (gx, gy) in enumerate(ref):
        np.testing.assert_array_equal(np.concatenate([ranks[r][k][0] for r in range(world)]), gx)
        np.testing.assert_array_equal(np.concatenate([ranks[r][k][1] for r in range(world)]), gy)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ShardedBatchLoader((x, y), 20, world_size=3, rank=0)


def test_rank_dropout_seeds_differ_and_repeat():
    keys = [rank_dropout_seed(1234, 7, r) for r in range(4)]
    assert keys[0] == 1234                        # rank 0: the net's own key
    assert len(set(keys)) == 4
    assert keys == [rank_dropout_seed(1234, 7, r) for r in range(4)]
    assert rank_dropout_seed(1234, 8, 1) != keys[1]


def test_everything_else_works_without_torch(tmp_path):
    """With torch unimportable: the package imports, fit trains, and a distributed run asks for the extra."""
    code = f"""
import sys
sys.modules["torch"] = None          # import torch -> ImportError
import cuda_convnet.distributed as d
from cuda_convnet.training import fit
sys.path.insert(0, {TESTS!r})
from distributed_worker import tiny_dp_net, dp_dataset, make_optimizer
net = tiny_dp_net("cpu"); x, y = dp_dataset()
fit(net, make_optimizer(net), (x, y), (x, y), epochs=1, batch_size=8, progress=False, log=None)
assert net.step == 7 and not d.has_torch()
try:
    d.DataParallel(net, None)
except ImportError as e:
    print("ERR", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=subproc.env(),
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "ERR distributed training runs on torch.distributed" in r.stdout
    assert "[distributed]" in r.stdout


def test_grad_hooks_see_each_layers_gradients_in_backward_order():
    sys.path.insert(0, TESTS)
    from distributed_worker import dp_dataset, tiny_dp_net

    net = tiny_dp_net("cpu")
    calls = []

    def hook(params):
        for p in params:
            assert p.grad is not None and p.grad.shape == p.shape and np.isfinite(p.grad).all()
        calls.append([p.name for p in params])

    net.grad_hooks.append(hook)
    x, y = dp_dataset(8)
    net.gradients(x, y)
    assert calls == [["fc2.weight", "fc2.bias"], ["fc1.weight", "fc1.bias"], ["conv1.weight", "conv1.bias"]]
    grads = {p.name: p.grad.copy() for p in net.parameters()}
    net.grad_hooks.clear()
    net.gradients(x, y)
    for p in net.parameters():
        np.testing.assert_array_equal(p.grad, grads[p.name])   # the hook changes nothing


# ------------------------------------------------------------------ real ranks
@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("device,world", [("cpu", 2), ("cpu", 3), pytest.param("emu", 2, marks=pytest.mark.emu)])
def test_ranks_match_one_process_on_the_global_batch(tmp_path, device, world):
    """N ranks x batch 4 == one process x batch 4N after 2 epochs (14 or 10 steps), to float32 rounding."""
    r, _ = torchrun(tmp_path, world, "--device", device, "--batch", 4, "--epochs", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    # 256-byte buckets in backward order (a weight over the cap is a bucket of its own): six
    # all-reduces per step, fc2's first.
    assert ("buckets: [['fc2.bias'], ['fc2.weight'], ['fc1.bias'], ['fc1.weight'], ['conv1.bias'], "
            "['conv1.weight']]") in r.stdout, r.stdout
    got = weights(tmp_path)
    ref = one_process(device, 4 * world)
    assert int(got["step"]) == ref.step == 2 * (60 // (4 * world))
    init = tiny_dp_net_state(device)
    for k, v in ref.state_dict().items():
        assert np.abs(v - init[k]).max() > 1e-2, f"{k} did not train"
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=2e-6, err_msg=k)


def tiny_dp_net_state(device):
    sys.path.insert(0, TESTS)
    from distributed_worker import tiny_dp_net

    return tiny_dp_net(device).state_dict()


@pytest.mark.slow
@needs_torch
def test_repeat_runs_are_bit_identical(tmp_path):
    runs = []
    for i in range(2):
        r, _ = torchrun(tmp_path / str(i), 2, "--dropout", "--epochs", 1)
        assert r.returncode == 0, r.stdout + r.stderr
        runs.append(weights(tmp_path / str(i)))
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k], err_msg=k)


@pytest.mark.slow
@needs_torch
def test_checkpoint_written_once_and_resume_is_bit_identical(tmp_path):
    """Rank 0 alone saves; 1 epoch + resume for the 2nd == 2 epochs straight (with dropout)."""
    r, _ = torchrun(tmp_path / "straight", 2, "--dropout", "--epochs", 2, "--log-saves")
    assert r.returncode == 0, r.stdout + r.stderr
    saves = re.findall(r"rank (\d+): saving", r.stdout)
    assert saves == ["0", "0"], r.stdout                      # one write per epoch, by rank 0
    r, _ = torchrun(tmp_path / "resumed", 2, "--dropout", "--epochs", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(weights(tmp_path / "resumed")["step"]) == 7
    r, _ = torchrun(tmp_path / "resumed", 2, "--dropout", "--epochs", 2, "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert int(resumed["step"]) == 14
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)
    assert not list((tmp_path / "resumed").glob("*.tmp*"))


@pytest.mark.slow
@needs_torch
def test_a_hung_rank_times_out(tmp_path):
    """Rank 1 stops answering: rank 0's all-reduce times out after the group's 5 s and the job ends."""
    r, seconds = torchrun(tmp_path, 2, "--fail-rank", 1, "--fail-step", 2, "--fail-how", "hang", "--timeout", 5)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert seconds < 60, f"took {seconds:.0f}s"
    assert re.search(r"rank 0: error: RankFailure: rank 0/2: the gradient all-reduce failed: another rank crashed, "
                     r"was killed or did not answer within 5s", out), out
    assert "rank 1/2: stopped by the launcher" in out, out


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_every_rank(tmp_path, how):
    """Rank 1 raises (or is SIGKILLed) at step 3: the job ends non-zero, quickly, every rank saying why."""
    r, seconds = torchrun(tmp_path, 2, "--fail-rank", 1, "--fail-step", 3, "--fail-how", how, "--timeout", 30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert seconds < 60, f"took {seconds:.0f}s"                # no hang (the group's timeout is 30 s)
    assert "rank 0: done" not in out and "rank 1: done" not in out
    if how == "raise":
        assert "rank 1: error: RuntimeError: injected failure on rank 1 at step 3" in out, out
    else:
        assert re.search(r"Signal 9|SIGKILL|exitcode\s*:\s*-9", out), out
    # Rank 0 either saw the collective fail or was stopped by the launcher: one line either way.
    assert re.search(r"rank 0: error: RankFailure: rank 0/2: the gradient all-reduce failed|"
                     r"rank 0/2: stopped by the launcher", out), out
    assert not (tmp_path / "weights.npz").exists()


# ------------------------------------------------------------------ the command line
def torchrun_cli(cwd, nproc: int, *args, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "cuda_convnet", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=subproc.env(OMP_NUM_THREADS="1"),
                          timeout=timeout, check=False)


@pytest.mark.slow
@needs_torch
def test_torchrun_train_command(tmp_path):
    """`torchrun -m cuda_convnet train STORE`: global batch 8 = 2 x 4; rank 0 alone prints and writes."""
    from cli_tree import make_tree

    from cuda_convnet.net import load_checkpoint
    from cuda_convnet.net.checkpoint import read_checkpoint

    make_tree(tmp_path / "src")
    r = subproc.run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    small = ("--model", "small", "--width", "1", "--devices", "cpu", "--no-progress")
    r = torchrun_cli(tmp_path, 2, "train", "store", *small, "--batch-size", "8", "--epochs", "1", "--out", "dp")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("data-parallel: 2 ranks (gloo), global batch 8 = 2 x 4") == 1, r.stdout
    assert r.stdout.count("epoch   1/1") == 1 and r.stdout.count("final validation error") == 1, r.stdout
    lines = (tmp_path / "dp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    manifest, _ = read_checkpoint(tmp_path / "dp" / "checkpoint.npz")
    assert manifest["extra"]["world_size"] == 2 and manifest["extra"]["batch_size"] == 8
    assert load_checkpoint(tmp_path / "dp" / "checkpoint.npz").net.step == 36 // 8
    # A global batch that does not divide over the ranks: one line per rank, status 2.
    r = torchrun_cli(tmp_path, 2, "train", "store", *small, "--batch-size", "9", "--epochs", "1", "--out", "bad")
    assert r.returncode != 0
    assert r.stderr.count("error: --batch-size 9 (the global batch) does not divide over 2 ranks") == 2, r.stderr
    assert "exitcode  : 2" in r.stderr
    # --distributed outside a launcher names it.
    r = subproc.run_cli("train", "store", *small, "--distributed", "--out", "x", cwd=tmp_path)
    assert r.returncode == 2 and "torchrun --nproc-per-node N" in r.stderr, r.stderr


@pytest.mark.slow
@needs_torch
def test_torchrun_train_command_hybrid(tmp_path):
    """`torchrun -m cuda_convnet train STORE --parallel hybrid` on 2 ranks: rank 0 alone prints and
    writes metrics and a one-process checkpoint (the grouped form, gathered fc layers) that
    `predict` reads; --resume keeps the scheme and refuses another."""
    from cli_tree import make_tree, picture, write

    from cuda_convnet.net import load_checkpoint
    from cuda_convnet.net.checkpoint import read_checkpoint

    make_tree(tmp_path / "src")
    # A fourth class, so the 4 logits of fc8 split over 2 ranks.
    for split, n in (("train", 12), ("val", 4)):
        d = tmp_path / "src" / split / "dusk"
        d.mkdir()
        for i in range(n):
            write(255 - picture(i % 3, 90, 90, 500 + i), d / f"dusk_{i:02d}", 0)
    r = subproc.run_cli("prepare", "src", "store", "--size", "72", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    small = ("--model", "small", "--width", "1", "--devices", "cpu", "--no-progress")
    r = torchrun_cli(tmp_path, 2, "train", "store", *small, "--batch-size", "8", "--epochs", "1", "--out", "hy",
                     "--parallel", "hybrid")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("hybrid: 2 ranks (gloo), fc6, fc7, fc8 split over the ranks, the rest data-parallel, "
                          "global batch 8 = 2 x 4") == 1, r.stdout
    assert r.stdout.count("epoch   1/1") == 1 and r.stdout.count("final validation error") == 1, r.stdout
    entries = [json.loads(line) for line in (tmp_path / "hy" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in entries] == [1] and np.isfinite(entries[0]["train_loss"])
    manifest, _ = read_checkpoint(tmp_path / "hy" / "checkpoint.npz")
    assert manifest["extra"]["parallel"] == "hybrid" and manifest["extra"]["world_size"] == 2
    ck = load_checkpoint(tmp_path / "hy" / "checkpoint.npz")
    assert ck.net.step == 48 // 8
    assert ck.net.state_dict()["fc8.weight"].shape == (4, 128) and ck.net.state_dict()["fc6.weight"].shape[0] == 128
    r = subproc.run_cli("predict", "hy/checkpoint.npz", str(next((tmp_path / "src" / "val" / "moss").iterdir())),
                        cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = torchrun_cli(tmp_path, 2, "train", "store", "--no-progress", "--epochs", "2", "--out", "hy", "--resume",
                     "--parallel", "data")
    assert r.returncode != 0 and "--parallel data (the run was trained with --parallel hybrid)" in r.stderr, r.stderr
    r = torchrun_cli(tmp_path, 2, "train", "store", "--no-progress", "--epochs", "2", "--out", "hy", "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len((tmp_path / "hy" / "metrics.jsonl").read_text().splitlines()) == 2
    # One process continues it too (the grouped form the checkpoint records).
    r = subproc.run_cli("train", "store", "--no-progress", "--epochs", "3", "--out", "hy", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load_checkpoint(tmp_path / "hy" / "checkpoint.npz").net.step == 3 * 48 // 8


# ------------------------------------------------------------------ bench/scaling_bench.py
BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def _scaling():
    sys.path.insert(0, str(BENCH))
    import scaling_bench

    return scaling_bench


def test_scaling_model_arithmetic():
    """The 8-GPU model's parts: AlexNet's gradient size, the ring all-reduce, the overlap rule."""
    from types import SimpleNamespace as L

    sb = _scaling()
    params = sb.alexnet_layer_params()
    assert sum(params.values()) == 60_965_224
    assert sb.allreduce_seconds(243.86e6, 1) == 0.0
    assert sb.allreduce_seconds(243.86e6, 8, 370e9) == pytest.approx(2 * 7 / 8 * 243.86e6 / 370e9)
    # Forward 10 ms; backward: fc8..fc6 1 ms each, then conv5..conv1 5 ms each; update 0.5 ms.
    fcs, convs = ["fc8", "fc7", "fc6"], [f"conv{i}" for i in range(5, 0, -1)]
    launches = ([L(layer="conv1", direction="fwd", seconds=0.010)]
                + [L(layer=x, direction="wgrad", seconds=0.001) for x in fcs]
                + [L(layer=x, direction="wgrad", seconds=0.005) for x in convs]
                + [L(layer="sgd", direction="update", seconds=0.0005)])
    slow = 1e9  # a link so slow that communication dominates: 243.9 MB * 1.75 / 1 GB/s = 427 ms
    p = sb.predict_step(8, launches, bus_bandwidth=slow)
    comm = sb.allreduce_seconds(4 * sum(params.values()), 8, slow) * 1e3
    assert p["compute"] == pytest.approx(38.5)
    assert p["allreduce"] == pytest.approx(comm)
    assert p["step_serial"] == pytest.approx(38.5 + comm)
    # With overlap the buckets start at fc8's, fc7's, fc6's and conv1's completion and queue on
    # the link: the step ends when the last bucket does (fc8's bucket starts at 11 ms).
    assert 10 + 1 + comm + 0.5 <= p["step_overlap"] < p["step_serial"]
    fast = sb.predict_step(8, launches, bus_bandwidth=370e9)
    assert fast["efficiency_overlap"] > fast["efficiency_serial"] > 0.9


@pytest.mark.slow
@needs_torch
def test_scaling_bench_measures_ranks(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "scaling_bench.py"), "--ranks", "1,2", "--steps", "1",
                        "--batch", "4", "--no-model"], capture_output=True, text=True, cwd=tmp_path,
                       env=subproc.env(OMP_NUM_THREADS="1"), timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if re.match(r"\| [12] \|", line)]
    assert [int(x[0]) for x in rows] == [1, 2], r.stdout
    for cells in rows:
        step_ms, ips = float(cells[1]), float(cells[2])
        assert step_ms > 0 and ips == pytest.approx(int(cells[0]) * 4 / step_ms * 1e3, rel=0.02)
    assert float(rows[1][4]) > 0           # the 2-rank all-reduce took time


# ------------------------------------------------------------------ the hybrid scheme
def hybrid_reference(device, batch, epochs=2, dropout=False):
    """fit on one process with the global batch, for the hybrid worker's net; -> (net, opt, history)."""
    sys.path.insert(0, TESTS)
    from distributed_worker import dp_dataset, hybrid_net, make_optimizer

    from cuda_convnet.training import fit

    net = hybrid_net(device, dropout=dropout)
    opt = make_optimizer(net)
    x, y = dp_dataset()
    hist = fit(net, opt, (x, y), (x[:20], y[:20]), epochs=epochs, batch_size=batch, seed=5, progress=False,
               log=None)
    return net, opt, hist


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("device,world,dropout", [("cpu", 2, True), ("cpu", 3, False),
                                                  pytest.param("emu", 2, True, marks=pytest.mark.emu)])
def test_hybrid_matches_one_process_on_the_global_batch(tmp_path, device, world, dropout):
    """fit with HybridParallel (trunk data-parallel, fc1 and fc2 sliced, the head's dropout
    on): after 2 epochs the net equals one process's with the global batch, to float32
    rounding, and so does every epoch's train loss (the global batch's on every rank)."""
    sys.path.insert(0, TESTS)
    from distributed_worker import hybrid_net

    from cuda_convnet.net.checkpoint import read_manifest

    args = ["--dropout"] if dropout else []
    r, _ = torchrun(tmp_path, world, "--hybrid", "--device", device, "--batch", 4, "--epochs", 2, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    got = weights(tmp_path)
    net, _, hist = hybrid_reference(device, 4 * world, dropout=dropout)
    init = hybrid_net(device).state_dict()
    assert int(got["step"]) == net.step == 2 * (60 // (4 * world))
    saved = read_manifest(tmp_path / "checkpoint.npz")["extra"]["history"]
    for k in ("train_loss", "train_top1_err", "val_top1_err", "val_loss"):
        np.testing.assert_allclose([h[k] for h in saved], [h[k] for h in hist], rtol=1e-5, atol=1e-7, err_msg=k)
    for k, v in net.state_dict().items():
        assert np.abs(v - init[k]).max() > 1e-2, f"{k} did not train"
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=2e-6, err_msg=k)


@pytest.mark.slow
@needs_torch
def test_hybrid_dropout_masks_are_the_global_batch_masks(tmp_path):
    """With dropout on, the hybrid run matches the one-process run with dropout (its masks)
    and not the one without: the masks are those of the global batch, not per-rank ones."""
    r, _ = torchrun(tmp_path, 2, "--hybrid", "--batch", 4, "--epochs", 1, "--dropout")
    assert r.returncode == 0, r.stdout + r.stderr
    got = weights(tmp_path)
    with_drop, _, _ = hybrid_reference("cpu", 8, epochs=1, dropout=True)
    without, _, _ = hybrid_reference("cpu", 8, epochs=1, dropout=False)
    np.testing.assert_allclose(got["fc1.weight"], with_drop.state_dict()["fc1.weight"], rtol=1e-5, atol=2e-6)
    assert np.abs(got["fc1.weight"] - without.state_dict()["fc1.weight"]).max() > 1e-3


@pytest.mark.slow
@needs_torch
def test_hybrid_checkpoint_is_the_one_process_state_and_resumes_bit_identically(tmp_path):
    """Rank 0's checkpoint holds the whole net and velocities (gathered slices), loads in one
    process, and equals what the ranks hold; 1 epoch + resume == 2 epochs straight, bitwise."""
    from cuda_convnet.net import load_checkpoint

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    r, _ = torchrun(straight, 2, "--hybrid", "--dropout", "--epochs", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    ck = load_checkpoint(straight / "checkpoint.npz", devices=("cpu",))
    state, vel = ck.net.state_dict(), ck.optimizer.state_dict()["velocities"]
    assert ck.net.step == 14 and set(state) == set(vel) == {"conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias",
                                                           "fc2.weight", "fc2.bias"}
    for rank in range(2):
        with np.load(straight / f"slices{rank}.npz") as z:
            held = {k: z[k] for k in z.files}
        for name in state:
            rows = slice(None) if name.startswith("conv") else slice(rank * len(state[name]) // 2,
                                                                      (rank + 1) * len(state[name]) // 2)
            np.testing.assert_array_equal(held[name], state[name][rows], err_msg=f"rank {rank} {name}")
            np.testing.assert_array_equal(held[f"v:{name}"], vel[name][rows], err_msg=f"rank {rank} v {name}")
    assert np.abs(vel["fc2.weight"]).max() > 0
    # One process predicts with it.
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    assert np.allclose(ck.net.predict(x).sum(axis=1), 1, atol=1e-5)

    r, _ = torchrun(resumed, 2, "--hybrid", "--dropout", "--epochs", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    r, _ = torchrun(resumed, 2, "--hybrid", "--dropout", "--epochs", 2, "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = weights(straight), weights(resumed)
    assert int(b["step"]) == 14
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@needs_torch
def test_hybrid_rejects_what_it_cannot_split():
    from cuda_convnet.distributed import ProcessGroup
    from cuda_convnet.distributed.hybrid import HybridParallel

    sys.path.insert(0, TESTS)
    from distributed_worker import hybrid_net, tiny_dp_net

    group = ProcessGroup(rank=0, world_size=3, local_rank=0, backend="gloo", timeout_s=5.0)
    net = tiny_dp_net("cpu", units=12, classes=6)
    with pytest.raises(ValueError, match="'fc2' has 5 units, which do not split over 3 ranks"):
        HybridParallel(tiny_dp_net("cpu", units=12, classes=5), group, model_parallel=("fc1", "fc2"))
    with pytest.raises(ValueError, match="fc layer 'fc2' of the head is not named"):
        HybridParallel(net, group, model_parallel=("fc1",))
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        HybridParallel(net, group, model_parallel=("fc9",))
    with pytest.raises(ValueError, match=r"states no per-layer parallel choice"):
        HybridParallel(net, group)
    bad = hybrid_net("cpu")
    bad.parallel["fc1"] = "pipeline"
    with pytest.raises(ValueError, match="layer 'fc1' is 'pipeline', expected 'data' or 'model'"):
        HybridParallel(bad, group)
    pooled = hybrid_net("cpu")
    pooled.parallel["conv1"] = "model"
    with pytest.raises(ValueError, match=r"layer 'conv1' \(conv2d\) cannot be split over the ranks"):
        HybridParallel(pooled, group)
    hp = HybridParallel(hybrid_net("cpu", dropout=True), group)   # the stated choice; dropout in the head
    assert [p.shape for p in hp.parameters()] == [(6, 3, 3, 3), (6,), (4, 96), (4,), (2, 12), (2,)]


def test_models_state_the_2014_choice():
    """tower_net's nets say conv "data", fc "model" (cuda-convnet2's hybrid), both forms."""
    from cuda_convnet import models

    net = models.small_net(10, towers=1, devices=("cpu",), width=1)
    assert net.parallel == {"conv1": "data", "conv2": "data", "conv3": "data", "conv4": "data", "conv5": "data",
                            "fc6": "model", "fc7": "model", "fc8": "model"}
    cfg = models.alexnet_config()
    assert (cfg.conv_parallel, cfg.fc_parallel) == ("data", "model")
    two = models.digits_net(towers=2, devices=("cpu", "cpu"))
    assert two.parallel["conv3/1"] == "data" and two.parallel["fc7/0"] == "model" and two.parallel["fc8"] == "model"
    from dataclasses import replace

    with pytest.raises(ValueError, match="fc_parallel must be one of"):
        models.tower_net(replace(models.digits_config(), fc_parallel="pipe"), towers=1)
