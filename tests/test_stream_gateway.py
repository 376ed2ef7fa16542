"""Host reads of device arrays go through one gateway: Device.to_host / Device.adopt.

A CuPy array read on the host outside its writer's stream order (a bare `a.get()` or
`cupy.asnumpy(a)` on CuPy's current stream while the kernels ran on a Net device's
non-blocking stream) can return stale data. The package's training-side code (net/,
optim.py, training.py, data/) therefore never reads device memory itself: the source scan
below fails on any such call outside net/devices.py. The gateway's own behaviour on the
host backends is checked with real values.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import cuda_convnet as ccn
from cuda_convnet.net import devices as devices_mod
from cuda_convnet.net.devices import Device

PKG = Path(ccn.__file__).resolve().parent
SCANNED = sorted([*PKG.glob("net/*.py"), PKG / "optim.py", PKG / "training.py", *PKG.glob("data/*.py"),
                  *PKG.glob("distributed/*.py"), *PKG.glob("experiments/*.py")])
GATEWAY = PKG / "net" / "devices.py"
# Receivers whose argument-less .get() is not an array read (queue.Queue.get).
NOT_ARRAYS = {"q"}


def _receiver(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def host_reads(source: str) -> list[tuple[int, str]]:
    """(line, call) of every call in `source` that reads a device array on the host
    without the gateway: x.get() / x.get(stream=...), *.asnumpy(...), Device.to_host(...)
    called on the class (no stream known), and np.asarray/np.array of a .get()."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, recv = node.func.attr, node.func.value
        bare_get = attr == "get" and not node.args and _receiver(recv) not in NOT_ARRAYS  # dict.get has a key
        class_to_host = attr == "to_host" and isinstance(recv, ast.Name) and recv.id == "Device"
        if bare_get or attr == "asnumpy" or class_to_host:
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_scan_finds_each_kind_of_bypass():
    src = ("import cupy\nimport numpy as np\nfrom x import Device\n"
           "a = y.get()\nb = cupy.asnumpy(y)\nc = np.asarray(z.get(stream=s))\nd = Device.to_host(y)\n"
           "e = cfg.get('key')\nf = q.get()\ng = dev.to_host(y)\n")
    assert [line for line, _ in host_reads(src)] == [4, 5, 6, 7]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(PKG)))
def test_no_host_read_bypasses_the_gateway(path):
    if path == GATEWAY:
        pytest.skip("the gateway itself")
    bad = host_reads(path.read_text())
    assert not bad, f"{path.relative_to(PKG)} reads device arrays outside Device.to_host/adopt: {bad}"


def test_gateway_reads_on_the_device_stream():
    """to_host is a method (it knows its stream) and issues the copy on that stream."""
    assert not isinstance(inspect.getattr_static(Device, "to_host"), staticmethod)
    src = inspect.getsource(Device.to_host)
    assert "a.get(stream=self._stream)" in src and "self._stream.synchronize()" in src
    adopt = inspect.getsource(Device.adopt)
    assert "ready.record(src)" in adopt and "self._stream.wait_event(ready)" in adopt
    # asarray adopts CuPy arguments before use
    assert "self.adopt(a)" in inspect.getsource(Device.asarray)


@pytest.mark.parametrize("kind", ["cpu", "emu"])
def test_host_devices_to_host_and_adopt(kind):
    dev = Device(kind)
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert dev.adopt(a) is a
    out = dev.to_host(a)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, a)


def test_net_predict_and_state_round_trip_through_gateway():
    """predict, state_dict and load_state_dict give the values the device holds."""
    from net_support import tiny_net

    net = tiny_net(towers=1, devices=("emu",), dtype="float32")
    x = np.random.default_rng(1).standard_normal((2,) + net.input_shape).astype(np.float32)
    probs = net.predict(x)
    assert isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    state = net.state_dict()
    other = tiny_net(towers=1, devices=("emu",), dtype="float32", seed=99)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.predict(x), probs)
    assert devices_mod._is_cupy(np.zeros(1)) is False


@pytest.mark.cuda
def test_cuda_adopt_and_to_host_follow_stream_order():
    """An array still being written on a side stream is adopted by a Device (its stream
    waits on an event), used there, and read back on that stream: the values are final."""
    if not ccn.has_cuda():
        pytest.skip(f"no usable GPU: {ccn.cuda_unavailable_reason()}")
    import cupy

    dev = Device("cuda:0")
    with cupy.cuda.Device(0):
        side = cupy.cuda.Stream(non_blocking=True)
        with side:
            a = cupy.arange(1 << 22, dtype=cupy.float32)
            for _ in range(50):  # long enough to be still running when the Device reads it
                a = a * np.float32(1.0001) + np.float32(1)
        b = dev.adopt(a, stream=side)
        with dev.activate():
            c = b * np.float32(2)
        got = dev.to_host(c)
        side.synchronize()
        want = cupy.asnumpy(a) * np.float32(2)
    np.testing.assert_array_equal(got, want)
    dev.synchronize()


class _FakeStream:
    def __init__(self):
        self.ptr, self.synchronized = 1234, 0

    def synchronize(self):
        self.synchronized += 1


class _FakeGpu:
    """cupy.cuda.Device stand-in: a context manager with .id and synchronize()."""

    synced: list = []

    def __init__(self, ordinal=0):
        self.id = ordinal

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _FakeGpu.synced.append(self.id)


class _DeviceArray:
    """A CuPy-like array: implicit conversion to NumPy raises, as CuPy's does; only an
    explicit .get(stream=...) reads it."""

    def __init__(self, host):
        self._host, self.shape, self.dtype = host, host.shape, host.dtype
        self.device = _FakeGpu(0)
        self.reads = []

    def get(self, stream=None):
        self.reads.append(stream)
        return self._host.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


_DeviceArray.__module__ = "cupy._core.core"


def test_device_arrays_reach_a_host_net_only_through_the_gateway(monkeypatch):
    """A training step of a cpu Net fed CuPy-like batch and labels: every read is an
    explicit .get on a stream (np.asarray of a device array would raise here), and the
    result is that of the same step on the host arrays."""
    import sys
    import types

    from net_support import batch, tiny_net

    stream = _FakeStream()
    monkeypatch.setattr(_FakeGpu, "synced", [])
    cuda = types.SimpleNamespace(Device=_FakeGpu, get_current_stream=lambda: stream)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))
    x, y = batch(n=4, dtype=np.float32)
    xd, yd = _DeviceArray(x), _DeviceArray(y)
    net_d = tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32", seed=6)
    net_h = tiny_net(towers=2, devices=("cpu", "cpu"), dtype="float32", seed=6)
    opt_d, opt_h = ccn.SGD(net_d.parameters(), lr=0.1), ccn.SGD(net_h.parameters(), lr=0.1)
    stats_d = net_d.train_step(xd, yd, opt_d)
    stats_h = net_h.train_step(x, y, opt_h)
    assert stats_d == stats_h
    for name, w in net_h.state_dict().items():
        np.testing.assert_array_equal(net_d.state_dict()[name], w)
    assert xd.reads == [stream] and yd.reads == [stream]  # one explicit read each, on a stream
    # the batch: read on the caller's current stream, then waited for; the labels (a host
    # device cannot know their writer): after the whole GPU is synchronised
    assert stream.synchronized == 1 and _FakeGpu.synced == [0]
