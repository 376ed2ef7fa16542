"""BatchLoader: coverage, determinism, prefetching, errors, shutdown."""

import threading
import time

import numpy as np
import pytest

from cuda_convnet.data.augment import TrainAugment
from cuda_convnet.data.loader import BatchLoader


def _data(n=50, size=8):
    # image i is filled with i % 256 and labelled i: batches reveal which examples they hold
    imgs = np.broadcast_to(
        (np.arange(n) % 256).astype(np.uint8)[:, None, None, None], (n, size, size, 3)
    ).copy()
    return imgs, np.arange(n, dtype=np.int32)


def _loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("BatchLoader")]


def test_every_example_once_per_epoch_and_deterministic():
    data = _data(50)
    with (
        BatchLoader(data, 8, shuffle=True, seed=3) as a,
        BatchLoader(data, 8, shuffle=True, seed=3) as b,
    ):
        assert len(a) == 7
        ea0 = [y.copy() for _, y in a]
        eb0 = [y.copy() for _, y in b]
        ea1 = [y.copy() for _, y in a]  # the next epoch
    assert [len(y) for y in ea0] == [8] * 6 + [2]
    assert sorted(np.concatenate(ea0).tolist()) == list(range(50))
    assert sorted(np.concatenate(ea1).tolist()) == list(range(50))
    assert all(np.array_equal(x, y) for x, y in zip(ea0, eb0))
    assert not np.array_equal(np.concatenate(ea0), np.concatenate(ea1))
    with BatchLoader(data, 8, shuffle=True, seed=4) as c:
        assert not np.array_equal(np.concatenate([y for _, y in c]), np.concatenate(ea0))
    with BatchLoader(data, 8, shuffle=False, drop_last=True) as d:
        ys = [y for _, y in d]
        assert len(d) == 6 and np.array_equal(np.concatenate(ys), np.arange(48))
    for x, y in BatchLoader(data, 16, shuffle=True, seed=0):
        assert np.array_equal(x[:, 0, 0, 0], y % 256)  # images travel with their labels


def test_augment_offsets_and_resume():
    calls = []

    def aug(x, *, offset):
        calls.append(offset)
        return x.astype(np.float32) + offset

    data = _data(20)
    with BatchLoader(data, 6, shuffle=True, seed=1, augment=aug) as ld:
        list(ld)
        list(ld)
        assert calls == [0, 6, 12, 18, 20, 26, 32, 38]  # offset = epoch * N + batch * batch_size
        e1 = list(ld.iter_epoch(1))
        resumed = ld.epochs(start_epoch=1, start_batch=2)
        for i in range(2):
            e, b, x, y = next(resumed)
            assert (e, b) == (1, 2 + i)
            np.testing.assert_array_equal(x, e1[2 + i][0])
            np.testing.assert_array_equal(y, e1[2 + i][1])
        e, b, _, _ = next(resumed)
        assert (e, b) == (2, 0)
        resumed.close()


def test_producer_runs_ahead_and_is_bounded():
    produced = []

    def aug(x, *, offset):
        produced.append(offset)
        return x

    data = _data(64)
    with BatchLoader(data, 4, shuffle=False, augment=aug, prefetch=2) as ld:
        it = iter(ld)
        next(it)
        # While the consumer "trains" on batch 0, batches 1 and 2 fill the queue and batch
        # 3 is made and held by the producer, blocked on the full queue.
        deadline = time.monotonic() + 10
        while len(produced) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(produced) == 4, produced
        time.sleep(0.3)
        assert len(produced) == 4  # and it stops there: the queue is bounded
        next(it)
        deadline = time.monotonic() + 10
        while len(produced) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert produced == [0, 4, 8, 12, 16]  # taking one batch lets exactly one more be made
        it.close()
    assert not _loader_threads()


def test_worker_exception_reaches_the_consumer():
    def aug(x, *, offset):
        if offset >= 8:
            raise ZeroDivisionError("bad batch")
        return x

    got = []
    with BatchLoader(_data(20), 4, shuffle=False, augment=aug) as ld:
        with pytest.raises(ZeroDivisionError, match="bad batch") as ei:
            for _, y in ld:
                got.append(y)
        assert len(got) == 2
        assert any("background thread" in n for n in getattr(ei.value, "__notes__", []))
    assert not _loader_threads()


def test_clean_shutdown_when_the_consumer_stops_early():
    ld = BatchLoader(_data(200), 2, shuffle=True, seed=0, prefetch=3)
    for i, _ in enumerate(ld):
        if i == 2:
            break
    ld.close()
    assert not _loader_threads()
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(ld))
    ld.close()  # idempotent
    # an iterator that is never advanced starts no thread
    ld2 = BatchLoader(_data(10), 2, shuffle=False)
    it = iter(ld2)
    assert not _loader_threads()
    del it
    ld2.close()


def test_to_device_runs_in_the_background_thread():
    where = []

    def to_device(x, y):
        where.append(threading.current_thread().name)
        return x.astype(np.float32), y.astype(np.int64)

    with BatchLoader(_data(10), 5, shuffle=False, to_device=to_device) as ld:
        batches = list(ld)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    assert len(where) == 2 and all(n.startswith("BatchLoader") for n in where)


def test_threaded_augmentation_equals_single_thread():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(12, dtype=np.int32)
    aug = TrainAugment(
        seed=5, mean=imgs.mean(0), eigvals=[300.0, 50.0, 5.0], eigvecs=np.eye(3), crop=48
    )
    with (
        BatchLoader((imgs, labels), 6, shuffle=True, seed=2, augment=aug) as a,
        BatchLoader((imgs, labels), 6, shuffle=True, seed=2, augment=aug, threads=3) as b,
    ):
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_bad_arguments():
    with pytest.raises(ValueError, match="labels"):
        BatchLoader((np.zeros((3, 2, 2, 3), np.uint8), np.zeros(2)), 2, shuffle=False)
    with pytest.raises(TypeError):
        BatchLoader(np.zeros(3), 2, shuffle=False)
    with pytest.raises(ValueError):
        BatchLoader(_data(4), 0, shuffle=False)


def test_whole_batch_augment_is_called_once_per_batch_with_threads():
    """A one-launch augment (KernelTrainAugment sets whole_batch) is never split over the
    pool: its device batches cannot be joined with np.concatenate."""
    from cuda_convnet.data.augment import KernelTrainAugment

    assert KernelTrainAugment.whole_batch is True
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 5, 5, 3), dtype=np.uint8)
    calls = []

    class OneLaunch:
        whole_batch = True

        def __call__(self, x, *, offset):
            calls.append((len(x), offset))
            return x.astype(np.float32) + offset

    with BatchLoader((images, np.arange(12)), 6, shuffle=False, augment=OneLaunch(), threads=3) as loader:
        xs = [x for x, _ in loader]
    assert calls == [(6, 0), (6, 6)]
    np.testing.assert_array_equal(xs[1], images[6:].astype(np.float32) + 6)


def test_split_augment_returning_non_numpy_batches_is_refused():
    class DeviceLike:  # stands for a device array type, which np.concatenate cannot join
        def __init__(self, n):
            self.n = n

    images = np.random.default_rng(4).integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    with BatchLoader((images, np.arange(8)), 8, shuffle=False, augment=lambda x, offset: DeviceLike(len(x)),
                     threads=2) as loader, pytest.raises(TypeError, match=r"threads=2.*not NumPy.*whole_batch"):
        next(iter(loader))
