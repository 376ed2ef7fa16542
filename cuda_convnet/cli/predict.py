"""`predict CKPT IMAGE [IMAGE ...]`: the most probable classes of image files.

    python -m cuda_convnet predict run1/checkpoint.npz cat.jpg dog.png --ten-crop

Each file is decoded exactly as `prepare` decodes a training image (data.images: any
format Pillow reads, to RGB, shorter side to the store's size, centre square; §2), then
the net sees its centre crop, or the ten views of §4.1 with the softmax outputs averaged,
minus the training mean image. A checkpoint written by `train` carries the class names,
the mean image and the store's image size, so nothing else is needed; for one that does
not (or to relabel), --classes-from STORE takes them from the store it was trained on.

A file that cannot be read (missing, not an image, truncated) does not stop the others:
every readable file is classified, each unreadable one gets one line on stderr, and the
exit status is then 2. The results go to stdout, a batch at a time; a progress bar over the
files is drawn on stderr, as `eval` and `train` draw theirs (--no-progress: none).
"""
from __future__ import annotations

import sys

import numpy as np


def add_parser(sub):
    from .args import path, positive_int
    from .common import add_precision

    p = sub.add_parser("predict", help="top-5 classes and probabilities of image files",
                       description="Classify image files with a trained checkpoint: the --top most probable "
                                   "classes and their softmax probabilities.")
    p.add_argument("checkpoint", type=path, metavar="CKPT", help="checkpoint file, or a training folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ... any Pillow reads)")
    p.add_argument("--classes-from", type=path, default=None, metavar="STORE",
                   help="take the class names (and the mean image and size, if the checkpoint lacks them) from "
                        "this store")
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to list (default 5)")
    p.add_argument("--ten-crop", action="store_true",
                   help="average the softmax over the ten views of §4.1 (default: the centre crop)")
    add_precision(p, "the checkpoint's (fp32 if it records none)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--devices", default=None,
                   help="cpu, emu or cuda:N (or two, one per tower); default cuda:0 when a GPU is usable, else cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is drawn on stderr)")
    p.set_defaults(func=run)


def decode(path, size: int) -> np.ndarray:
    """data.images.load_fixed_size (the decoder `prepare` uses, EXIF orientation
    included) with one-line errors naming the file."""
    import os

    from ..data.images import load_fixed_size
    from . import UsageError

    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, not an image file")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    try:
        return load_fixed_size(path, size)
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for a bad file (see data/images.py)
        raise UsageError(f"{path}: cannot decode as an image ({type(e).__name__}: {e})") from None


def run(args):
    from ..data.views import test_views
    from . import UsageError
    from .common import load_model, open_store, parse_devices

    if args.top < 1 or args.batch_size < 1:
        raise UsageError("--top and --batch-size must be >= 1")
    devices = parse_devices(args.devices)
    ck = load_model(args.checkpoint, devices, args.precision)
    net = ck.net
    classes, mean, size = ck.extra.get("classes"), ck.arrays.get("mean"), ck.extra.get("image_size")
    if args.classes_from is not None:
        store = open_store(args.classes_from, None)
        classes = store.classes
        if mean is None:
            mean, size = store.mean, store.size
        size = size or store.size
    n_out = net.shapes[net.output_name][-1]
    if classes is None:
        raise UsageError(f"{args.checkpoint} carries no class names (not written by `train`); pass --classes-from "
                         "STORE, the store it was trained on")
    if len(classes) != n_out:
        raise UsageError(f"the net has {n_out} outputs but {len(classes)} class names were given")
    if mean is None or size is None:
        raise UsageError(f"{args.checkpoint} carries no mean image; pass --classes-from STORE, the store it was "
                         "trained on")
    crop = net.input_shape[0]
    if mean.shape != (size, size, 3) or crop > size:
        raise UsageError(f"the mean image is {mean.shape[0]}x{mean.shape[1]} but the net takes {crop}x{crop} crops "
                         f"of {size}x{size} images")

    scale = ck.extra.get("input_scale", 1.0)  # the views' scale the net was trained on (cli/common.py)
    k = min(args.top, len(classes))
    width = max(len(c) for c in classes)
    failed = 0
    bar = _bar(len(args.images), enabled=not args.no_progress)
    try:
        for lo in range(0, len(args.images), args.batch_size):
            paths, decoded = [], []
            for path in args.images[lo:lo + args.batch_size]:
                try:
                    decoded.append(decode(path, size))
                    paths.append(path)
                except UsageError as e:  # this file only: report it, go on with the others
                    bar.write(f"cuda-convnet predict: error: {e}", file=sys.stderr)
                    failed += 1
            if decoded:
                batch = np.stack(decoded)
                views = test_views(batch, mean, crop=crop, ten_crop=args.ten_crop)
                views = (views if args.ten_crop else views[None]) * np.float32(scale)
                probs = np.mean([net.predict(np.ascontiguousarray(v, dtype=net.dtype)) for v in views], axis=0)
                lines = []
                for path, p in zip(paths, probs):
                    lines.append(path)
                    lines += [f"  {rank}. {classes[c]:<{width}}  {p[c]:.4f}"
                              for rank, c in enumerate(np.argsort(-p, kind="stable")[:k], start=1)]
                bar.write("\n".join(lines), file=sys.stdout)
                sys.stdout.flush()  # results before the next batch's error lines, in a terminal too
            bar.update(len(args.images[lo:lo + args.batch_size]))
    finally:
        bar.close()
    return 2 if failed else 0


class _NoBar:
    """The progress bar's interface with no bar (--no-progress, or no tqdm)."""

    def write(self, s, file):
        print(s, file=file)

    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, enabled: bool):
    """A tqdm bar over the image files on stderr, as `eval` and `prepare` draw theirs; its
    write() prints a line above the bar, so results and error lines do not tear it."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            return _NoBar()
        return tqdm(total=total, unit="img", desc="predict")
    return _NoBar()
