"""What every scheme's rank gives `training.fit` besides its train_step: its role (rank 0
writes), its loader, the epoch statistics' sum over the ranks, and the broadcast of rank
0's parameters and velocities that starts (or resumes) every rank from one state.

DataParallel (data_parallel.py) and HybridParallel (hybrid.py) are Ranks; fit calls, in order:
sync_state(opt) once, loader(...), then per epoch train_step(x, y, opt) per batch,
sum_over_ranks(...), and gather_state(opt) before the validation pass and the checkpoint.
"""
from __future__ import annotations

import numpy as np

from .group import collective_failure
from .sharding import ShardedBatchLoader


class Rank:
    def __init__(self, net, group):
        from ._torch import require_torch

        self.torch, self.dist = require_torch()
        self.net, self.group = net, group
        self.rank, self.world_size = group.rank, group.world_size

    @property
    def is_main(self) -> bool:
        return self.group.is_main

    def loader(self, source, batch_size: int, *, seed: int, augment=None) -> ShardedBatchLoader:
        """This rank's loader; batch_size is the per-rank batch."""
        return ShardedBatchLoader(source, batch_size, world_size=self.world_size, rank=self.rank, seed=seed,
                                  augment=augment)

    def _failure(self, what, err):
        return collective_failure(self.rank, self.world_size, self.group.timeout_s, what, err)

    def _reduce_and_update(self, net, optimizer) -> None:
        """The tail of every scheme's step: wait for the last gradient buckets, apply the
        fused SGD update (the same on every rank), wait for it, and count the step."""
        try:
            self.reducer.finish()
        except RuntimeError as e:
            raise self._failure("the gradient all-reduce", e) from e
        optimizer.step(synchronize=False)
        net.synchronize()
        net.step += 1

    def broadcast_state(self, optimizer) -> None:
        """Set `self.net` and `optimizer` (built on the net's parameters) to rank 0's
        parameters and velocities (one flat array in the net's dtype, through the host)."""
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
