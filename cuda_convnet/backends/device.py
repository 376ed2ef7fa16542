"""A backend together with the conversion of arrays between the host and it.

    dev = BackendDevice("emu")        # "cpu", "emu" or "cuda"
    y = dev.ops.relu(dev.put(x))      # host NumPy -> an array the backend's ops take
    y_host = dev.get(y)               # -> host NumPy

This is the one adapter between host arrays and a backend: the tests' kernel-device
fixture is one, the benchmarks' devices (bench/harness/devices.py) add timing and a
PyTorch baseline to it, and the Net's logical devices (net/devices.py) add a GPU ordinal
and a stream of their own. Here every CuPy call runs on CuPy's current stream, the
stream the kernel launchers are given.
"""
from __future__ import annotations

import numpy as np

from . import backend

# The widest vector access of the kernels (float4): the alignment `put` can keep.
_VECTOR_BYTES = 16


class BackendDevice:
    """One backend and its arrays.

    name   the backend's name, "cpu", "emu" or "cuda"
    ops    `backend(name)`: the op functions
    xp     the module of the backend's arrays: NumPy (cpu, emu) or CuPy (cuda)

    Raises ValueError for an unknown name and RuntimeError where the cuda backend is
    unavailable (no GPU, no CuPy, or cuda_convnet._C built without CUDA).
    """

    def __init__(self, name: str):
        self.ops = backend(name)
        self.name = name
        if name == "cuda":
            import cupy

            self.xp = cupy
        else:
            self.xp = np

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    def put(self, a, *, keep_alignment: bool = False):
        """`a` (host NumPy, any shape and dtype; None stays None) as a C-contiguous array
        of this backend, with the same shape and dtype.

        Host backends may return `a` itself (no copy when it is already C-contiguous).
        keep_alignment=True: the result starts at the same address modulo 16 bytes as `a`,
        so a kernel sees the same mix of aligned (float4) and unaligned (scalar) starts on
        every backend; on the host `a` is returned itself, and must then be C-contiguous
        (ValueError otherwise: a contiguous copy would be realigned).
        """
        if a is None:
            return None
        if keep_alignment:
            a = np.asarray(a)
            if not a.flags.c_contiguous:
                raise ValueError(f"put(keep_alignment=True): the array of shape {a.shape} is not C-contiguous")
            if self.xp is np:
                return a
            return self._put_aligned_like(a)
        a = self.xp.asarray(a)  # (ascontiguousarray would make a 0-d array 1-d)
        return a if a.flags.c_contiguous else self.xp.ascontiguousarray(a)

    def _put_aligned_like(self, a: np.ndarray):
        """A CuPy copy of C-contiguous `a` starting at the same offset from a 16-byte boundary."""
        xp = self.xp
        if a.ctypes.data % a.itemsize:
            raise ValueError(f"put(keep_alignment=True): the array starts off its {a.dtype} element boundary")
        pad = _VECTOR_BYTES // a.itemsize
        buf = xp.empty(a.size + pad, dtype=a.dtype)  # CuPy allocations are 256-byte aligned
        start = (a.ctypes.data - buf.data.ptr) % _VECTOR_BYTES // a.itemsize
        out = buf[start:start + a.size].reshape(a.shape)
        out.set(a)
        return out

    def get(self, a) -> np.ndarray:
        """A host NumPy array with the contents of `a` (NumPy arrays come back as they are)."""
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)
