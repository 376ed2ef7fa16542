"""The three backends behind one op interface (ARCHITECTURE.md §2).

    backend("cpu")   NumPy reference ops (cuda_convnet.reference): the definition of the math
    backend("emu")   NumPy arrays through cuda_convnet._emu: the CUDA kernels on the SIMT emulator
    backend("cuda")  CuPy arrays through cuda_convnet._C, on CuPy's current stream

Each exposes the same functions with the same signatures (`linear`, `relu`, ...).
`cuda_convnet.ops.<fn>` picks cpu or cuda from the array type.
"""
from __future__ import annotations

from functools import cache

from .kernel_ops.base import poison_outputs  # noqa: F401  (re-exported for tests)

NAMES = ("cpu", "emu", "cuda")


@cache
def backend(name: str):
    """Return the backend called `name` ("cpu", "emu" or "cuda"), one object per name.

    Every backend has the same ops (linear, conv2d, max_pool, ...: the list is
    cuda_convnet.reference.__all__) on NHWC arrays: NumPy float32/float64 on "cpu" (the
    reference), NumPy float32 on "emu" (the CUDA kernels, emulated), CuPy float32 on
    "cuda". Raises ValueError for another name, RuntimeError saying what is missing when
    "cuda" is unavailable (no CUDA build, GPU, driver or CuPy: cuda_convnet.has_cuda()).
    """
    if name == "cpu":
        from .cpu import CpuBackend

        return CpuBackend()
    if name == "emu":
        import numpy

        from .._ext import load
        from .kernels import KernelBackend

        return KernelBackend("emu", load("_emu"), numpy)
    if name == "cuda":
        from .._ext import cuda_unavailable_reason, has_cuda, load
        from .kernels import KernelBackend

        if not has_cuda():
            raise RuntimeError(
                f"the cuda backend is unavailable: {cuda_unavailable_reason()}. It needs cuda_convnet._C built "
                "with CUDA, a GPU with a driver, and CuPy (pip install 'cuda_convnet[cuda13]'); see "
                "cuda_convnet.build_info()"
            )
        import cupy

        return KernelBackend("cuda", load("_C"), cupy)
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(NAMES)}")
