"""The data loader's augment callables (BatchLoader(augment=...), paper §4.1):

    TrainAugment        the training views in NumPy (cuda_convnet.reference.augment's recipe)
    KernelTrainAugment  the same views from the fused kernel (csrc/augment.cuh), "emu" or "cuda"
    CenterView          the centre test view (validation during training; views.py)

The training-view math (the Philox recipe the fused CUDA kernel reproduces bit for bit)
is the reference op, cuda_convnet.reference.augment; the test views are views.py; the
cuda path's host-to-device upload is upload.py.
"""

from __future__ import annotations

import threading

import numpy as np

from ..reference.augment import _u64, lighting_constants, train_views
from .views import test_views


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

    The cuda path uploads each batch through an UploadRing (data/upload.py: pinned ring,
    side stream, events) and runs the kernel on the consumer's stream.
    What overlaps: the host-to-device copy of batch b+1 with whatever the consumer's stream
    runs meanwhile (training step b), and the host work (plus the loader's gather) with all
    GPU work.  What does not: the kernel itself runs on the consumer's stream, between the
    kernels of the step being queued (19 MB read + 77 MB written for 128 images: ~40 us on
    an H100 at copy bandwidth, an estimate; bench/kernel_bench.py measures it).  That
    placement is deliberate: the output is ready in stream order with no synchronisation by
    the consumer, and its memory, from CuPy's pool for that stream, is only recycled after
    the consumer's earlier work on it.

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

        from .upload import UploadRing

        self._cp = cupy
        self._ring = UploadRing(cupy, stream if stream is not None else cupy.cuda.get_current_stream(), slots)
        self._consumer, self._device = self._ring.consumer, self._ring.device
        with cupy.cuda.Device(self._device), self._ring.side:
            self.mean = None if mean is None else cupy.asarray(mean)
        self._ring.side.synchronize()  # the mean's upload, before any consumer kernel reads it

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
        if images.size == 0:
            with self._consumer:
                return self.device_views(self._cp.empty(images.shape, np.uint8), offset)
        with self._ring.upload(images) as x, self._consumer:  # output from the consumer stream's pool
            return self.device_views(x, offset)


class CenterView:
    """The centre test view as a loader callable (validation during training)."""

    def __init__(self, mean, crop: int = 224):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.crop = crop

    def __call__(self, images, *, offset: int = 0) -> np.ndarray:
        return test_views(images, self.mean, crop=self.crop, ten_crop=False)
