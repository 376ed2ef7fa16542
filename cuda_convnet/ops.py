"""`cuda_convnet.ops.<fn>`: every op, dispatched on where its arrays live.

NumPy arrays go to the cpu backend (the reference), CuPy arrays to the cuda backend, run
with the arrays' GPU made current (all of an op's CuPy arrays must be on one GPU).
The emulated kernels are reached explicitly, `cuda_convnet.backend("emu").<fn>`, since
their arrays are NumPy arrays too.
"""
from __future__ import annotations

import numpy as np

from .backends import backend


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def backend_for(*arrays):
    """The backend that owns these arrays (cpu for NumPy, cuda for CuPy)."""
    for a in arrays:
        if isinstance(a, (list, tuple)):
            if a:
                return backend_for(*a)
            continue
        if isinstance(a, np.ndarray):
            return backend("cpu")
        if _is_cupy(a):
            return backend("cuda")
    raise TypeError("cuda_convnet.ops: no NumPy or CuPy array among the arguments")


def _gpus(arrays, found: set) -> set:
    """The GPU ordinals of the CuPy arrays among `arrays` (lists and tuples searched)."""
    for a in arrays:
        if isinstance(a, (list, tuple)):
            _gpus(a, found)
        elif _is_cupy(a) and hasattr(a, "device"):
            found.add(a.device.id)
    return found


def _make(name):
    def op(*args, **kwargs):
        b = backend_for(*args, *kwargs.values())
        gpus = _gpus((*args, *kwargs.values()), set())
        if not gpus:
            return getattr(b, name)(*args, **kwargs)
        if len(gpus) > 1:
            raise ValueError(f"cuda_convnet.ops.{name}: the arrays are on GPUs {sorted(gpus)}; all must be on one "
                             "(copy them with cupy.asarray under `with cupy.cuda.Device(n):`)")
        import cupy

        # Run where the arrays are (CuPy's rule), on that GPU's current stream.
        with cupy.cuda.Device(gpus.pop()):
            return getattr(b, name)(*args, **kwargs)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"`{name}` on the backend that owns the arrays (see cuda_convnet.reference.{name})."
    return op


def __getattr__(name):
    from . import reference

    if name.startswith("_") or not hasattr(reference, name):
        raise AttributeError(f"cuda_convnet.ops has no op {name!r}")
    fn = _make(name)
    globals()[name] = fn
    return fn


def __dir__():
    from . import reference

    return sorted(set(getattr(reference, "__all__", [])) | {"backend_for"})
