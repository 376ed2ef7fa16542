"""BatchLoader: shuffled mini-batches, each prepared while the consumer trains on the last.

§4.1: "the transformed images are generated in Python code on the CPU while the GPU is
training on the previous batch of images.  So these data augmentation schemes are, in
effect, computationally free."  Here a background thread gathers batch i+1 from the
(memory-mapped) store, applies `augment` and the optional `to_device` hook, and puts it
in a bounded queue of `prefetch` batches while the consumer works on batch i.  NumPy
releases the GIL in its copies and arithmetic, so the thread really runs alongside.

Determinism.  Epoch e visits the examples in the order
`np.random.default_rng([seed, e]).permutation(N)` (or 0..N-1 without shuffle), cut into
consecutive batches.  Batch b of epoch e is augmented with
`augment(images, offset=e * N + b * batch_size)`: every draw of every image in the run
has its own offset, so with augment.TrainAugment (a pure function of seed, offset and
image index) a run is reproducible from its seed, and a resumed run
(`loader.epochs(start_epoch=, start_batch=)`) sees exactly the batches it would have.

    augment = TrainAugment.from_store(store, seed=1)
    with BatchLoader(store, 128, shuffle=True, seed=1, augment=augment, drop_last=True) as loader:
        for epoch in range(90):
            for x, y in loader:        # one epoch per iteration; loader.epoch counts
                net.train_step(x, y, opt)

On a GPU, `augment=KernelTrainAugment.from_store(store, seed=1, backend="cuda")` gives the
same views from one fused kernel launch per batch (csrc/augment.cuh): the thread only
gathers the uint8 batch and queues its upload and the kernel, and x arrives as a CuPy
array on the consumer's stream. Such an augment says `whole_batch = True` (the batch is
already one launch): the loader then calls it once per batch whatever `threads` is.

With a host augment on a GPU, `to_device=data.pinned.PinnedRing()` (what training.fit
passes for a cuda net) writes each batch into one of a few reused page-locked buffers, so
the net's upload is one asynchronous copy on its stream instead of a 77 MB staging copy on
the training thread.

`threads > 1` splits each batch's augmentation over a thread pool (sub-batch j of a batch
at `offset` gets `offset + start of j`); that gives the same result only for augment
functions that depend on offset + index alone, as TrainAugment does.  An augment with
an `output_shape(n)` method is also passed `out=` (a slice of one preallocated batch).
On a 2-core x86 CPU threads=2 gains little: fresh 77 MB output batches
cost page faults and the copies are memory-bound (see bench/loader_bench.py).

Errors raised while preparing a batch (in augment, to_device, reading the store) are
re-raised in the consumer, with a note saying which batch.  close() (or leaving the
`with` block, or breaking out of the loop and dropping the iterator) stops and joins the
thread; nothing is left running.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import queue
import threading

import numpy as np

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BatchLoader:
    def __init__(
        self,
        source,
        batch_size: int = 128,
        *,
        shuffle: bool,
        seed: int = 0,
        augment=None,
        prefetch: int = 2,
        drop_last: bool = False,
        to_device=None,
        threads: int = 1,
    ):
        """source: an ImageStore, any object with .images and .labels, or (images, labels).

        augment(images_uint8_batch, offset=int) -> batch, or None to yield the raw images.
        to_device(x, y) -> (x, y), applied in the background thread after augment (e.g. a
        copy into pinned memory and an async host-to-device transfer).
        """
        if isinstance(source, (tuple, list)):
            images, labels = source
        elif hasattr(source, "images") and hasattr(source, "labels"):
            images, labels = source.images, source.labels
        else:
            raise TypeError(
                "source must be an ImageStore, an object with .images/.labels, or (images, labels)"
            )
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1 or prefetch < 1 or threads < 1:
            raise ValueError("batch_size, prefetch and threads must be >= 1")
        if len(labels) == 0:
            raise ValueError("empty dataset")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.augment, self.to_device, self.prefetch, self.drop_last = (
            augment,
            to_device,
            int(prefetch),
            drop_last,
        )
        self.threads = int(threads)
        self.epoch = 0  # the epoch the next `for x, y in loader` runs
        self._pool = (
            cf.ThreadPoolExecutor(self.threads, thread_name_prefix="BatchLoader-aug")
            if self.threads > 1
            else None
        )
        self._active: list[tuple[threading.Thread, threading.Event, queue.Queue]] = []
        self._closed = False

    # -- sizes and order -------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The example indices of `epoch`, in visiting order."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_examples)

    # -- iteration ---------------------------------------------------------------------------
    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def epochs(self, start_epoch: int = 0, start_batch: int = 0):
        """Endless (epoch, batch_index, x, y) from a resume point; for checkpoint restarts."""
        e, b = int(start_epoch), int(start_batch)
        while True:
            for i, (x, y) in enumerate(self.iter_epoch(e, b)):
                yield e, b + i, x, y
            e, b = e + 1, 0
            self.epoch = e

    def iter_epoch(self, epoch: int, start_batch: int = 0):
        """A generator over the batches of one epoch, from batch `start_batch`.

        The background thread starts at the first next(), so an iterator that is never
        used leaves nothing running.
        """
        if self._closed:
            raise RuntimeError("BatchLoader is closed")
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        t = threading.Thread(
            target=self._produce,
            args=(int(epoch), int(start_batch), q, stop),
            name=f"BatchLoader-epoch{epoch}",
            daemon=True,
        )
        entry = (t, stop, q)
        self._active.append(entry)
        t.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            self._stop(entry)

    def _produce(self, epoch: int, start_batch: int, q: queue.Queue, stop: threading.Event) -> None:
        b = start_batch
        try:
            order = self.order(epoch)
            n, bs = self.num_examples, self.batch_size
            for b in range(start_batch, len(self)):
                if stop.is_set():
                    return
                idx = order[b * bs : (b + 1) * bs]
                # Gather in increasing index order (sequential reads of the memmap), then
                # restore the shuffled order.
                sort = np.argsort(idx, kind="stable")
                x = np.empty((len(idx),) + tuple(self.images.shape[1:]), dtype=self.images.dtype)
                x[sort] = self.images[idx[sort]]
                y = self.labels[idx]
                if self.augment is not None:
                    x = self._augment(x, epoch * n + b * bs)
                if self.to_device is not None:
                    x, y = self.to_device(x, y)
                if not self._put(q, (x, y), stop):
                    return
            self._put(q, _END, stop)
        except BaseException as e:  # noqa: BLE001 - delivered to the consumer
            with contextlib.suppress(AttributeError):
                e.add_note(
                    f"(raised in BatchLoader's background thread, batch {b} of epoch {epoch})"
                )
            self._put(q, _Failure(e), stop)

    def _augment(self, x, offset: int):
        if self._pool is None or len(x) < 2 * self.threads or getattr(self.augment, "whole_batch", False):
            return self.augment(x, offset=offset)
        bounds = np.linspace(0, len(x), self.threads + 1).astype(int)
        spans = list(zip(bounds[:-1], bounds[1:]))
        if hasattr(self.augment, "output_shape"):
            # The augment can write into slices of one batch (TrainAugment): no concatenate.
            out = np.empty(self.augment.output_shape(len(x)), dtype=np.float32)
            parts = [
                self._pool.submit(self.augment, x[lo:hi], offset=offset + int(lo), out=out[lo:hi])
                for lo, hi in spans
            ]
            for p in parts:
                p.result()
            return out
        parts = [
            self._pool.submit(self.augment, x[lo:hi], offset=offset + int(lo)) for lo, hi in spans
        ]
        results = [p.result() for p in parts]
        if not all(isinstance(r, np.ndarray) for r in results):
            kinds = sorted({type(r).__module__ + "." + type(r).__name__ for r in results})
            raise TypeError(
                f"BatchLoader(threads={self.threads}): augment returned {', '.join(kinds)}, not NumPy "
                "arrays; sub-batches are joined on the host. Give the augment `whole_batch = True` "
                "(one call per batch) or use threads=1"
            )
        return np.concatenate(results)

    @staticmethod
    def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
        # A bounded put that gives up when the consumer has gone away.
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _stop(self, entry) -> None:
        t, stop, q = entry
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                break
        if t is not threading.current_thread():
            t.join()
        if entry in self._active:
            self._active.remove(entry)

    def close(self) -> None:
        """Stop and join every background thread.  Idempotent."""
        for entry in list(self._active):
            self._stop(entry)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Not contextlib.suppress: at interpreter shutdown module globals may already be gone.
        try:  # noqa: SIM105
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
