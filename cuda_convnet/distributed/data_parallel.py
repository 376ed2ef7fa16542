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

from .rank import Rank
from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .seeds import apply_rank_seeds


class DataParallel(Rank):
    def __init__(self, net, group, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        super().__init__(net, group)
        self.reducer = GradientReducer(net, group.world_size, bucket_bytes=bucket_bytes)
        apply_rank_seeds(net, group.rank)

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
        self._reduce_and_update(net, optimizer)
        return stats

    def sync_state(self, optimizer) -> None:
        """Every replica starts from rank 0's parameters and velocities, whatever each process
        built or loaded."""
        self.broadcast_state(optimizer)

    def gather_state(self, optimizer) -> None:
        """Nothing to gather: every replica holds the whole net (the Rank interface)."""
