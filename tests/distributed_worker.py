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
    Conv,
    Dropout,
    Flatten,
    FullyConnected,
    MaxPool,
    Net,
    ReLU,
    SoftmaxCrossEntropy,
)


def tiny_dp_net(device: str, seed: int = 3, dropout: bool = False, units: int = 16, classes: int = 5) -> Net:
    """A conv -> pool -> fc -> fc net on 8x8x3 inputs (a few thousand parameters)."""
    layers = [Conv("conv1", "data", filters=6, size=3, stride=1, padding=1, weight_std=0.3, bias_init=0.1),
              ReLU("relu1", "conv1"), MaxPool("pool1", "relu1", size=2, stride=2), Flatten("flat", "pool1"),
              FullyConnected("fc1", "flat", units=units, weight_std=0.2, bias_init=0.1), ReLU("relu2", "fc1")]
    top = "relu2"
    if dropout:
        layers.append(Dropout("drop", top, p=0.5))
        top = "drop"
    layers += [FullyConnected("fc2", top, units=classes, weight_std=0.2), SoftmaxCrossEntropy("loss", "fc2")]
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
                   help="the hybrid scheme: fc1, fc2 model-parallel (units 12, 6 classes), a plain loop")
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


def hybrid(a, group) -> int:
    """fc1 and fc2 model-parallel, the trunk data-parallel; a.epochs epochs of the sharded data."""
    from cuda_convnet.distributed.hybrid import HybridParallel
    from cuda_convnet.distributed.sharding import ShardedBatchLoader

    net = tiny_dp_net(a.device, units=12, classes=6)
    hp = HybridParallel(net, group, model_parallel=("fc1", "fc2"), bucket_bytes=a.bucket_bytes)
    opt = make_optimizer_for(hp.parameters())
    x, y = dp_dataset(a.n)
    losses = []
    with ShardedBatchLoader((x, y), a.batch, world_size=group.world_size, rank=group.rank, seed=5) as loader:
        for epoch in range(a.epochs):
            for xb, yb in loader.iter_epoch(epoch):
                losses.append(hp.train_step(np.ascontiguousarray(xb, dtype=np.float32), yb, opt)["loss"])
    state = hp.full_state_dict()
    if group.is_main:
        np.savez(os.path.join(a.out, "weights.npz"), step=hp.trunk.step, losses=np.array(losses), **state)
    print(f"rank {group.rank}: done at step {hp.trunk.step}", flush=True)
    group.destroy()
    return 0


def make_optimizer_for(params):
    return SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


if __name__ == "__main__":
    sys.exit(main())
