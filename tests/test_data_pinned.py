"""data.pinned: the ring of reused page-locked buffers the loader writes batches into on a
GPU. The ring's rule (a buffer is written again only after the upload that read it has
completed, or after its batch was dropped unread) is checked on the host with a host
allocator and events whose completion the test controls; the upload itself
(Device._upload_pinned, one cupy copy on the device stream) needs a GPU."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from cuda_convnet.data.loader import BatchLoader
from cuda_convnet.data.pinned import PinnedBatch, PinnedRing
from cuda_convnet.net.devices import Device


class Event:
    """An upload event that completes when the test says so."""

    def __init__(self):
        self.done = threading.Event()
        self.waited = False

    def synchronize(self):
        self.waited = True
        assert self.done.wait(5), "the ring waited on an event that never completed"


def _ptr(a):
    return a.__array_interface__["data"][0]


def test_stage_copies_into_rotating_slots():
    ring = PinnedRing(3, alloc=bytearray)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 4, 4, 3)).astype(np.float32) for _ in range(3)]
    staged = [ring.stage(x) for x in xs]
    for x, s in zip(xs, staged):
        assert isinstance(s, PinnedBatch) and s.flags.c_contiguous
        np.testing.assert_array_equal(s, x)
    assert len({_ptr(s) for s in staged}) == 3
    for s in staged:
        s.uploaded(ev := Event())
        ev.done.set()
    again = ring.stage(xs[0])  # slot 0 again, its upload done: the same memory
    assert _ptr(again) == _ptr(staged[0])


def test_a_slot_is_reused_only_after_its_upload_completed():
    ring = PinnedRing(2, alloc=bytearray)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    first, second = ring.stage(x), ring.stage(x + 1)
    got = []
    t = threading.Thread(target=lambda: got.append(ring.stage(x + 2)))
    t.start()
    t.join(0.2)
    assert t.is_alive() and not got  # `first` is held and not uploaded: slot 0 is busy
    ev = Event()
    first.uploaded(ev)  # the upload is queued, not finished
    t.join(0.2)
    assert t.is_alive() and ev.waited
    np.testing.assert_array_equal(first, x)  # still intact while the copy may read it
    ev.done.set()
    t.join(5)
    assert not t.is_alive() and _ptr(got[0]) == _ptr(first)
    np.testing.assert_array_equal(got[0], x + 2)
    np.testing.assert_array_equal(second, x + 1)


def test_a_dropped_batch_frees_its_slot():
    ring = PinnedRing(2, alloc=bytearray)
    x = np.ones((3, 5), np.float32)
    a = ring.stage(x)
    ring.stage(x)
    ptr = _ptr(a)
    del a
    gc.collect()
    assert _ptr(ring.stage(2 * x)) == ptr  # no upload will come: no wait


def test_loader_with_the_ring_yields_the_same_batches():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (37, 6, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 37)

    def augment(x, offset):
        return x.astype(np.float32) / 255 + offset

    plain = list(BatchLoader((images, labels), 8, shuffle=True, seed=3, augment=augment).iter_epoch(0))
    ring = PinnedRing(4, alloc=bytearray)
    loader = BatchLoader((images, labels), 8, shuffle=True, seed=3, augment=augment, to_device=ring)
    n = 0
    for (x, y), (px, py) in zip(loader.iter_epoch(0), plain):
        assert isinstance(x, PinnedBatch)
        np.testing.assert_array_equal(x, px)
        np.testing.assert_array_equal(y, py)
        n += 1
        del x  # dropped without an upload (a host device): the slot frees itself
    loader.close()
    assert n == len(plain) == 5


def test_host_devices_take_a_pinned_batch_as_a_numpy_array():
    ring = PinnedRing(2, alloc=bytearray)
    x = ring.stage(np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32))
    for kind in ("cpu", "emu"):
        np.testing.assert_array_equal(Device(kind).asarray(x), x)


def test_ring_needs_two_slots():
    with pytest.raises(ValueError, match="slots must be >= 2"):
        PinnedRing(1)
