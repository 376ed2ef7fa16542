"""The `emu` and `cuda` backends: one class over the compiled launchers of csrc/.

The same Python drives both: `emu` hands NumPy arrays' host pointers to cuda_convnet._emu
(the kernels compiled by g++ against the SIMT emulator, run synchronously on the CPU);
`cuda` hands CuPy arrays' device pointers to cuda_convnet._C (nvcc) with CuPy's current
stream. Arguments are validated by cuda_convnet.checks (the same checks as the reference)
before any pointer is touched. The kernels compute in float32 only.

Each op family is a mixin in kernel_ops/<family>.py, mirroring csrc/<family>.cuh.
"""
from __future__ import annotations

from .kernel_ops.activation import ActivationOps
from .kernel_ops.augment import AugmentOps
from .kernel_ops.base import KernelOpsBase, poison_outputs  # noqa: F401
from .kernel_ops.conv import ConvOps
from .kernel_ops.copy import CopyOps
from .kernel_ops.dropout import DropoutOps
from .kernel_ops.linear import LinearOps
from .kernel_ops.lrn import LrnOps
from .kernel_ops.pool import PoolOps
from .kernel_ops.sgd import SgdOps
from .kernel_ops.softmax import SoftmaxOps


class KernelBackend(LinearOps, ActivationOps, ConvOps, LrnOps, PoolOps, DropoutOps, SoftmaxOps, SgdOps, CopyOps,
                    AugmentOps, KernelOpsBase):
    """Ops implemented by the hand-written kernels (the reference's names and signatures)."""
