"""Deterministic, epoch-seeded sharding of a training set over the ranks.

Epoch e visits the examples in the order of one process,
`np.random.default_rng([seed, e]).permutation(N)` (data.loader.BatchLoader.order), cut
into global batches of B = world_size * b examples; the last partial global batch is
dropped, the same rule on every rank, so every rank runs N // B steps per epoch. Global
batch k is split in rank order: rank r trains on its examples r*b .. (r+1)*b - 1. So

* the ranks' shards of an epoch are disjoint and no example is seen twice per epoch;
* the union of the ranks' batch k is exactly batch k of a one-process run with batch B
  and the same seed;
* image j of rank r's batch k is augmented at the offset it has in that global batch
  (e*N + k*B + r*b + j), so augment.TrainAugment (a pure function of seed, offset and
  index) gives each image the view the one-process run gives it.
"""
from __future__ import annotations

import numpy as np

from ..data.loader import BatchLoader


def shard_order(permutation: np.ndarray, batch_size: int, world_size: int, rank: int) -> np.ndarray:
    """Rank `rank`'s examples, in visiting order, from one epoch's global `permutation`.

    batch_size: examples per rank per step (b). Returns (N // (b * world_size)) * b indices.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    b, w = int(batch_size), int(world_size)
    steps = len(permutation) // (b * w)
    return np.asarray(permutation[: steps * b * w]).reshape(steps, w, b)[:, rank, :].reshape(-1)


class ShardedBatchLoader(BatchLoader):
    """BatchLoader over one rank's shard: `batch_size` is the per-rank batch b.

    len() is the number of steps per epoch, N // (b * world_size), equal on every rank.
    Raises ValueError when the dataset holds fewer examples than one global batch.
    """

    def __init__(self, source, batch_size: int, *, world_size: int, rank: int, seed: int = 0, augment=None,
                 shuffle: bool = True, **kw):
        super().__init__(source, batch_size, shuffle=shuffle, seed=seed, augment=augment, drop_last=True, **kw)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world size {world_size} is not a valid rank")
        self.world_size, self.rank = int(world_size), int(rank)
        self.global_batch = self.batch_size * self.world_size
        if self.num_examples < self.global_batch:
            raise ValueError(f"{self.num_examples} examples are fewer than one global batch "
                             f"({self.world_size} ranks x {self.batch_size})")

    def __len__(self) -> int:
        return self.num_examples // self.global_batch

    def order(self, epoch: int) -> np.ndarray:
        return shard_order(super().order(epoch), self.batch_size, self.world_size, self.rank)

    def _augment(self, x, offset: int):
        # BatchLoader passes epoch*N + k*b for this rank's batch k; the image's offset in the
        # global batch is epoch*N + k*B + rank*b (k*b < N, so the division recovers e and k).
        n, b = self.num_examples, self.batch_size
        epoch, k = divmod(offset, n)
        k //= b
        return super()._augment(x, epoch * n + k * self.global_batch + self.rank * b)
