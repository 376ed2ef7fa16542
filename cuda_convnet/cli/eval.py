"""`eval STORE CKPT [CKPT ...]`: top-1 / top-5 error on a store split (§2), centre crop or
the paper's ten views (§4.1), one checkpoint or the average of several (§6).

    python -m cuda_convnet eval out/ run1/checkpoint.npz --ten-crop
    python -m cuda_convnet eval out/ run1 run2 run3 --ten-crop --per-class errors.csv

The prediction for an image is the mean of the softmax outputs over (checkpoints x views)
(cuda_convnet.data.evaluate); with several checkpoints each one's own error is printed
too, from the same forward passes. The mean image subtracted is the one the checkpoints
were trained with (they carry it), else the store's (said in the output).

A checkpoint is refused, with what differs, when it does not fit the store: trained on
another image size (prepare --size), a recorded crop that is not the net's input, other
class names or another number of classes, or no class names at all (then nothing says
its outputs are in the store's class order; --assume-store-classes says they are).
"""
from __future__ import annotations

import json
import os

import numpy as np


def add_parser(sub):
    from .args import path, positive_int
    from .common import add_precision

    p = sub.add_parser("eval", help="top-1/top-5 error of one or several (averaged) checkpoints on a store",
                       description="Top-1 and top-5 error (§2, printed in percent) of CKPT on STORE's split, from "
                                   "the centre crop or the ten views of §4.1; several checkpoints are averaged (§6).")
    p.add_argument("store", type=path, help="a store written by `prepare`")
    p.add_argument("checkpoints", type=path, nargs="+", metavar="CKPT",
                   help="checkpoint file(s), or training folder(s)")
    views = p.add_mutually_exclusive_group()
    views.add_argument("--ten-crop", action="store_true",
                       help="average the four corner and centre crops and their reflections (§4.1)")
    views.add_argument("--center", action="store_true", help="the centre crop only (the default)")
    p.add_argument("--split", default="val", help="the store split to evaluate (default val)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="images per forward pass (default 128)")
    p.add_argument("--devices", default=None,
                   help="where to run: cpu, emu or cuda:N, or two comma-separated (one per tower); default "
                        "cuda:0 when a GPU is usable, else cpu")
    add_precision(p, "each checkpoint's own (fp32 for one that records none)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="evaluate N images, evenly spaced")
    p.add_argument("--per-class", type=path, default=None, metavar="CSV",
                   help="write class,count,top1_error,top5_error (errors as fractions in [0, 1])")
    p.add_argument("--json", type=path, default=None, metavar="FILE",
                   help="also write the results as JSON (errors as fractions in [0, 1]; the printed table is in "
                        "percent)")
    p.add_argument("--assume-store-classes", action="store_true",
                   help="accept a checkpoint that records no class names (not written by `train`), taking its "
                        "outputs to be the store's classes in order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class ModelView:
    """A checkpoint's predict function for data.evaluate that also scores the model alone.

    evaluate() calls each model once per view of a batch, views in a row; after the last
    view of a batch this averages them and counts the batch's top-1/top-5 errors (the
    backend op ``topk_errors``, the rule every count follows), so each model's own
    error comes from the same forward passes as the average's. `crops` counts the views
    that actually went through the net.
    """

    def __init__(self, net, views: int, labels: np.ndarray, scale: float = 1.0):
        self.net, self.views, self.labels, self.scale = net, views, labels, np.float32(scale)
        self.crops = 0
        self._sum, self._k, self._pos = None, 0, 0
        self.wrong = {1: 0, 5: 0}

    def __call__(self, x):
        from ..backends import backend

        x = x * self.scale if self.scale != 1 else x  # the checkpoint's input scale (cli/common.py)
        p = self.net.predict(np.ascontiguousarray(x, dtype=self.net.dtype))
        self.crops += len(x)
        self._sum = p.astype(np.float64) if self._sum is None else self._sum + p
        self._k += 1
        if self._k == self.views:
            y = self.labels[self._pos:self._pos + len(p)]
            for k, c in backend("cpu").topk_errors(self._sum / self.views, np.ascontiguousarray(y)).items():
                self.wrong[k] += c
            self._pos += len(p)
            self._sum, self._k = None, 0
        return p

    def errors(self) -> tuple[float, float]:
        from ..data.evaluate import error_rates

        rates = error_rates(self.wrong, self._pos)
        return rates[1], rates[5]


def check_fits(path, ck, store, store_name, assume_classes: bool = False) -> None:
    """UsageError saying what differs when checkpoint `ck` was not trained for `store`."""
    from . import UsageError

    s, size = store.size, ck.extra.get("image_size")
    mean = ck.arrays.get("mean")
    if size is None and mean is not None:
        size = mean.shape[0]
    if size is not None and size != s:
        raise UsageError(f"{path} was trained on {size}x{size} images; {store_name} holds {s}x{s} images (prepare "
                         f"--size {size} for this checkpoint): its crops would see the images at another scale")
    net_crop, crop = ck.net.input_shape[0], ck.extra.get("crop")
    if crop is not None and crop != net_crop:
        raise UsageError(f"{path} records {crop}x{crop} crops but its net takes {net_crop}x{net_crop}")
    out_classes = ck.net.shapes[ck.net.output_name][-1]
    if out_classes != len(store.classes):
        raise UsageError(f"{path} has {out_classes} outputs (classes); {store_name} has {len(store.classes)} classes")
    trained_on = ck.extra.get("classes")
    if trained_on is None:
        if not assume_classes:
            raise UsageError(f"{path} records no class names, so nothing says its {out_classes} outputs are "
                             f"{store_name}'s classes in that order; pass --assume-store-classes if they are")
    elif list(trained_on) != store.classes:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(trained_on, store.classes)) if a != b]
        if not diff:  # one list is a prefix of the other
            raise UsageError(f"{path} records {len(trained_on)} class names; {store_name} has {len(store.classes)}")
        i, a, b = diff[0]
        raise UsageError(f"{path} was trained on other classes than {store_name} has: class {i} is {a!r} there, "
                         f"{b!r} here ({len(diff)} of {out_classes} differ)")


def run(args):
    from ..data.evaluate import evaluate
    from . import UsageError
    from .common import count, load_model, open_store, output_file, parse_devices, subset

    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError("--batch-size and --limit must be >= 1")
    for flag, path in (("--json", args.json), ("--per-class", args.per_class)):
        if path is not None:  # before the evaluation, not after it
            output_file(path, flag)
    devices = parse_devices(args.devices)
    store = open_store(args.store, args.split)
    if len(store) == 0:
        raise UsageError(f"{args.store}: the {args.split} split is empty")
    cks = [load_model(c, devices, args.precision) for c in args.checkpoints]
    crops = {ck.net.input_shape[0] for ck in cks}
    if len(crops) > 1:
        raise UsageError(f"the checkpoints take different input sizes {sorted(crops)}; averaging needs one")
    crop = crops.pop()
    if crop > store.size:
        raise UsageError(f"the checkpoints take {crop}x{crop} crops, larger than the store's {store.size}x{store.size} "
                         "images")
    for path, ck in zip(args.checkpoints, cks):
        check_fits(path, ck, store, args.store, args.assume_store_classes)

    # The mean image: the one the checkpoints were trained with (the store's if they carry none).
    means = [ck.arrays.get("mean") for ck in cks]
    mean, mean_from = store.mean, "the store's mean image (the checkpoints carry none)"
    carried = [m for m in means if m is not None]
    if carried:
        if len(carried) < len(means) or any(not np.array_equal(m, carried[0]) for m in carried[1:]):
            raise UsageError("the checkpoints were trained with different mean images (other stores); averaging "
                             "needs one: evaluate them separately")
        mean, mean_from = carried[0], "the training mean image (from the checkpoint)"
    if mean is None:
        raise UsageError(f"{args.store} has no mean image and the checkpoints carry none")

    idx = subset(len(store), args.limit)
    images, labels = store.images, store.labels
    if idx is not None:
        images, labels = np.asarray(images[idx]), labels[idx]
    views = 10 if args.ten_crop else 1
    fns = [ModelView(ck.net, views, np.asarray(labels, dtype=np.int64), ck.extra.get("input_scale", 1.0))
           for ck in cks]
    print(f"{args.store} {args.split}: {count(len(labels), 'image')}{' (a subset)' if idx is not None else ''}, "
          f"{count(len(store.classes), 'class', 'classes')}; {crop}x{crop} crops of {store.size}x{store.size}, "
          f"{'ten-crop (10 views' if args.ten_crop else 'centre crop (1 view'} per image); {mean_from}")
    res = evaluate(fns, (images, labels), ten_crop=args.ten_crop, batch_size=args.batch_size, crop=crop,
                   mean=mean, classes=store.classes, progress=not args.no_progress)

    if res.non_finite:
        print(f"warning: {res.non_finite} of {count(res.count, 'image')} got non-finite probabilities (counted as "
              "errors)")
    rows = []
    for path, ck, fn in zip(args.checkpoints, cks, fns):
        top1, top5 = fn.errors()
        rows.append({"checkpoint": os.fspath(path), "epoch": ck.extra.get("epoch"), "precision": ck.net.precision,
                     "top1_error": top1, "top5_error": top5, "crops": fn.crops})
    # The table in percent, as train and demo print errors; --json and --per-class keep fractions.
    pct = lambda e: f"{100 * e:.2f}%"  # noqa: E731
    name_w = max([len(r["checkpoint"]) for r in rows] + [24])
    print(f"{'checkpoint':<{name_w}}  {'epoch':>5}  {'precision':>9}  {'top-1 err':>9}  {'top-5 err':>9}")
    for r in rows:
        epoch = "" if r["epoch"] is None else str(r["epoch"])
        print(f"{r['checkpoint']:<{name_w}}  {epoch:>5}  {r['precision']:>9}  {pct(r['top1_error']):>9}  "
              f"{pct(r['top5_error']):>9}")
    if len(rows) > 1:
        print(f"{f'average of {len(rows)} (§6)':<{name_w}}  {'':>5}  {'':>9}  {pct(res.top1):>9}  "
              f"{pct(res.top5):>9}")
    per_model = rows[0]["crops"]
    print(f"forward passes: {count(per_model, 'crop')} per checkpoint ({count(res.count, 'image')} x "
          f"{count(res.views, 'view')})")
    if per_model != res.count * res.views:  # evaluate() and the counts disagree: a bug, say so loudly
        raise RuntimeError(f"expected {res.count * res.views} crops per checkpoint, the nets saw {per_model}")
    if args.per_class:
        res.write_per_class_csv(args.per_class)
        print(f"per-class errors: {args.per_class}")
    if args.json:
        from ..atomic import open_atomic

        with open_atomic(args.json, "w") as f:
            json.dump({"store": os.fspath(args.store), "split": args.split, "images": res.count, "views": res.views,
                       "crop": crop, "models": rows, "top1_error": res.top1, "top5_error": res.top5,
                       "per_class": res.per_class}, f, indent=1)
    return 0
