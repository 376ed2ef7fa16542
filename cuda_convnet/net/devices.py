"""Logical devices: where a layer's arrays live and which backend runs its ops (ARCHITECTURE.md §6).

A `Device` is one *logical* device of a Net, named "cpu", "emu" or "cuda:N":

    name      backend          arrays  copies between two logical devices
    cpu       the reference    NumPy   a plain NumPy copy
    emu       SIMT emulator    NumPy   a plain NumPy copy
    cuda:N    nvcc kernels     CuPy    another GPU: a peer-to-peer copy (peer access enabled
                                       when the pair supports it, else staged by the driver);
                                       the same GPU: a device-to-device copy

Each Net builds its own Device objects, one per entry of its `devices` list, so two logical
devices may name the same physical GPU ("cuda:0", "cuda:0"): each gets its own CUDA
stream, and the towers run concurrently as far as the GPU allows. Every op of a layer is
issued under `with device.activate():` (the GPU made current, the device's stream made
CuPy's current stream, which is the stream the kernel launchers are given). Where an
edge crosses devices the consumer's stream waits on an event recorded on the producer's
stream before the copy is issued: "events where the towers meet".

Every crossing between a device's stream and the rest of the program goes through two
methods of this class, and nothing else in the package reads device memory on the host:

    to_host(a)   a host NumPy copy of an array this device wrote, read ON this device's
                 stream (the copy is queued behind the kernels that wrote it, then waited
                 for). A plain `a.get()` outside `activate()` would run on CuPy's current
                 stream, which for a non-blocking stream is not ordered after its kernels.
    adopt(a)     a CuPy array made by someone else (the caller's current stream: a data
                 loader, a benchmark's generator) enters this device's stream order: an
                 event recorded on the producing stream, waited on by this stream, before
                 any kernel of this device reads it; an array on another GPU is copied
                 peer-to-peer on the same terms.
"""
from __future__ import annotations

import contextlib
import re

import numpy as np

from ..backends import backend
from ..data.pinned import PinnedBatch


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def _caller_to_host(a) -> np.ndarray:
    """Host copy of a caller's CuPy array, in the order of the caller's current stream."""
    import cupy

    with cupy.cuda.Device(a.device.id):
        s = cupy.cuda.get_current_stream()
        out = a.get(stream=s)
        s.synchronize()
    return out


_NAME = re.compile(r"^(cpu|emu|cuda(?::(\d+))?)$")

def parse_device(name: str) -> tuple[str, int | None]:
    """"cpu" -> ("cpu", None); "cuda:1" -> ("cuda", 1); "cuda" -> ("cuda", 0)."""
    if not isinstance(name, str):
        raise TypeError(f"a device is named by a string ('cpu', 'emu' or 'cuda:N'), got {type(name).__name__}")
    m = _NAME.match(name.strip())
    if not m:
        raise ValueError(f"unknown device {name!r}: use 'cpu', 'emu' or 'cuda:N'")
    if m.group(1).startswith("cuda"):
        return "cuda", int(m.group(2) or 0)
    return m.group(1), None


class Device:
    """One logical device: a backend, its array module, and (on cuda) a GPU and a stream."""

    def __init__(self, name: str):
        self.kind, self.ordinal = parse_device(name)
        self.name = f"cuda:{self.ordinal}" if self.kind == "cuda" else self.kind
        self.ops = backend(self.kind)
        self._stream = None
        # Arrays another stream may still be reading (see _cuda_copy); released on synchronize().
        self._in_flight: list = []
        if self.kind == "cuda":
            import cupy

            if self.ordinal >= cupy.cuda.runtime.getDeviceCount():
                raise ValueError(f"device {self.name}: only {cupy.cuda.runtime.getDeviceCount()} GPU(s) present")
            self.xp = cupy
            with cupy.cuda.Device(self.ordinal):
                # Non-blocking: no implicit ordering with the legacy default stream; every
                # dependency between devices is an explicit event.
                self._stream = cupy.cuda.Stream(non_blocking=True)
        else:
            self.xp = np

    def __repr__(self):
        return f"Device({self.name!r})"

    # ------------------------------------------------------------------ activation
    def activate(self):
        """`with device.activate():` makes this device's GPU and stream current on cuda (nothing
        on the host). Not a CUDA context: one CUDA context per GPU serves every device on it."""
        if self.kind != "cuda":
            return contextlib.nullcontext()
        return _CudaActivation(self)

    def synchronize(self) -> None:
        """Wait for this device's stream; then arrays lent to other streams can be freed."""
        if self._stream is not None:
            self._stream.synchronize()
        self._in_flight.clear()

    # ------------------------------------------------------------------ arrays
    def asarray(self, a, dtype=None, *, copy: bool = False):
        """A C-contiguous array on this device (from host NumPy, or a CuPy array from any stream).

        copy=False may return `a` itself; copy=True always gives a new array (for state the
        Net will update in place, so it never aliases the caller's arrays). A CuPy argument
        is adopted first (`adopt`): this device's stream waits for the stream that made it.
        """
        if self.kind == "cuda":
            if _is_cupy(a):
                a = self.adopt(a)
            elif isinstance(a, PinnedBatch) and a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
                return self._upload_pinned(a)
            with self.activate():
                out = self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))
                return out.copy() if copy and out is a else out
        if _is_cupy(a):
            a = _caller_to_host(a)
        if copy:
            return np.array(a, dtype=dtype, order="C", copy=True)
        return np.ascontiguousarray(a, dtype=dtype)

    def _upload_pinned(self, a):
        """One asynchronous host-to-device copy of a page-locked batch on this device's
        stream (no staging copy, no host wait); the batch's ring slot is reused only
        after the event recorded behind the copy has completed."""
        import cupy

        with self.activate():
            out = cupy.empty(a.shape, dtype=a.dtype)
            out.set(a, stream=self._stream)
            done = cupy.cuda.Event(block=True, disable_timing=True)
            done.record(self._stream)
        a.uploaded(done)
        return out

    def adopt(self, a, stream=None):
        """Order this device's stream after the stream that produced CuPy array `a`.

        `stream`: the producing stream (default: CuPy's current stream of the caller, CuPy's
        convention for where an array was made). Records an event there and makes this
        device's stream wait on it, so this device's kernels read `a` only once it is
        written. An array on another GPU is copied to this one (peer-to-peer, ordered the
        same way). Host arrays and host devices: `a` unchanged. Returns the array to use.
        """
        if self.kind != "cuda" or not _is_cupy(a):
            return a
        import cupy

        src_id = a.device.id
        with cupy.cuda.Device(src_id):
            src = stream if stream is not None else cupy.cuda.get_current_stream()
            if src.ptr == self._stream.ptr:
                return a  # already in this stream's order
            if src_id != self.ordinal and not a.flags.c_contiguous:
                with src:  # the byte copy below needs one contiguous block
                    a = cupy.ascontiguousarray(a)
            ready = cupy.cuda.Event(block=False, disable_timing=True)
            ready.record(src)
        if src_id != self.ordinal:
            return _peer_copy(a, src_id, ready, self)
        self._stream.wait_event(ready)
        # CuPy's pool is per stream: were the caller to drop `a`, its block could be handed
        # out again on `src` while this stream still reads it. Held until synchronize().
        self._in_flight.append(a)
        return a

    def zeros(self, shape, dtype):
        with self.activate():
            return self.xp.zeros(shape, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        """A host NumPy array with the contents of `a`, an array this device wrote.

        On cuda the device-to-host copy is issued on this device's stream (after every
        kernel queued there) and waited for. A CuPy array of another GPU is read after that
        whole GPU is synchronised. NumPy arrays come back as they are (no copy).
        """
        if not _is_cupy(a):
            return np.asarray(a)
        import cupy

        if self.kind == "cuda" and a.device.id == self.ordinal:
            with self.activate():
                out = a.get(stream=self._stream)
                # Older CuPy versions return before an explicit-stream copy completes.
                self._stream.synchronize()
            # The stream has drained: arrays lent to it are no longer read (synchronize()).
            self._in_flight.clear()
            return out
        with cupy.cuda.Device(a.device.id) as gpu:
            gpu.synchronize()  # every stream of that GPU: its writer is not known here
            return a.get(stream=cupy.cuda.get_current_stream())

    def copy_from(self, a, src: Device):
        """Copy `a`, an array on device `src`, to this device (the graph's Copy layer)."""
        if self.kind == "cuda" and src.kind == "cuda":
            return _cuda_copy(a, src, self)
        if self.kind == "cuda" or src.kind == "cuda":
            # Host <-> GPU (e.g. a cpu tower feeding a cuda one): through the host.
            return self.asarray(src.to_host(a))
        return np.array(a, copy=True, order="C")

    def all_finite(self, a) -> bool:
        with self.activate():
            return bool(self.xp.isfinite(a).all())

    # --------------------------------------------- channel concat / split
    def concat_channels(self, xs):
        """Concatenate along the last (channel) axis, on this device's stream."""
        with self.activate():
            return self.ops.concat_channels(list(xs))

    def split_channels(self, y, sizes):
        """Split the last axis into contiguous arrays of `sizes` channels each."""
        sizes = [int(s) for s in sizes]
        if sum(sizes) != y.shape[-1]:
            raise ValueError(f"split_channels: sizes {sizes} do not add up to {y.shape[-1]} channels")
        with self.activate():
            return list(self.ops.split_channels(y, sizes))


class _CudaActivation:
    """`with cupy.cuda.Device(n): with stream:` as one re-entrant `with` block."""

    def __init__(self, device: Device):
        import cupy

        self._gpu = cupy.cuda.Device(device.ordinal)
        self._stream = device._stream

    def __enter__(self):
        self._gpu.__enter__()
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        self._stream.__exit__(*exc)
        self._gpu.__exit__(*exc)
        return False


_PEER_ENABLED: set[tuple[int, int]] = set()


def enable_peer_access(a: int, b: int) -> bool:
    """Let GPU `a` access GPU `b`'s memory directly (once per pair); False if unsupported."""
    import cupy

    if a == b or (a, b) in _PEER_ENABLED:
        return True
    rt = cupy.cuda.runtime
    if not rt.deviceCanAccessPeer(a, b):
        return False
    with cupy.cuda.Device(a):
        try:
            rt.deviceEnablePeerAccess(b)
        except rt.CUDARuntimeError as e:  # already enabled (e.g. by CuPy itself) is fine
            if "PeerAccessAlreadyEnabled" not in str(e):
                raise
    _PEER_ENABLED.add((a, b))
    return True


def _cuda_copy(a, src: Device, dst: Device):
    """Copy a CuPy array from `src`'s stream to `dst`'s stream, ordered by an event."""
    import cupy

    with src.activate():
        ready = cupy.cuda.Event(block=False, disable_timing=True)
        ready.record(src._stream)
    return _peer_copy(a, src.ordinal, ready, dst)


def _peer_copy(a, src_ordinal: int, ready, dst: Device):
    """Copy `a` (on GPU `src_ordinal`, written once `ready` fires) on `dst`'s stream."""
    import cupy

    with dst.activate():
        dst._stream.wait_event(ready)
        y = cupy.empty(a.shape, dtype=a.dtype)
        if a.nbytes:
            if src_ordinal == dst.ordinal:
                y.data.copy_from_device_async(a.data, a.nbytes, stream=dst._stream)
            else:
                enable_peer_access(dst.ordinal, src_ordinal)
                enable_peer_access(src_ordinal, dst.ordinal)
                cupy.cuda.runtime.memcpyPeerAsync(y.data.ptr, dst.ordinal, a.data.ptr, src_ordinal, a.nbytes,
                                                  dst._stream.ptr)
    # CuPy's memory pool is per stream: were `a` freed now, its block would go back to the
    # source stream's pool and could be handed out there while this copy (on the
    # destination stream) is still reading it. So the destination device holds `a` until
    # its stream is synchronised (the Net does that at the end of every step and forward).
    dst._in_flight.append(a)
    return y
