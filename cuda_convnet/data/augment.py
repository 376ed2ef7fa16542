"""Training and test views of 256x256 uint8 images (§4.1), the loader side.

§4.1: training on "random 224x224 patches (and their horizontal reflections)" with PCA
lighting; at test time "five 224x224 patches (the four corner patches and the center
patch) as well as their horizontal reflections (hence ten patches in all)", softmax
averaged (evaluate.py does the averaging). §2: subtract the training mean.

The training-view math (the Philox recipe the fused CUDA kernel reproduces bit for bit:
draw_numbers, train_view_params, lighting_constants, lighting_deltas, train_views, ...)
is the reference op in cuda_convnet.reference.augment, re-exported here. This module
holds what the data pipeline adds: the test views (ten_crop_offsets, view, test_views),
TrainAugment / KernelTrainAugment (BatchLoader augment callables, the NumPy and kernel
paths) and CenterView.
"""

from __future__ import annotations

import threading

import numpy as np

from ..reference.augment import (  # noqa: F401  (the §4.1 recipe, re-exported)
    AUGMENT_TAG,
    PCA_SCALES,
    TWO_PI,
    _check_images,
    _check_mean,
    _u64,
    box_muller_normals,
    draw_numbers,
    lighting_constants,
    lighting_deltas,
    train_view_params,
    train_views,
    train_views_from_constants,
)

# -- test views -------------------------------------------------------------------------------
VIEW_NAMES = (
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "centre",
    "top-left flipped",
    "top-right flipped",
    "bottom-left flipped",
    "bottom-right flipped",
    "centre flipped",
)


def ten_crop_offsets(size: int = 256, crop: int = 224) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of the ten test views (§4.1), in VIEW_NAMES order.

    Corners at 0 and size - crop; the centre at (size - crop) // 2 (16 for 256/224).
    """
    if not 0 < crop <= size:
        raise ValueError(f"crop {crop} must be in (0, {size}]")
    far, mid = size - crop, (size - crop) // 2
    five = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    return [(t, left, False) for t, left in five] + [(t, left, True) for t, left in five]


def view(images, mean, top: int, left: int, flip: bool, crop: int = 224) -> np.ndarray:
    """One fixed view of every image: float32 (N, crop, crop, 3), mean-subtracted (aligned)."""
    images = _check_images(images, crop)
    mean = _check_mean(mean, images)
    x = images[:, top : top + crop, left : left + crop].astype(np.float32)
    if mean is not None:
        x -= mean[top : top + crop, left : left + crop]
    if flip:
        x = np.ascontiguousarray(x[:, :, ::-1])
    return x


def test_views(images, mean, *, crop: int = 224, ten_crop: bool = True) -> np.ndarray:
    """Centre view (N, crop, crop, 3), or all ten views (10, N, crop, crop, 3) (§4.1).

    The ten are in VIEW_NAMES order.  Memory: 10 * N * crop^2 * 12 bytes (770 MB for
    N = 128); evaluate.py produces one view at a time instead.
    """
    images = _check_images(images, crop)
    size = images.shape[1]
    if images.shape[2] != size:
        raise ValueError(
            f"test_views expects square images, got {images.shape[1]}x{images.shape[2]}"
        )
    offsets = ten_crop_offsets(size, crop)
    if not ten_crop:
        t, left, _ = offsets[4]
        return view(images, mean, t, left, False, crop)
    return np.stack([view(images, mean, t, left, f, crop) for t, left, f in offsets])


test_views.__test__ = False  # not a pytest test, despite the name


def store_statistics(store) -> dict:
    """The training statistics an augmentation needs from an ImageStore (§2 mean, §4.1 PCA)."""
    if store.mean is None:
        raise ValueError(f"{store!r} has no training statistics (mean, eigvals, eigvecs)")
    return {"mean": store.mean, "eigvals": store.eigvals, "eigvecs": store.eigvecs}


class TrainAugment:
    """train_views as a loader callable: f(images, offset=) with fixed seed and statistics.

    >>> aug = TrainAugment.from_store(store, seed=1)
    >>> BatchLoader(store, shuffle=True, seed=1, augment=aug)
    """

    def __init__(
        self,
        *,
        seed: int,
        mean,
        eigvals,
        eigvecs,
        crop: int = 224,
        lighting_std: float = 0.1,
        pca_scale: str = "stdev",
    ):
        self.seed = _u64(seed, "seed")
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.eigvals, self.eigvecs = eigvals, eigvecs
        lighting_constants(eigvals, eigvecs, pca_scale)  # validate now, not in the loader thread
        self.crop, self.lighting_std, self.pca_scale = crop, lighting_std, pca_scale

    @classmethod
    def from_store(cls, store, *, seed: int, **kw) -> TrainAugment:
        return cls(seed=seed, **store_statistics(store), **kw)

    def output_shape(self, n: int) -> tuple[int, int, int, int]:
        # Lets BatchLoader(threads > 1) allocate one batch and have threads fill slices.
        return (n, self.crop, self.crop, 3)

    def __call__(self, images, *, offset: int, out: np.ndarray | None = None) -> np.ndarray:
        return train_views(
            images,
            seed=self.seed,
            offset=offset,
            mean=self.mean,
            eigvals=self.eigvals,
            eigvecs=self.eigvecs,
            crop=self.crop,
            lighting_std=self.lighting_std,
            pca_scale=self.pca_scale,
            out=out,
        )


class KernelTrainAugment:
    """TrainAugment on the fused kernel (csrc/augment.cuh) of a kernel backend, "emu" or "cuda".

    The same views as TrainAugment (bit for bit; on "cuda" up to the libm note of the
    module docstring), one launch per batch.  On "emu" the batch stays a NumPy array (the
    kernel runs on the CPU through the SIMT emulator: for testing the loader path, not
    for speed).  On "cuda" __call__ returns a CuPy float32 batch on the consumer's stream:

    >>> aug = KernelTrainAugment.from_store(store, seed=1, backend="cuda")
    >>> BatchLoader(store, 128, shuffle=True, seed=1, augment=aug)   # threads=1

    How the cuda path moves a batch (in the loader's background thread):
      1. the uint8 batch is copied (host memcpy) into a pinned buffer of a small ring;
      2. a side stream (non-blocking) copies it to a device buffer of the same ring slot
         (cudaMemcpyAsync from pinned memory: a true asynchronous DMA);
      3. the consumer's stream waits for that copy (an event) and runs the kernel, whose
         output is allocated on the consumer's stream.
    What overlaps: the host-to-device copy of batch b+1 with whatever the consumer's stream
    runs meanwhile (training step b), and the host work of 1. (plus the loader's gather)
    with all GPU work.  What does not: the kernel itself runs on the consumer's stream,
    between the kernels of the step being queued (19 MB read + 77 MB written for 128
    images: ~40 us on an H100 at copy bandwidth, an estimate; bench/kernel_bench.py
    measures it).  That placement is deliberate: the output is ready in stream order with
    no synchronisation by the consumer, and its memory, from CuPy's pool for that stream,
    is only recycled after the consumer's earlier work on it.
    Ring slots are reused only after events say so: the host waits for a slot's previous
    copy before refilling its pinned buffer, and the side stream waits for the slot's
    previous kernel before overwriting its device buffer.

    `stream`: the consumer's CuPy stream (default: the current stream when this object is
    built, normally the null stream of the training thread). The GPU is the stream's: the
    side stream, the ring buffers and the mean image are made there, and every call runs
    with that GPU current, whichever GPU the loader's thread has current.
    A Net adopts the batches with `net.devices[0].adopt(x, stream=aug.stream)` (what
    training.fit does): its stream waits for this one before reading them.
    """

    #: One launch covers the whole batch: BatchLoader calls it once per batch (a thread
    #: pool would only split the launch and serialise on the ring's lock).
    whole_batch = True

    def __init__(
        self,
        *,
        backend: str,
        seed: int,
        mean,
        eigvals,
        eigvecs,
        crop: int = 224,
        lighting_std: float = 0.1,
        pca_scale: str = "stdev",
        stream=None,
        slots: int = 3,
    ):
        if backend not in ("emu", "cuda"):
            raise ValueError(
                f"KernelTrainAugment runs a kernel backend, 'emu' or 'cuda', got {backend!r} "
                "(TrainAugment is the NumPy path)"
            )
        from ..backends import backend as get_backend

        self.seed = _u64(seed, "seed")
        self.sigma, self.P = lighting_constants(eigvals, eigvecs, pca_scale)
        self.crop, self.lighting_std = int(crop), float(lighting_std)
        self.backend = backend
        self.ops = get_backend(backend)
        mean = None if mean is None else np.ascontiguousarray(mean, dtype=np.float32)
        self._lock = threading.Lock()  # the ring is one caller's at a time
        if backend == "emu":
            self.mean = mean
            return
        import cupy

        self._cp = cupy
        self._consumer = stream if stream is not None else cupy.cuda.get_current_stream()
        # The consumer's GPU, not whichever is current here (a stream on another GPU than
        # the current one cannot be entered).
        self._device = _stream_device(cupy, self._consumer)
        with cupy.cuda.Device(self._device):
            self._side = cupy.cuda.Stream(non_blocking=True)
            with self._side:
                self.mean = None if mean is None else cupy.asarray(mean)
            self._side.synchronize()  # the mean's upload, before any consumer kernel reads it
            self._slots = [_RingSlot(cupy) for _ in range(max(1, int(slots)))]
        self._next = 0

    @property
    def stream(self):
        """The stream the cuda batches are made on (None on emu: NumPy, synchronous)."""
        return None if self.backend == "emu" else self._consumer

    @classmethod
    def from_store(cls, store, *, seed: int, backend: str, **kw) -> KernelTrainAugment:
        return cls(backend=backend, seed=seed, **store_statistics(store), **kw)

    def __call__(self, images, *, offset: int):
        images = np.ascontiguousarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"KernelTrainAugment: images must be uint8, got {images.dtype}")
        with self._lock:
            if self.backend == "emu":
                return self.device_views(images, offset)
            with self._cp.cuda.Device(self._device):
                return self._cuda_call(images, offset)

    def device_views(self, images, offset: int):
        """The kernel on a batch already on the backend's device (current stream on cuda)."""
        return self.ops.train_views(
            images, seed=self.seed, offset=offset, mean=self.mean, sigma=self.sigma, P=self.P,
            crop=self.crop, lighting_std=self.lighting_std,
        )

    def _cuda_call(self, images, offset):
        cp = self._cp
        if images.size == 0:
            with self._consumer:
                return self.device_views(cp.empty(images.shape, np.uint8), offset)
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        slot.fit(images.nbytes)
        slot.copied.synchronize()  # host: this pinned buffer's previous upload has finished
        host = np.frombuffer(slot.pinned, np.uint8, images.nbytes).reshape(images.shape)
        host[...] = images
        self._side.wait_event(slot.consumed)  # the kernel that last read this device buffer ran
        cp.cuda.runtime.memcpyAsync(
            slot.device.ptr, host.ctypes.data, images.nbytes,
            cp.cuda.runtime.memcpyHostToDevice, self._side.ptr,
        )
        slot.copied.record(self._side)
        self._consumer.wait_event(slot.copied)
        x = cp.ndarray(images.shape, np.uint8, memptr=slot.device)
        with self._consumer:  # the output comes from the consumer stream's pool
            out = self.device_views(x, offset)
        slot.consumed.record(self._consumer)
        return out


def _stream_device(cupy, stream) -> int:
    """The GPU ordinal a CuPy stream belongs to."""
    dev = getattr(stream, "device_id", None)
    if dev is None or dev < 0:  # older CuPy: the null stream has no device of its own
        return cupy.cuda.Device().id
    return int(dev)


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


class CenterView:
    """The centre test view as a loader callable (validation during training)."""

    def __init__(self, mean, crop: int = 224):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.crop = crop

    def __call__(self, images, *, offset: int = 0) -> np.ndarray:
        return test_views(images, self.mean, crop=self.crop, ten_crop=False)
