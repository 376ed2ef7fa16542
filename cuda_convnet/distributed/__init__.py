"""Data-parallel training over several processes, GPUs or machines, on torch.distributed.

The engine is torch.distributed end to end: `torchrun` launches the ranks and runs their
rendezvous (one machine or several), NCCL carries the collectives between GPUs and gloo
between CPU processes (the `cpu` and `emu` devices), through one code path. It is an
optional extra, `pip install ".[distributed]"`; nothing else in cuda_convnet imports
torch, and this package imports it only when a distributed run starts.

    group = init_from_env("cpu")         # RANK, WORLD_SIZE, MASTER_ADDR/PORT from torchrun
    dp = DataParallel(net, group)        # per-rank dropout key; gradient all-reduce hooks
    fit(net, opt, train, val, batch_size=global_batch // group.world_size, distributed=dp)

Modules, one job each: group (process group from the launcher's environment, timeouts),
sharding (the epoch-seeded partition of the training set), reducer (bucketed gradient
all-reduce started from the backward pass), seeds (per-rank dropout keys), data_parallel
(what `fit` calls), hybrid (cuda-convnet2's scheme: a data-parallel trunk, a model-parallel
fully connected head; `fit(..., distributed=HybridParallel(net, group))`), rank (what both
schemes give `fit`).
"""
from __future__ import annotations

from ._torch import has_torch, require_torch
from .group import (
    DEFAULT_TIMEOUT_S,
    ProcessGroup,
    RankFailure,
    backend_for,
    init_from_env,
    launched_by_torchrun,
)
from .seeds import apply_rank_seeds, rank_dropout_seed
from .sharding import ShardedBatchLoader, shard_order


def __getattr__(name):
    # DataParallel, HybridParallel and GradientReducer need torch at construction only;
    # importing them lazily keeps `import cuda_convnet.distributed` free of torch.
    if name == "DataParallel":
        from .data_parallel import DataParallel

        return DataParallel
    if name == "HybridParallel":
        from .hybrid import HybridParallel

        return HybridParallel
    if name == "GradientReducer":
        from .reducer import GradientReducer

        return GradientReducer
    raise AttributeError(name)


__all__ = ["DEFAULT_TIMEOUT_S", "DataParallel", "GradientReducer", "HybridParallel", "ProcessGroup", "RankFailure",
           "ShardedBatchLoader", "apply_rank_seeds", "backend_for", "has_torch", "init_from_env",
           "launched_by_torchrun", "rank_dropout_seed", "require_torch", "shard_order"]
