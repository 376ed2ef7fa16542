"""`prepare SRC DST`: an ImageNet-style tree -> the packed, memory-mapped store (§2).

See cuda_convnet.data.prepare for what is written and how an interrupted run resumes.
"""
from __future__ import annotations

import json


def add_parser(sub):
    from .args import nonnegative_int, path, positive_int

    p = sub.add_parser("prepare", help="decode an ImageNet-style tree into a packed 256x256 store (resumable)")
    p.add_argument("src", type=path,
                   help="tree with train/<class>/* and optionally val/ (class folders or val_labels.txt)")
    p.add_argument("dst", type=path, help="output store directory (run again to resume)")
    p.add_argument("--workers", type=nonnegative_int, default=None, help="decoding processes (default: all cores)")
    p.add_argument("--chunk-size", type=positive_int, default=128, help="images per resumable chunk (default 128)")
    p.add_argument("--size", type=positive_int, default=256,
                   help="side of the stored square images (default 256, the paper's; 72 for train --model small)")
    p.add_argument("--val-labels", type=path, default=None,
                   help="label file for a flat val/ (default SRC/val_labels.txt)")
    p.add_argument("--allow-empty-classes", action="store_true",
                   help="keep a training class folder with no image files, or whose files are all unreadable, "
                        "as a class without training images (default: refuse, naming the classes, since the net "
                        "could never learn them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    from ..data.prepare import PrepareError, prepare
    from . import UsageError

    try:
        report = prepare(args.src, args.dst, workers=args.workers, progress=not args.no_progress, size=args.size,
                         chunk_size=args.chunk_size, val_labels=args.val_labels,
                         allow_empty_classes=args.allow_empty_classes)
    except PrepareError as e:
        raise UsageError(str(e)) from e
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"finished chunks are saved in {args.dst}; "
                                "run the same command again to resume") from None
    summary = {k: report[k] for k in ("splits", "skipped_count", "seconds", "images_per_second")}
    if report.get("classes_without_images"):
        summary["classes_without_images"] = report["classes_without_images"]
    if report.get("already_complete"):  # a rerun did no work: the counts and seconds are the first run's
        summary["already_complete"] = True
    print(json.dumps(summary, indent=1))
    return 0
