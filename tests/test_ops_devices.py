"""Ops on an array of another GPU than the current one (no GPU needed: a stand-in CuPy).

ccn.ops.* switches to the arrays' GPU (CuPy's rule) and refuses arrays spread over two
GPUs; the kernel backend itself refuses a pointer of another GPU than the current one
(the launch would go to the current GPU's stream: an illegal address there). The stand-in
module below has exactly the CuPy API these paths use: cupy.cuda.Device (a context
manager with .id), cupy.cuda.runtime.getDevice(), ndarray.device.id and .data.ptr.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from cuda_convnet import ops
from cuda_convnet.backends.kernel_ops.base import KernelOpsBase


class _Device:
    current = 0

    def __init__(self, ordinal=None):
        self.id = _Device.current if ordinal is None else ordinal

    def __enter__(self):
        self._prev, _Device.current = _Device.current, self.id
        return self

    def __exit__(self, *exc):
        _Device.current = self._prev
        return False


class _Array:
    def __init__(self, gpu, ptr=4096):
        self.device = _Device(gpu)
        self.data = types.SimpleNamespace(ptr=ptr)
        self.dtype = np.dtype(np.float32)


_Array.__module__ = "cupy._core.core"  # how ops tells a CuPy array from a NumPy one


@pytest.fixture
def fake_cupy(monkeypatch):
    cuda = types.SimpleNamespace(Device=_Device, runtime=types.SimpleNamespace(getDevice=lambda: _Device.current))
    mod = types.SimpleNamespace(cuda=cuda, ndarray=_Array)
    monkeypatch.setitem(sys.modules, "cupy", mod)
    _Device.current = 0
    backend = KernelOpsBase("cuda", ext=None, xp=mod)
    seen = []

    def relu(x, *, extra=None):
        seen.append(_Device.current)
        return backend._ptr(x), [backend._ptr(e) for e in (extra or [])]

    backend.relu = relu
    monkeypatch.setattr(ops, "backend", lambda name: backend)
    return backend, seen


def test_kernel_backend_refuses_an_array_of_another_gpu(fake_cupy):
    backend, _ = fake_cupy
    assert backend._ptr(_Array(0, ptr=777)) == 777
    with pytest.raises(ValueError, match=r"array is on GPU 1 but GPU 0 is current.*cupy.cuda.Device\(1\)"):
        backend._ptr(_Array(1))


def test_ops_switch_to_the_arrays_gpu(fake_cupy):
    _, seen = fake_cupy
    assert ops.relu(_Array(1, ptr=55)) == (55, [])
    assert seen == [1]
    assert _Device.current == 0  # restored afterwards
    assert ops.relu(_Array(2), extra=[_Array(2, ptr=9)]) == (4096, [9])
    assert seen == [1, 2]


def test_ops_refuse_arrays_on_two_gpus(fake_cupy):
    _, seen = fake_cupy
    with pytest.raises(ValueError, match=r"ops.relu: the arrays are on GPUs \[0, 1\]"):
        ops.relu(_Array(0), extra=[_Array(1)])
    assert seen == []
