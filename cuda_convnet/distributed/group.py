"""The process group: who this process is (rank, world size) and the collective backend.

torchrun (`python -m torch.distributed.run`) starts one process per rank and exports
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (plus TORCHELASTIC_RUN_ID);
`init_from_env` reads them and joins the group through the launcher's TCP store
(init_method "env://"). The backend follows the devices: NCCL for cuda, gloo for the
host backends (cpu, emu), the same code path otherwise.

Every collective of the group has a timeout (`timeout_s`, default 60 s): a rank that
stops answering (killed, hung, unreachable machine) makes the others raise instead of
waiting forever. Under torchrun a rank that exits non-zero also makes the launcher stop
the others (SIGTERM), which `install_stop_handler` turns into a one-line message.
"""
from __future__ import annotations

import datetime
import os
import signal
import sys
from dataclasses import dataclass

from ._torch import require_torch

DEFAULT_TIMEOUT_S = 60.0
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RankFailure(RuntimeError):
    """A collective failed: another rank crashed, was killed, or did not answer in time."""


def collective_failure(group_rank: int, world_size: int, timeout_s: float, what: str, err: BaseException):
    """A RankFailure naming this rank, the collective, and the engine's first line."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return RankFailure(f"rank {group_rank}/{world_size}: {what} failed: another rank crashed, was killed or did "
                       f"not answer within {timeout_s:g}s ({first})")


def launched_by_torchrun() -> bool:
    """True when the launcher's variables are set (torchrun, or a manual env:// setup)."""
    return all(k in os.environ for k in _ENV)


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    local_rank: int
    backend: str          # "gloo" or "nccl"
    timeout_s: float

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics and curves, and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        _, dist = require_torch()
        dist.barrier()

    def destroy(self) -> None:
        _, dist = require_torch()
        if dist.is_initialized():
            dist.destroy_process_group()


def backend_for(device_kind: str) -> str:
    """NCCL for cuda devices, gloo for the host backends (cpu, emu)."""
    if device_kind not in ("cpu", "emu", "cuda"):
        raise ValueError(f"unknown device kind {device_kind!r}")
    return "nccl" if device_kind == "cuda" else "gloo"


def init_from_env(device_kind: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> ProcessGroup:
    """Join the group described by torchrun's environment variables.

    Raises RuntimeError when the variables are missing (not launched by torchrun) and
    ImportError when torch is not installed. With device_kind "cuda" the process's GPU is
    cuda:LOCAL_RANK (one GPU per rank).
    """
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise RuntimeError(f"distributed training needs the launcher's environment ({', '.join(missing)} not "
                           "set): start it with `torchrun --nproc-per-node N -m cuda_convnet train ...`")
    if not (timeout_s > 0):
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    _, dist = require_torch()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    backend = backend_for(device_kind)
    kw = {}
    if backend == "nccl":
        import torch

        torch.cuda.set_device(local)
        kw["device_id"] = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=float(timeout_s)), **kw)
    return ProcessGroup(rank, world, local, backend, float(timeout_s))


def install_stop_handler(group: ProcessGroup) -> None:
    """On SIGTERM (the launcher stopping the job because another rank failed): one line on
    stderr naming this rank, then exit status 1 (not a traceback from inside a collective)."""

    def stop(signum, frame):
        print(f"cuda-convnet train: rank {group.rank}/{group.world_size}: stopped by the launcher "
              f"(signal {signum}): another rank failed", file=sys.stderr, flush=True)
        os._exit(1)

    signal.signal(signal.SIGTERM, stop)
