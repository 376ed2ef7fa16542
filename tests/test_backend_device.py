"""BackendDevice (cuda_convnet/backends/device.py): the one adapter between host arrays and
a backend, used by the kernel tests' fixture, the benchmarks' devices and the Net's devices."""
from __future__ import annotations

import numpy as np
import pytest
from kernel_inputs import randn, unaligned

from cuda_convnet.backends import backend
from cuda_convnet.backends.device import BackendDevice
from cuda_convnet.net.devices import Device


@pytest.fixture(params=["cpu", pytest.param("emu", marks=pytest.mark.emu),
                        pytest.param("cuda", marks=pytest.mark.cuda)])
def name(request):
    return request.param


def test_names_its_backend_and_ops(name):
    dev = BackendDevice(name)
    assert dev.name == name and dev.ops is backend(name)
    assert dev.xp.__name__ == ("cupy" if name == "cuda" else "numpy")
    assert repr(dev) == f"BackendDevice({name!r})"


def test_put_get_round_trip(name):
    dev = BackendDevice(name)
    rng = np.random.default_rng(0)
    for a in (randn(rng, 3, 5), randn(rng, 4, 6)[:, ::2], np.full((), 2.5, np.float32),
              rng.integers(-9, 9, size=(7,)).astype(np.int32)):
        d = dev.put(a)
        assert isinstance(d, dev.xp.ndarray) and d.flags.c_contiguous
        assert d.shape == a.shape and d.dtype == a.dtype
        np.testing.assert_array_equal(dev.get(d), a)
        assert type(dev.get(d)) is np.ndarray
    assert dev.put(None) is None


def test_put_keeps_alignment_when_asked(name):
    dev = BackendDevice(name)
    a = unaligned(randn(np.random.default_rng(1), 37))
    d = dev.put(a, keep_alignment=True)
    ptr = d.data.ptr if name == "cuda" else d.ctypes.data
    assert ptr % 16 == a.ctypes.data % 16 != 0
    np.testing.assert_array_equal(dev.get(d), a)
    if name != "cuda":
        assert d is a  # the host backends take the caller's array itself
    with pytest.raises(ValueError, match="not C-contiguous"):
        dev.put(randn(np.random.default_rng(2), 4, 6)[:, ::2], keep_alignment=True)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        BackendDevice("gpu")


@pytest.mark.parametrize("kind", ["cpu", pytest.param("emu", marks=pytest.mark.emu)])
def test_net_device_is_the_adapter_with_its_stream(kind):
    """A Net's Device is a BackendDevice whose put/get are its stream-ordered asarray/to_host."""
    dev = Device(kind)
    assert isinstance(dev, BackendDevice) and dev.ops is backend(kind) and dev.name == kind
    a = randn(np.random.default_rng(3), 2, 3)
    np.testing.assert_array_equal(dev.get(dev.put(a)), a)
    u = unaligned(a)
    assert dev.put(u, keep_alignment=True) is u
    assert dev.put(None) is None
