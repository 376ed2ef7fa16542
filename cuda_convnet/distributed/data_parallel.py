"""DataParallel: what `training.fit` needs to run one replica of a data-parallel job.

    group = init_from_env(device_kind)                 # torchrun's RANK, WORLD_SIZE, ...
    dp = DataParallel(net, group)                      # hooks the gradient all-reduce
    fit(net, opt, train, val, batch_size=B // group.world_size, distributed=dp, ...)

Each rank holds a full replica (one or two towers), trains on its shard of every global
batch (sharding.py), averages the gradients with the others during the backward pass
(reducer.py), and applies the same fused SGD update; so the replicas stay bit-identical
and the run is the one-process run on the global batch up to float32 summation order.
Rank 0 alone writes checkpoints, metrics and curves and shows progress.
"""
from __future__ import annotations

import numpy as np

from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .seeds import apply_rank_seeds
from .sharding import ShardedBatchLoader


class DataParallel:
    def __init__(self, net, group, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        from ._torch import require_torch

        self.torch, self.dist = require_torch()
        self.net, self.group = net, group
        self.rank, self.world_size = group.rank, group.world_size
        self.reducer = GradientReducer(net, group.world_size, bucket_bytes=bucket_bytes)
        apply_rank_seeds(net, group.rank)

    @property
    def is_main(self) -> bool:
        return self.group.is_main

    def loader(self, source, batch_size: int, *, seed: int, augment=None) -> ShardedBatchLoader:
        """This rank's loader; batch_size is the per-rank batch."""
        return ShardedBatchLoader(source, batch_size, world_size=self.world_size, rank=self.rank, seed=seed,
                                  augment=augment)

    def train_step(self, x, labels, optimizer) -> dict:
        """Net.train_step with the gradients averaged over the ranks before the update.

        Returns this rank's batch statistics ({"loss", "top1_err", "top5_err"}).
        """
        net = self.net
        try:
            stats = net.gradients(x, labels, train=True)
        except BaseException:
            self.reducer.reset()
            raise
        try:
            self.reducer.finish()
        except RuntimeError as e:
            raise self._failure("the gradient all-reduce", e) from e
        optimizer.step()
        net.synchronize()
        net.step += 1
        return stats

    def _failure(self, what, err):
        from .group import collective_failure

        return collective_failure(self.rank, self.world_size, self.group.timeout_s, what, err)

    def sync_state(self, optimizer) -> None:
        """Broadcast rank 0's parameters and optimizer velocities to every rank (one flat
        array in the net's dtype, through the host): the replicas start from one state
        whatever each process built or loaded."""
        params = self.net.parameters()
        arrays = [p.device.to_host(p.data) for p in params] + [p.device.to_host(optimizer.velocities[p.name])
                                                               for p in params]
        flat = np.concatenate([np.asarray(a, dtype=self.net.dtype).reshape(-1) for a in arrays])
        t = self.torch.from_numpy(flat)
        if self.group.backend == "nccl":
            t = t.cuda()
        try:
            self.dist.broadcast(t, src=0)
        except RuntimeError as e:
            raise self._failure("the broadcast of rank 0's parameters", e) from e
        flat = t.cpu().numpy()
        state, vel, i = {}, {}, 0
        for k, a in enumerate(arrays):
            n = int(np.prod(a.shape))
            part = flat[i:i + n].reshape(a.shape).astype(a.dtype)
            i += n
            p = params[k % len(params)]
            (state if k < len(params) else vel)[p.name] = part
        self.net.load_state_dict(state)
        optimizer.load_state_dict({**optimizer.hyperparameters(), "velocities": vel})

    def sum_over_ranks(self, values) -> np.ndarray:
        """Elementwise sum of a float vector over the ranks (epoch statistics)."""
        t = self.torch.tensor(np.asarray(values, dtype=np.float64))
        if self.group.backend == "nccl":
            t = t.cuda()
        try:
            self.dist.all_reduce(t, op=self.dist.ReduceOp.SUM)
        except RuntimeError as e:
            raise self._failure("the all-reduce of the epoch's statistics", e) from e
        return t.cpu().numpy()

    def barrier(self) -> None:
        self.dist.barrier()
