"""Plumbing shared by every kernel-op mixin: pointers, streams, output allocation."""
from __future__ import annotations

import contextlib
import operator

import numpy as np

_POISON = [False]


@contextlib.contextmanager
def poison_outputs(enabled: bool = True):
    """Allocate every kernel output filled with NaN instead of uninitialised.

    Tests run with this on, so an element a kernel forgets to write shows up as NaN
    instead of as whatever the allocator happened to hold.
    """
    old = _POISON[0]
    _POISON[0] = enabled
    try:
        yield
    finally:
        _POISON[0] = old


#: The ops whose kernel family has several versions: the keys ``kernel_versions`` takes.
#: conv2d: conv_fwd_kernel1/2/3; conv2d_dgrad (and conv2d_backward's dx): conv_dgrad_kernel1/2;
#: conv2d_wgrad (also conv2d_backward's dw): conv_wgrad_kernel1-5;
#: lrn, lrn_backward: lrn_*_kernel1/2; linear, linear_backward (precision "fp32"): gemm_kernel1/2.
VERSIONED_OPS = ("conv2d", "conv2d_dgrad", "conv2d_wgrad", "lrn", "lrn_backward", "linear", "linear_backward")

#: The highest kernel version of each op (its launcher's `version` switch: csrc/conv.h,
#: lrn.h, gemm.h); kernel_versions values above it are refused in Python, by op name.
MAX_VERSION = {"conv2d": 3, "conv2d_dgrad": 2, "conv2d_wgrad": 5, "lrn": 2, "lrn_backward": 2, "linear": 2,
               "linear_backward": 2}


class KernelOpsBase:
    """`ext` is cuda_convnet._emu or ._C; `xp` is numpy or cupy.

    ``kernel_versions`` ({op name: int}, an op missing = 0) forces a kernel version: 0 lets
    the launcher pick, n runs <family>_kernel<n> (ValueError where that kernel cannot run
    the call). Keys are VERSIONED_OPS. ``kernel_version(op, *args, **kwargs)`` says which
    version the launcher runs for the op's arguments.
    """

    def __init__(self, name, ext, xp):
        self.name = name
        self.ext = ext
        self.xp = xp
        self._is_cupy = xp is not np
        self.kernel_versions: dict[str, int] = {}

    def _version(self, op) -> int:
        """kernel_versions[op] (0 when missing), after checking every key and value."""
        for key, v in self.kernel_versions.items():
            if key not in VERSIONED_OPS:
                raise ValueError(f"kernel_versions: {key!r} has no kernel versions; the keys are {VERSIONED_OPS}")
            top = MAX_VERSION[key]
            try:  # NumPy integers are ints here too; bools and floats are not
                iv = None if isinstance(v, (bool, np.bool_)) else operator.index(v)
            except TypeError:
                iv = None
            if iv is None or not 0 <= iv <= top:
                raise ValueError(f"{op}: kernel_versions[{key!r}] = {v!r}: version must be 0 (the launcher picks) "
                                 f"or an int n from 1 to {top} (runs its <family>_kernel<n>)")
        return operator.index(self.kernel_versions.get(op, 0))

    def _tuning(self, op, name, maximum=2**31 - 1) -> int:
        """A class-level tuning knob (gemm_splits, wgrad_chunk_rows): an int from 0 (the
        launcher picks) to `maximum` (the launchers take a 32-bit int); ValueError naming the
        op and the knob otherwise."""
        v = getattr(self, name)
        try:
            iv = None if isinstance(v, (bool, np.bool_)) else operator.index(v)
        except TypeError:
            iv = None
        if iv is None or not 0 <= iv <= maximum:
            raise ValueError(f"{op}: {name} must be an int from 0 (the launcher picks) to {maximum}, got {v!r}")
        return iv

    def kernel_version(self, op, *args, **kwargs) -> int:
        """Which <family>_kernel<n> ``op`` runs on these arguments (the op's own signature),
        given kernel_versions; ValueError where a forced version cannot run them."""
        if op not in VERSIONED_OPS:
            raise ValueError(f"kernel_version: {op!r} has no kernel versions; the ops are {VERSIONED_OPS}")
        query = getattr(self, f"_kernel_version_{op}", None)
        if query is None:  # linear_backward: a dgrad and a wgrad GEMM of different shapes
            raise ValueError(f"kernel_version: {op!r} launches several kernels of different shapes, so no one "
                             f"version; kernel_versions[{op!r}] forces all of them")
        return query(*args, **kwargs)

    def __repr__(self):
        return f"<backend {self.name}: {self.ext.__name__}>"

    # ------------------------------------------------------------------ plumbing
    def _ptr(self, a) -> int:
        if a is None:
            return 0
        if self._is_cupy:
            if not isinstance(a, self.xp.ndarray):
                raise TypeError(f"the {self.name} backend needs CuPy arrays, got {type(a).__name__}")
            # The launch goes to the current GPU (and its stream): an array of another GPU
            # would be an illegal address there, or slow peer reads. Refused, as CuPy does.
            current = self.xp.cuda.runtime.getDevice()
            if a.device.id != current:
                raise ValueError(
                    f"the {self.name} backend: an array is on GPU {a.device.id} but GPU {current} is current; "
                    f"call the op under `with cupy.cuda.Device({a.device.id}):` (cuda_convnet.ops.* does that "
                    "by itself)")
            return a.data.ptr
        if not isinstance(a, np.ndarray):
            raise TypeError(f"the {self.name} backend needs NumPy arrays, got {type(a).__name__}")
        return a.ctypes.data

    def _stream(self) -> int:
        return self.xp.cuda.get_current_stream().ptr if self._is_cupy else 0

    def _empty(self, shape):
        if _POISON[0]:
            return self.xp.full(shape, np.nan, dtype=np.float32)
        return self.xp.empty(shape, dtype=np.float32)

    def _float32(self, op, **arrays):
        for name, a in arrays.items():
            if a is not None and np.dtype(a.dtype) != np.float32:
                raise TypeError(
                    f"{op}: the {self.name} backend computes in float32; {name} is {np.dtype(a.dtype).name} "
                    f"(use the cpu backend for float64)"
                )
