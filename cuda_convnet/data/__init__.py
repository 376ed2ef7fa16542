"""The data pipeline (ARCHITECTURE.md §7; paper §2, §4.1, §6).  One job per module:

    images.py    decode one file -> RGB, shorter side 256, centre 256x256 (§2)
    stats.py     exact streaming mean image and RGB covariance PCA (§2, §4.1)
    store.py     the packed memory-mapped store format; ImageStore reads a split
    prepare.py   ImageNet-style tree -> store, multi-process, resumable
    scan.py      prepare's walk and checks of the source tree (classes, file lists)
    workers.py   prepare's decoding processes (they end with their parent)
    augment.py   the loader's augment callables: training views in NumPy or from the
                 fused kernel, the centre view (the crop, flip, PCA lighting, mean recipe
                 itself is the reference op, reference/augment.py) (§4.1)
    views.py     test views: centre or ten-crop (§4.1)
    upload.py    the kernel path's host-to-device upload (pinned ring, side stream)
    evaluate.py  top-1 / top-5 error, ten-crop and multi-model averaging (§4.1, §6),
                 counted by the backend op topk_errors
    loader.py    BatchLoader: shuffled batches prepared in a background thread
    cifar.py     CIFAR-10 python batches (Krizhevsky's pickle format)
    digits.py    scikit-learn's 8x8 digits as a tiny offline demo dataset

Nothing here needs the compiled extension or CuPy (augment.KernelTrainAugment, the
kernel path, loads them when built).  Names below are imported lazily so
`import cuda_convnet.data` stays cheap (Pillow, tqdm, scikit-learn load on first use).
"""

from importlib import import_module

_EXPORTS = {
    "prepare": "prepare",
    "PrepareError": "prepare",
    "ImageStore": "store",
    "StoreError": "store",
    "write_store": "store",
    "train_views": "..reference.augment",
    "test_views": "views",
    "ten_crop_offsets": "views",
    "evaluate": "evaluate",
    "topk_error_rates": "evaluate",
    "BatchLoader": "loader",
    "load_cifar10": "cifar",
    "load_digits": "digits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        return getattr(import_module(module if module.startswith(".") else f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
