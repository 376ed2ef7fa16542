"""Per-rank randomness: dropout masks differ across ranks and are reproducible.

A Net's dropout masks are Philox draws keyed by `net.dropout_seed` at a counter of
(step, subsequence) (net/layers.py Context). Data-parallel replicas share the weights' seed,
so without a change every rank would drop the same units of its different examples.
`rank_dropout_seed` folds the rank into the key: rank 0 keeps the net's own key (a
1-rank run is the ordinary run), rank r > 0 gets SeedSequence([seed, 0xD80F, r]); all
are functions of (seed, rank), so a repeat or resumed run with the same world size draws
the same masks. Augmentation needs no per-rank key: every image's draws are a function
of (seed, its global offset), and the sharded loader gives each rank's images their
offsets in the global batch (see sharding.py).
"""
from __future__ import annotations

import numpy as np


def rank_dropout_seed(net_dropout_seed: int, seed: int, rank: int) -> int:
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    if rank == 0:
        return int(net_dropout_seed)
    return int(np.random.SeedSequence([int(seed), 0xD80F, int(rank)]).generate_state(1, np.uint64)[0])


def apply_rank_seeds(net, rank: int) -> None:
    """Give `net` (a replica on `rank`) its rank's dropout key."""
    net.dropout_seed = rank_dropout_seed(net.dropout_seed, net.seed, rank)
