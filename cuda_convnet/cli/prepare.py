"""`prepare SRC DST`: an ImageNet-style tree -> the packed, memory-mapped store (§2).

See cuda_convnet.data.prepare for what is written and how an interrupted run resumes.
It prints a summary for a person (classes, each split's images written and skipped, where
the skipped files are listed); --json prints the summary as one JSON object instead.
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
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object (splits: found/written/skipped per split, "
                        "skipped_count, seconds, images_per_second) instead of the lines for a person; the full "
                        "report, with each skipped file and why, is DST/report.json either way")
    p.set_defaults(func=run)


def run(args):
    from ..data.prepare import PrepareError, prepare
    from . import UsageError
    from .common import count

    try:
        report = prepare(args.src, args.dst, workers=args.workers, progress=not args.no_progress, size=args.size,
                         chunk_size=args.chunk_size, val_labels=args.val_labels,
                         allow_empty_classes=args.allow_empty_classes)
    except PrepareError as e:
        raise UsageError(str(e)) from e
    except KeyboardInterrupt:
        chunks, saved = _saved(args.dst)
        if not chunks:
            raise KeyboardInterrupt(f"no chunk had finished, so nothing was saved in {args.dst}; run the same "
                                    "command again to start over") from None
        raise KeyboardInterrupt(f"{count(chunks, 'finished chunk')} ({count(saved, 'image')}) saved in {args.dst}; "
                                "run the same command again to resume") from None
    if args.json:
        summary = {k: report[k] for k in ("splits", "skipped_count", "seconds", "images_per_second")}
        if report.get("classes_without_images"):
            summary["classes_without_images"] = report["classes_without_images"]
        if report.get("already_complete"):  # a rerun did no work: the counts and seconds are the first run's
            summary["already_complete"] = True
        print(json.dumps(summary, indent=1))
    else:
        print(summary_lines(report, args.dst))
    return 0


def summary_lines(report: dict, dst) -> str:
    """The report (data.prepare's dict, or DST/report.json's) as a few lines for a person."""
    import os

    from .common import count

    out = report.get("dst") or os.path.abspath(os.fspath(dst))
    lines = [f"store {out}: {count(report['classes'], 'class', 'classes')}"
             + (" (already complete: nothing to do; the counts are the first run's)"
                if report.get("already_complete") else "")]
    for name, s in report["splits"].items():
        lines.append(f"  {name:<5s} {count(s['written'], 'image')} written of {s['found']} found"
                     + (f", {s['skipped']} skipped (unreadable)" if s["skipped"] else ""))
    if report["skipped_count"]:
        lines.append(f"skipped files and why: {os.path.join(out, 'report.json')}")
    if report.get("classes_without_images"):
        lines.append(f"classes with no training images: {', '.join(report['classes_without_images'])}")
    if not report.get("already_complete"):
        rate = report.get("images_per_second")
        lines.append(f"wall time: {report['seconds']:.1f}s" + (f", {rate:g} images/s" if rate else ""))
    return "\n".join(lines)


def _saved(dst) -> tuple[int, int]:
    """(chunks, images) an interrupted run left recorded in DST (data.prepare's progress
    state: what a rerun keeps); (0, 0) when none, or the state is unreadable."""
    from pathlib import Path

    from ..data.prepare import PROGRESS_DIR, STATE

    try:
        state = json.loads((Path(dst) / PROGRESS_DIR / STATE).read_text())
        splits = state.get("splits", {}).values()
        return sum(int(s.get("chunks_done", 0)) for s in splits), sum(int(s.get("count", 0)) for s in splits)
    except (OSError, ValueError, AttributeError, TypeError):
        return 0, 0
