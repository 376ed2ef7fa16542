"""Prepare an ImageNet-style tree once into a packed, memory-mapped store (§2, §4.1).

    python -m cuda_convnet prepare SRC DST [--workers N]

or `prepare(src, dst)`.  Source layout::

    src/train/<class>/*.JPEG            class names = sorted train/ sub-directories
    src/val/<class>/*.JPEG              validation, either in class folders ...
    src/val/*.JPEG + src/val_labels.txt ... or flat, with "filename classname" lines

Every image: decoded (any format Pillow reads, sniffed from the content), converted to
RGB, rescaled so the shorter side is 256, centre 256x256 kept (§2; details in
images.py).  Output: the store described in store.py, plus the training mean image (§2)
and the RGB covariance eigen-decomposition (§4.1), both from exact streaming sums
(stats.py).  Unreadable files (corrupt, truncated, empty, not an image) are skipped,
counted, and listed with the reason in the returned report and in dst/report.json.

Resumable.  Each split's file list (sorted, so fixed) is cut into chunks of
`chunk_size` images.  Worker processes decode chunks in parallel; the parent appends
finished chunks to `<split>/images.npy.partial` strictly in chunk order, fsyncs, and then
records "chunk k done" (count, byte length, skipped files, running statistics) in
dst/.progress/state.json by write-temp-then-os.replace.  After an interruption (Ctrl-C,
crash, power loss) a rerun truncates the partial file to the recorded length and
continues at the first unrecorded chunk: finished chunks are never decoded again and
nothing half-written survives.  manifest.json is written last; it marks the store
complete.  A rerun on a complete store returns its report without work.  A rerun
against a different tree (file list, sizes or options changed) is refused, naming the
option that differs and both values.

Refused before any work: a destination inside the source tree (the store would become
part of the tree it is made from), and a training class folder with no image files.
A training class all of whose files turn out unreadable is refused after decoding
(the decoded chunks are kept).  `allow_empty_classes=True` (CLI: --allow-empty-classes)
accepts both: the class keeps its label and has no training images.

File names are bytes on POSIX: a name that is not valid UTF-8 (a Latin-1 `Stra\xdfe.png`)
is carried as Python's surrogate-escaped str (os.fsdecode) and written back as its
original bytes (os.fsencode) in files.txt; report.json holds the escaped str, which
json round-trips and os.fsencode turns back into the same bytes.

Parts: scan.py walks and checks the source tree, workers.py decodes chunks in worker
processes (which end with the parent, even a SIGKILLed one), this module drives them
and writes the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import time
from collections import deque
from pathlib import Path

import numpy as np

from .scan import (
    PrepareError,
    check_not_inside,
    classes_without_images,
    kept_items,
    quote_names,
    scan_tree,
)
from .stats import PixelStats
from .store import (
    FORMAT,
    MANIFEST,
    NPY_HEADER_BYTES,
    REPORT,
    STATS_FILES,
    VERSION,
    encode_file_list,
    finalize_images_file,
    save_npy_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_stats,
)
from .workers import decode_chunk, make_executor

PROGRESS_DIR = ".progress"
STATE = "state.json"

# How a file becomes pixels (data/images.py).  Part of a store's options: a store
# decoded one way is never resumed or reused by code that decodes another way.
DECODER = "pillow-bicubic-center, exif-orientation"

# The options a store records, with the command-line flag that sets each (for messages).
OPTION_FLAGS = {"size": "--size", "chunk_size": "--chunk-size", "decoder": "(decoder)"}

# Test hook: called in the parent as _hook(event, split, chunk_index) with event
# "appended" (chunk data written, not yet recorded) and "recorded" (state.json updated).
# Tests raise from it to simulate an interruption at either point.
_hook = None


def _fingerprint(tree: dict, options: dict) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"format": FORMAT, "version": VERSION, **options, "classes": tree["classes"]},
            sort_keys=True,
        ).encode()
    )
    for name, items in tree["splits"].items():
        h.update(name.encode())
        for rel, label, nbytes in items:
            # fsencode: the name's own bytes (a surrogate-escaped name has no UTF-8 form)
            h.update(b"\0" + os.fsencode(rel) + f"\0{label}\0{nbytes}".encode())
    return h.hexdigest()


def _tree_summary(tree: dict) -> dict:
    """What a mismatch message can name: the classes and each split's file count."""
    return {
        "classes": len(tree["classes"]),
        "files": {name: len(items) for name, items in tree["splits"].items()},
    }


def _difference(recorded: dict | None, options: dict, tree: dict) -> str:
    """Say what differs between a recorded preparation and this run (for PrepareError)."""
    if not recorded:
        return "recorded by an older version of prepare (no options recorded)"
    rec_opts = recorded.get("options", {})
    diffs = [
        f"{key} ({OPTION_FLAGS.get(key, key)}) is {rec_opts.get(key)!r} there, {value!r} now"
        for key, value in options.items()
        if rec_opts.get(key) != value
    ]
    if diffs:
        return "; ".join(diffs)
    rec_tree, now = recorded.get("tree", {}), _tree_summary(tree)
    if rec_tree.get("classes") != now["classes"]:
        return f"the source has {now['classes']} classes, there {rec_tree.get('classes')}"
    if rec_tree.get("files") != now["files"]:
        return f"the source tree's file counts are {now['files']}, there {rec_tree.get('files')}"
    return "the source tree's file names, labels or sizes changed"


# -- the driver --------------------------------------------------------------------------------
def prepare(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    workers: int | None = None,
    progress: bool = True,
    size: int = 256,
    chunk_size: int = 128,
    val_labels: str | os.PathLike | None = None,
    allow_empty_classes: bool = False,
) -> dict:
    """Prepare src (see module docstring) into the store dst; return the report dict.

    workers: decoding processes (default os.cpu_count(); 0 decodes in this process).
    size: output side (256 in the paper).  chunk_size: images per resumable unit.
    allow_empty_classes: keep a training class with no (readable) images instead of
    refusing it.  Raises PrepareError (see the module docstring for when).
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.exists() and not dst.is_dir():
        raise PrepareError(f"{dst}: destination exists and is a file, expected a directory")
    for above in dst.absolute().parents:  # the first existing folder above dst is where it is made
        if above.exists():
            if not above.is_dir():
                raise PrepareError(f"{dst}: cannot be made, {above} is a file")
            break
    if chunk_size < 1 or size < 1:
        raise PrepareError(f"chunk_size and size must be >= 1, got {chunk_size} and {size}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 0:
        raise PrepareError(f"workers must be >= 0 (0: decode in this process), got {workers}")
    check_not_inside(src, dst)
    tree = scan_tree(src, val_labels, allow_empty_classes=allow_empty_classes)
    options = {"size": size, "chunk_size": chunk_size, "decoder": DECODER}
    fingerprint = _fingerprint(tree, options)
    record = {"options": options, "tree": _tree_summary(tree)}

    if (dst / MANIFEST).exists():
        manifest = json.loads((dst / MANIFEST).read_text())
        source = manifest.get("source", {})
        if source.get("fingerprint") != fingerprint:
            raise PrepareError(
                f"{dst}: already holds a complete store of a different source tree or "
                f"options: {_difference(source.get('record'), options, tree)}; choose "
                f"another destination or remove it"
            )
        report = json.loads((dst / REPORT).read_text())
        report["already_complete"] = True
        return report

    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepareError(f"{dst}: cannot create the destination ({e.strerror})") from None
    pdir = dst / PROGRESS_DIR
    pdir.mkdir(exist_ok=True)
    state_path = pdir / STATE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fingerprint:
            raise PrepareError(
                f"{dst}: holds an unfinished preparation of a different source tree or "
                f"options: {_difference(state.get('record'), options, tree)}; rerun with the "
                f"same source and options to resume, or remove {dst} to start over"
            )
    else:
        state = {"fingerprint": fingerprint, "record": record, "splits": {}}
    resumed_from = {name: s["chunks_done"] for name, s in state["splits"].items()}

    total = sum(len(items) for items in tree["splits"].values())
    done_before = sum(
        len(tree["splits"][n])
        if s.get("done")
        else min(s["chunks_done"] * chunk_size, len(tree["splits"][n]))
        for n, s in state["splits"].items()
    )
    bar = _progress_bar(total, done_before, progress)
    stats = None
    try:
        for name, items in tree["splits"].items():
            stats_for_split = _prepare_split(
                src,
                dst,
                name,
                items,
                state,
                state_path,
                size,
                chunk_size,
                workers,
                with_stats=(name == "train"),
                bar=bar,
            )
            if name == "train":
                stats = stats_for_split
    finally:
        bar.close()

    # All splits complete: statistics, report, then the manifest (last), then cleanup.
    if stats is None or stats.count == 0:
        raise PrepareError(
            f"{src}: none of the {len(tree['splits']['train'])} training files could be decoded; "
            f"see {pdir / STATE} for the reasons"
        )
    unreadable = classes_without_images(tree, state["splits"]["train"]["skipped"])
    if unreadable and not allow_empty_classes:
        raise PrepareError(
            f"{src}: {len(unreadable)} training class(es) have no readable image (every file "
            f"was skipped): {quote_names(unreadable)}; the reasons are in {pdir / STATE}; fix or "
            f"remove those files, or rerun with --allow-empty-classes (decoded chunks are kept)"
        )
    write_stats(dst, stats)
    skipped = {name: s["skipped"] for name, s in state["splits"].items()}
    seconds = time.perf_counter() - t0
    decoded_now = total - done_before
    report = {
        "src": str(src.resolve()),
        "dst": str(dst.resolve()),
        "classes": len(tree["classes"]),
        "splits": {
            name: {
                "found": len(items),
                "written": state["splits"][name]["count"],
                "skipped": len(skipped[name]),
            }
            for name, items in tree["splits"].items()
        },
        "skipped": {
            name: [{"file": f, "reason": r} for f, r in lst] for name, lst in skipped.items()
        },
        "skipped_count": sum(len(v) for v in skipped.values()),
        "ignored_files": tree["ignored"],
        "classes_without_images": sorted(set(tree["empty_classes"]) | set(unreadable)),
        "unused_val_labels": tree["unused_val_labels"],
        "resumed_from_chunk": resumed_from,
        "workers": workers,
        "seconds": round(seconds, 3),
        "images_decoded_this_run": decoded_now,
        "images_per_second": round(decoded_now / seconds, 1) if seconds > 0 else None,
    }
    write_json_atomic(dst / REPORT, report)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "image_size": size,
        "classes": tree["classes"],
        "splits": {
            name: {
                "count": state["splits"][name]["count"],
                "images": f"{name}/images.npy",
                "labels": f"{name}/labels.npy",
                "files": f"{name}/files.txt",
            }
            for name in tree["splits"]
        },
        "stats": STATS_FILES,
        "stats_note": "mean over train images; eigvals (descending, (0..255)^2 units) and "
        "eigvecs (columns) of the covariance of all train RGB pixels",
        "source": {
            "path": str(src.resolve()),
            "fingerprint": fingerprint,
            "chunk_size": chunk_size,
            "record": record,
        },
    }
    write_json_atomic(dst / MANIFEST, manifest)
    shutil.rmtree(pdir, ignore_errors=True)
    return report


def _progress_bar(total: int, initial: int, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: a silent stand-in
        enabled = False
    if not enabled:

        class _Null:
            def update(self, n=1):
                pass

            def set_postfix_str(self, s):
                pass

            def close(self):
                pass

        return _Null()
    return tqdm(total=total, initial=initial, unit="img", desc="prepare", smoothing=0.05)


def _prepare_split(
    src: Path,
    dst: Path,
    name: str,
    items: list,
    state: dict,
    state_path: Path,
    size: int,
    chunk_size: int,
    workers: int,
    *,
    with_stats: bool,
    bar,
):
    """Decode and append every chunk of one split; returns its PixelStats (train) or None."""
    pdir = state_path.parent
    split_dir = dst / name
    split_dir.mkdir(exist_ok=True)
    partial = split_dir / "images.npy.partial"
    final = split_dir / "images.npy"
    n_chunks = (len(items) + chunk_size - 1) // chunk_size
    image_bytes = size * size * 3

    st = state["splits"].get(name)
    if st is None:
        st = {
            "chunks_done": 0,
            "count": 0,
            "bytes": NPY_HEADER_BYTES,
            "skipped": [],
            "done": False,
            "stats": None,
            "image_sum": None,
        }
        state["splits"][name] = st
    stats = None
    if with_stats:
        if st["stats"] is not None:
            stats = PixelStats.from_state(st["stats"], np.load(pdir / st["image_sum"]))
        else:
            stats = PixelStats(size, size)
    if st["done"]:
        return stats

    # The partial file holds exactly the recorded chunks after truncation: anything a
    # crash left past the recorded length is discarded.
    if st["chunks_done"] < n_chunks or not final.exists():
        if not partial.exists():
            if st["chunks_done"] > 0:
                raise PrepareError(
                    f"{partial}: missing although {st['chunks_done']} chunks are recorded; "
                    f"remove {dst} to start over"
                )
            with open(partial, "wb") as f:
                f.write(b"\0" * NPY_HEADER_BYTES)  # zeroed header: not a valid .npy until finalised
        with open(partial, "r+b") as f:
            f.truncate(st["bytes"])

    if st["chunks_done"] < n_chunks:
        executor = make_executor(workers)
        max_inflight = 1 if workers <= 0 else 2 * workers
        pending: deque = deque()
        next_chunk = st["chunks_done"]
        try:
            with open(partial, "r+b") as out:
                out.seek(st["bytes"])
                while next_chunk < n_chunks or pending:
                    while next_chunk < n_chunks and len(pending) < max_inflight:
                        lo = next_chunk * chunk_size
                        rels = [rel for rel, _, _ in items[lo : lo + chunk_size]]
                        fut = executor.submit(decode_chunk, str(src), rels, size, with_stats)
                        pending.append((next_chunk, lo, fut))
                        next_chunk += 1
                    k, lo, fut = pending.popleft()
                    try:
                        imgs, failed, sums = fut.result()
                    except cf.process.BrokenProcessPool as e:
                        raise RuntimeError(
                            f"a decoding worker died ({e}); finished chunks are kept, "
                            f"run prepare again to resume"
                        ) from e
                    # 1. append the chunk, make it durable
                    out.write(np.ascontiguousarray(imgs).data)  # no extra copy
                    out.flush()
                    os.fsync(out.fileno())
                    if _hook:
                        _hook("appended", name, k)
                    # 2. record it (the statistics travel with the record)
                    st["skipped"].extend([items[lo + i][0], reason] for i, reason in failed)
                    st["count"] += len(imgs)
                    st["bytes"] += len(imgs) * image_bytes
                    st["chunks_done"] = k + 1
                    if with_stats:
                        if sums is not None:
                            stats.add_chunk(len(imgs), *sums)
                        sum_name = f"image_sum.{k + 1:08d}.npy"
                        save_npy_atomic(pdir / sum_name, stats.image_sum)
                        old, st["image_sum"], st["stats"] = st["image_sum"], sum_name, stats.state()
                    write_json_atomic(state_path, state)
                    if with_stats and old:
                        (pdir / old).unlink(missing_ok=True)
                    bar.update(len(failed) + len(imgs))
                    if failed:
                        bar.set_postfix_str(
                            f"skipped {sum(len(s['skipped']) for s in state['splits'].values())}"
                        )
                    if _hook:
                        _hook("recorded", name, k)
        finally:
            # On an exception do not wait for queued chunks: they are redone on resume.
            executor.shutdown(wait=True, cancel_futures=True)

    # Split complete: labels, file list, then the images header + final name, then "done".
    kept = kept_items(items, st["skipped"])
    if len(kept) != st["count"]:
        raise PrepareError(
            f"{dst}: progress records {st['count']} {name} images but {len(kept)} files "
            f"were not skipped; remove {dst} to start over"
        )
    save_npy_atomic(
        split_dir / "labels.npy", np.array([label for _, label, _ in kept], dtype=np.int32)
    )
    write_bytes_atomic(split_dir / "files.txt", encode_file_list([rel for rel, _, _ in kept]))
    if partial.exists():
        finalize_images_file(partial, final, st["count"], size)
    st["done"] = True
    write_json_atomic(state_path, state)
    return stats
