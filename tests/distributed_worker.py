"""One rank of a data-parallel run, launched by tests/test_distributed.py through torchrun.

    python -m torch.distributed.run --nproc-per-node N tests/distributed_worker.py OUT --device cpu ...

Trains `tiny_dp_net` on `dp_dataset` with fit(..., distributed=DataParallel(...)) and writes,
on rank 0, OUT/weights.npz (the final parameters) and OUT/checkpoint.npz (fit's). --fail-rank
R --fail-step S --fail-how raise|kill|hang makes rank R raise, SIGKILL itself or stop answering
before step S.
The net and the data are also built by the test process for the one-process reference.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

from cuda_convnet import SGD
from cuda_convnet.net import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool,
    Net,
    ReLU,
    SoftmaxCrossEntropy,
)


def tiny_dp_net(device: str, seed: int = 3, dropout: bool = False, units: int = 16, classes: int = 5) -> Net:
    """A conv -> pool -> fc -> fc net on 8x8x3 inputs (a few thousand parameters)."""
    layers = [Conv2d("conv1", "data", filters=6, size=3, stride=1, padding=1, weight_std=0.3, bias_init=0.1),
              ReLU("relu1", "conv1"), MaxPool("pool1", "relu1", size=2, stride=2), Flatten("flat", "pool1"),
              Linear("fc1", "flat", units=units, weight_std=0.2, bias_init=0.1), ReLU("relu2", "fc1")]
    top = "relu2"
    if dropout:
        layers.append(Dropout("drop", top, p=0.5))
        top = "drop"
    layers += [Linear("fc2", top, units=classes, weight_std=0.2), SoftmaxCrossEntropy("loss", "fc2")]
    return Net(layers, input_shape=(8, 8, 3), devices=(device,), seed=seed)


def dp_dataset(n: int = 60, seed: int = 11):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 5, n).astype(np.int32)
    return x, y


def make_optimizer(net):
    return make_optimizer_for(net.parameters())


def main(argv=None):
    from cuda_convnet.distributed import DataParallel, init_from_env
    from cuda_convnet.distributed.group import install_stop_handler
    from cuda_convnet.training import fit

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4, help="per-rank batch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--dropout", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--bucket-bytes", type=int, default=256)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--log-saves", action="store_true", help="print a line each time a rank writes a checkpoint")
    p.add_argument("--hybrid", action="store_true",
                   help="the hybrid scheme: fc1, fc2 model-parallel (units 12, 6 classes)")
    p.add_argument("--fail-rank", type=int, default=-1)
    p.add_argument("--fail-step", type=int, default=0)
    p.add_argument("--fail-how", choices=("raise", "kill", "hang"), default="raise")
    a = p.parse_args(argv)

    group = init_from_env(a.device, timeout_s=a.timeout)
    install_stop_handler(group)
    if a.hybrid:
        return hybrid(a, group)
    net = tiny_dp_net(a.device, dropout=a.dropout)
    opt = make_optimizer(net)
    dp = DataParallel(net, group, bucket_bytes=a.bucket_bytes)
    if group.rank == a.fail_rank:
        step = dp.train_step

        def failing_step(x, y, o):
            if net.step == a.fail_step:
                if a.fail_how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if a.fail_how == "hang":
                    time.sleep(3600)
                raise RuntimeError(f"injected failure on rank {group.rank} at step {net.step}")
            return step(x, y, o)

        dp.train_step = failing_step
    if a.log_saves:
        import cuda_convnet.training as training

        save = training.save_checkpoint

        def logged_save(*args, **kw):
            print(f"rank {group.rank}: saving", flush=True)
            save(*args, **kw)

        training.save_checkpoint = logged_save
    x, y = dp_dataset(a.n)
    ckpt = os.path.join(a.out, "checkpoint.npz")
    try:
        fit(net, opt, (x, y), (x[:20], y[:20]), epochs=a.epochs, batch_size=a.batch, seed=5, checkpoint=ckpt,
            resume=ckpt if a.resume else None, progress=False, log=None, distributed=dp)
    except Exception as e:  # noqa: BLE001 - one line per rank, as the CLI does
        print(f"rank {group.rank}: error: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
        return 1
    if group.is_main:
        np.savez(os.path.join(a.out, "weights.npz"), step=net.step, **net.state_dict())
        print(f"buckets: {[[p.name for p in b.params] for b in dp.reducer.buckets]}", flush=True)
    print(f"rank {group.rank}: done at step {net.step}", flush=True)
    group.destroy()
    return 0


def hybrid_net(device: str, dropout: bool = False) -> Net:
    """tiny_dp_net with 12 hidden units and 6 classes (they split over 2 and 3 ranks), its
    per-layer choice stated as a model definition states it: conv data, fc model."""
    net = tiny_dp_net(device, units=12, classes=6, dropout=dropout)
    net.parallel = {"conv1": "data", "fc1": "model", "fc2": "model"}
    return net


def hybrid(a, group) -> int:
    """fit(..., distributed=HybridParallel(net, group)): the trunk data-parallel, fc1 and fc2
    sliced. Rank 0 writes weights.npz (the net after fit); every rank writes
    slices<rank>.npz (the parameters and velocities it holds: trunk and its rows)."""
    from cuda_convnet.distributed.hybrid import HybridParallel
    from cuda_convnet.training import fit

    net = hybrid_net(a.device, dropout=a.dropout)
    opt = make_optimizer(net)
    hp = HybridParallel(net, group, bucket_bytes=a.bucket_bytes)
    x, y = dp_dataset(a.n)
    ckpt = os.path.join(a.out, "checkpoint.npz")
    try:
        fit(net, opt, (x, y), (x[:20], y[:20]), epochs=a.epochs, batch_size=a.batch, seed=5, checkpoint=ckpt,
            resume=ckpt if a.resume else None, progress=False, log=None, distributed=hp)
    except Exception as e:  # noqa: BLE001 - one line per rank, as the CLI does
        print(f"rank {group.rank}: error: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
        return 1
    held = {p.name: p.device.to_host(p.data) for p in hp.parameters()}
    vel = {f"v:{p.name}": p.device.to_host(hp.local_optimizer.velocities[p.name]) for p in hp.parameters()}
    np.savez(os.path.join(a.out, f"slices{group.rank}.npz"), **held, **vel)
    if group.is_main:
        np.savez(os.path.join(a.out, "weights.npz"), step=net.step, **net.state_dict())
    print(f"rank {group.rank}: done at step {net.step}", flush=True)
    group.destroy()
    return 0


def make_optimizer_for(params):
    return SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


if __name__ == "__main__":
    sys.exit(main())
