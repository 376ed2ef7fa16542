"""Host-to-device upload of uint8 batches that overlaps the consumer's GPU work: a ring of
pinned host buffers and device buffers, a non-blocking side stream, and the events that
order them (the cuda path of augment.KernelTrainAugment).

How a batch moves (in the loader's background thread):
  1. the uint8 batch is copied (host memcpy) into the pinned buffer of the next ring slot;
  2. the side stream copies it to the slot's device buffer (cudaMemcpyAsync from pinned
     memory: a true asynchronous DMA);
  3. the consumer's stream waits for that copy (an event); the caller's kernels on the
     consumer's stream read the device buffer, and leaving `upload`'s block records that
     they were queued.
Ring slots are reused only after events say so: the host waits for a slot's previous copy
before refilling its pinned buffer, and the side stream waits for the slot's previous
consumer before overwriting its device buffer.
"""

from __future__ import annotations

import contextlib

import numpy as np


def stream_device(cupy, stream) -> int:
    """The GPU ordinal a CuPy stream belongs to."""
    dev = getattr(stream, "device_id", None)
    if dev is None or dev < 0:  # older CuPy: the null stream has no device of its own
        return cupy.cuda.Device().id
    return int(dev)


class UploadRing:
    """`slots` pinned + device buffer pairs on the GPU of the consumer's CuPy stream.

    >>> ring = UploadRing(cupy, consumer_stream)
    >>> with ring.upload(images) as x:      # x: a CuPy uint8 array, ready in consumer order
    ...     out = kernel_on_consumer_stream(x)
    """

    def __init__(self, cupy, consumer, slots: int = 3):
        self._cp = cupy
        self.consumer = consumer
        # The consumer's GPU, not whichever is current here (a stream on another GPU than
        # the current one cannot be entered).
        self.device = stream_device(cupy, consumer)
        with cupy.cuda.Device(self.device):
            self.side = cupy.cuda.Stream(non_blocking=True)
            self._slots = [_RingSlot(cupy) for _ in range(max(1, int(slots)))]
        self._next = 0

    @contextlib.contextmanager
    def upload(self, images: np.ndarray):
        """The device copy of the C-contiguous uint8 `images`, ordered before the consumer's
        next work; the slot is free again once the work queued inside the block has run."""
        cp = self._cp
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        slot.fit(images.nbytes)
        slot.copied.synchronize()  # host: this pinned buffer's previous upload has finished
        host = np.frombuffer(slot.pinned, np.uint8, images.nbytes).reshape(images.shape)
        host[...] = images
        self.side.wait_event(slot.consumed)  # the work that last read this device buffer ran
        cp.cuda.runtime.memcpyAsync(
            slot.device.ptr, host.ctypes.data, images.nbytes,
            cp.cuda.runtime.memcpyHostToDevice, self.side.ptr,
        )
        slot.copied.record(self.side)
        self.consumer.wait_event(slot.copied)
        try:
            yield cp.ndarray(images.shape, np.uint8, memptr=slot.device)
        finally:
            slot.consumed.record(self.consumer)


class _RingSlot:
    """One pinned host buffer, one device buffer and the two events that guard their reuse."""

    def __init__(self, cupy):
        self._cp = cupy
        self.nbytes = 0
        self.pinned = self.device = None
        self.copied = cupy.cuda.Event(disable_timing=True)
        self.consumed = cupy.cuda.Event(disable_timing=True)

    def fit(self, nbytes: int) -> None:
        if nbytes <= self.nbytes:
            return
        # Growing (the first batch): let the old buffers' last users finish before freeing.
        self.copied.synchronize()
        self.consumed.synchronize()
        self.pinned = self._cp.cuda.alloc_pinned_memory(nbytes)
        self.device = self._cp.cuda.alloc(nbytes)
        self.nbytes = nbytes
