"""Throughput of the data path: BatchLoader + NumPy training views (§4.1), images/s.

    python bench/loader_bench.py                 # 1024 synthetic 256x256 images, batch 128
    python bench/loader_bench.py --store out/    # a real prepared store (train split)
    python bench/loader_bench.py --smoke         # seconds; run by the tests

What is timed (each over whole epochs, after one warm-up batch):
  train_views        the augmentation alone on in-memory batches (one thread)
  loader gather      BatchLoader without augment: shuffled gather from the memmap
  loader aug t=K     BatchLoader with TrainAugment, augmentation split over K threads
  kernel B           the fused kernel (csrc/augment.cuh) on backend B ("emu" here, "cuda"
                     on a GPU) on in-memory batches already on its device
  loader + kernel B  BatchLoader with KernelTrainAugment(B): gather, (cuda: pinned copy,
                     upload on a side stream), one kernel launch per batch
The consumer does nothing (or sleeps --consume-ms per batch to imitate a training step):
the numbers are what the loader can supply, the ceiling for CPU-side augmentation.  The
GPU path replaces train_views by a fused CUDA kernel on uint8 batches (ARCHITECTURE.md §7).
--kernels picks the kernel backends (default: emu when built, and cuda when usable); on
cuda each timed loop ends with a device synchronisation, so the rate is the GPU's.
bench/kernel_bench.py times the kernel alone with CUDA events (row "train_views").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from cuda_convnet.data.augment import KernelTrainAugment, TrainAugment  # noqa: E402
from cuda_convnet.data.loader import BatchLoader  # noqa: E402
from cuda_convnet.data.store import ImageStore, write_store  # noqa: E402
from cuda_convnet.reference.augment import train_views  # noqa: E402


def synthetic_store(
    root: Path, n: int, size: int = 256, classes: int = 10, seed: int = 0
) -> ImageStore:
    """Random-but-smooth images (a blurred colour field) so the statistics are not degenerate."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        a = rng.uniform(0, 255, size=(3, 3)).astype(np.float32)
        field = a[:, 0, None, None] * yy + a[:, 1, None, None] * xx + a[:, 2, None, None] * 0.5
        noise = rng.integers(0, 32, size=(size, size, 3), dtype=np.uint8)
        images[i] = np.clip(field.transpose(1, 2, 0) * 0.6, 0, 223).astype(np.uint8) + noise
    labels = rng.integers(0, classes, size=n).astype(np.int32)
    write_store(root, {"train": (images, labels)}, [f"c{k}" for k in range(classes)])
    return ImageStore(root, "train")


def time_loader(loader: BatchLoader, consume_s: float, epochs: int, sync=None) -> tuple[float, int]:
    it = iter(loader)
    next(it)  # warm-up: thread start, first gather
    it.close()
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _y in loader:
            n += len(x)
            if consume_s:
                time.sleep(consume_s)
    if sync is not None:
        sync()
    return time.perf_counter() - t0, n


def time_in_memory(fn, batch, reps: int, sync=None) -> float:
    """images/s of fn(batch, offset=) called reps times (after one warm-up call)."""
    fn(batch, offset=0)
    if sync is not None:
        sync()
    t0 = time.perf_counter()
    for r in range(reps):
        fn(batch, offset=r * len(batch))
    if sync is not None:
        sync()
    return reps * len(batch) / (time.perf_counter() - t0)


def kernel_backends(choice: str) -> list[str]:
    """'auto': emu when the extension is built, plus cuda when usable; or a comma list."""
    if choice != "auto":
        return [k for k in choice.split(",") if k and k != "none"]
    import cuda_convnet as ccn

    found = []
    try:
        ccn.backend("emu")
        found.append("emu")
    except ImportError:
        pass
    if ccn.has_cuda():
        found.append("cuda")
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, finishes in seconds")
    p.add_argument(
        "--store", help="a prepared store directory (train split) instead of synthetic data"
    )
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", default="1,2", help="comma list of augmentation thread counts")
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument(
        "--consume-ms", type=float, default=0.0, help="simulated training time per batch"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--kernels", default="auto", help="kernel backends to time: auto, none, or e.g. emu,cuda"
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.images, a.batch_size, a.epochs = 48, 16, 1

    tmp = None
    if a.store:
        store = ImageStore(a.store, "train")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="loader_bench_")
        t = time.perf_counter()
        store = synthetic_store(Path(tmp.name), a.images)
        print(
            f"# synthetic store: {len(store)} images in {time.perf_counter() - t:.1f}s",
            file=sys.stderr,
        )
    results = {
        "images": len(store),
        "batch_size": a.batch_size,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "rows": [],
    }
    aug = TrainAugment.from_store(store, seed=1)
    try:
        # 1. the augmentation alone, in memory
        batch = np.asarray(store.images[: a.batch_size])
        train_views(
            batch, seed=1, offset=0, mean=store.mean, eigvals=store.eigvals, eigvecs=store.eigvecs
        )
        reps = max(1, len(store) // a.batch_size) * a.epochs
        results["rows"].append(
            {
                "what": "train_views (1 thread, in memory)",
                "images_per_s": time_in_memory(aug, batch, reps),
            }
        )
        # the fused kernel, in memory (the batch already on its device)
        syncs = {}
        for k in kernel_backends(a.kernels):
            kaug = KernelTrainAugment.from_store(store, seed=1, backend=k)
            if k == "cuda":
                import cupy

                syncs[k] = cupy.cuda.Device().synchronize
                dev_batch = cupy.asarray(batch)
                fn = lambda x, offset, kaug=kaug: kaug.device_views(x, offset)  # noqa: E731
            else:
                dev_batch, fn = batch, kaug
            results["rows"].append(
                {
                    "what": f"kernel {k} (in memory)",
                    "images_per_s": time_in_memory(fn, dev_batch, reps, syncs.get(k)),
                }
            )
        # 2. loader, gather only; 3. loader + augmentation over K threads; 4. + kernel
        configs = (
            [("loader gather only", None, 1)]
            + [
                (f"loader + train_views, threads={k}", aug, k)
                for k in (int(s) for s in a.threads.split(","))
            ]
            + [
                (f"loader + kernel {k}", KernelTrainAugment.from_store(store, seed=1, backend=k), 1)
                for k in kernel_backends(a.kernels)
            ]
        )
        for name, augment, threads in configs:
            with BatchLoader(
                store,
                a.batch_size,
                shuffle=True,
                seed=0,
                augment=augment,
                prefetch=a.prefetch,
                threads=threads,
                drop_last=True,
            ) as loader:
                sync = syncs.get(name.rsplit(" ", 1)[-1]) if "kernel" in name else None
                dt, n = time_loader(loader, a.consume_ms / 1000.0, a.epochs, sync)
            results["rows"].append({"what": name, "images_per_s": n / dt})
    finally:
        if tmp is not None:
            del store
            tmp.cleanup()
    if a.json:
        print(json.dumps(results))
    else:
        print(
            f"# {results['images']} images 256x256 -> 224 crops, batch {a.batch_size}, "
            f"{results['cpu_count']} CPUs, numpy {results['numpy']}"
        )
        for r in results["rows"]:
            print(f"{r['what']:<40s} {r['images_per_s']:10.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
