"""The optional engine: torch.distributed, imported only when a distributed run asks for it."""
from __future__ import annotations


def require_torch():
    """(torch, torch.distributed); ImportError saying how to install them when missing."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError as e:
        raise ImportError("distributed training runs on torch.distributed, which is not installed: "
                          "pip install 'cuda_convnet[distributed]' (or pip install torch)") from e
    if not dist.is_available():
        raise ImportError("this torch build has no torch.distributed support")
    return torch, dist


def has_torch() -> bool:
    try:
        require_torch()
    except ImportError:
        return False
    return True
