"""`cuda_convnet.ops.<fn>`: every op, dispatched on where its arrays live.

NumPy arrays go to the cpu backend (the reference), CuPy arrays to the cuda backend.
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


def _make(name):
    def op(*args, **kwargs):
        return getattr(backend_for(*args, *kwargs.values()), name)(*args, **kwargs)

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
