"""Page-locked (pinned) host batches for asynchronous uploads to a GPU.

An upload from pageable memory is staged by the driver (or by CuPy, through a pinned
bounce buffer filled on the calling thread): for AlexNet's 128 x 224 x 224 x 3 float32
batch that is a 77 MB host copy on the training thread before every step. A
`PinnedRing` lets the BatchLoader's background thread write each batch straight into
one of a few reused pinned buffers (`BatchLoader(..., to_device=PinnedRing())`); the
consumer's upload (`Device.asarray` of a `PinnedBatch`) is then one asynchronous
host-to-device copy on the device's stream, after which an event is recorded on that
stream. A buffer is written again only once that event has completed (its upload has
read it), or once the batch it held was dropped without an upload: the loader thread
waits for that, the training thread never does.
"""
from __future__ import annotations

import threading
import time
import weakref

import numpy as np


class PinnedBatch(np.ndarray):
    """A NumPy array in one PinnedRing slot's page-locked memory (views keep the slot)."""

    _slot = None

    def __array_finalize__(self, obj):
        self._slot = getattr(obj, "_slot", None)

    def uploaded(self, event) -> None:
        """Record `event` (recorded on the stream of the copy that reads this batch): the
        slot is reused once it has completed."""
        if self._slot is not None:
            self._slot.uploaded(event)


class _Slot:
    def __init__(self):
        self.mem, self.nbytes = None, 0
        self.batch = None    # weak reference to the PinnedBatch handed out
        self.event = None    # recorded after its upload was queued
        self.lock = threading.Lock()

    def uploaded(self, event) -> None:
        with self.lock:
            self.event = event

    def wait_free(self, poll_s: float) -> None:
        """Until the last batch of this slot is uploaded (its event done) or dropped."""
        while True:
            with self.lock:
                event, alive = self.event, self.batch is not None and self.batch() is not None
            if event is not None:
                event.synchronize()
                return
            if not alive:
                return
            time.sleep(poll_s)


def _cuda_pinned(nbytes: int):
    import cupy

    return cupy.cuda.alloc_pinned_memory(nbytes)


class PinnedRing:
    """`slots` reused pinned buffers; call it as a BatchLoader `to_device(x, y)` hook.

    slots must exceed the batches alive at once: the loader's prefetch queue, the one it
    is producing and the one the consumer holds (the default 4 covers prefetch=2). alloc:
    nbytes -> a buffer object (default cupy.cuda.alloc_pinned_memory; tests pass a
    host allocator). Batches grow their slot's buffer when a larger one arrives.
    """

    def __init__(self, slots: int = 4, *, alloc=None, poll_s: float = 0.0005):
        if int(slots) < 2:
            raise ValueError(f"PinnedRing: slots must be >= 2, got {slots}")
        self._slots = [_Slot() for _ in range(int(slots))]
        self._next = 0
        self._alloc = alloc or _cuda_pinned
        self._poll_s = float(poll_s)

    def stage(self, x) -> PinnedBatch:
        """A copy of `x` (C order) in the next slot's pinned memory."""
        x = np.asarray(x)
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        slot.wait_free(self._poll_s)
        if slot.nbytes < x.nbytes:
            slot.mem, slot.nbytes = self._alloc(max(1, x.nbytes)), max(1, x.nbytes)
        out = np.frombuffer(slot.mem, dtype=x.dtype, count=x.size).reshape(x.shape).view(PinnedBatch)
        np.copyto(out, x)
        out._slot = slot
        with slot.lock:
            slot.event, slot.batch = None, weakref.ref(out)
        return out

    def __call__(self, x, y):
        if type(x).__module__.startswith("cupy"):  # made on the GPU already (KernelTrainAugment)
            return x, y
        return self.stage(x), y
