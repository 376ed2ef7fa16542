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

Worker processes end when the parent process dies, however it dies (SIGKILL included):
on Linux the kernel kills them (prctl PR_SET_PDEATHSIG), and on every platform a
watchdog thread in each worker exits when its parent process is gone.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from . import images as _images
from .stats import PixelStats, chunk_sums
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

PROGRESS_DIR = ".progress"
STATE = "state.json"
VAL_LABELS = "val_labels.txt"

# How a file becomes pixels (data/images.py).  Part of a store's options: a store
# decoded one way is never resumed or reused by code that decodes another way.
DECODER = "pillow-bicubic-center, exif-orientation"

# The options a store records, with the command-line flag that sets each (for messages).
OPTION_FLAGS = {"size": "--size", "chunk_size": "--chunk-size", "decoder": "(decoder)"}

# Test hook: called in the parent as _hook(event, split, chunk_index) with event
# "appended" (chunk data written, not yet recorded) and "recorded" (state.json updated).
# Tests raise from it to simulate an interruption at either point.
_hook = None


class PrepareError(ValueError):
    """The source tree or destination cannot be prepared (raised before any work)."""


# -- scanning the source tree --------------------------------------------------------------
def _listdir(path: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(path) if not e.name.startswith(".")), key=lambda e: e.name)


def _scan_class_folders(
    split_dir: Path, class_index: dict[str, int] | None, ignored: list[str], src: Path
) -> list[tuple[str, int, int]]:
    """[(relative path, label, size in bytes)] for split_dir/<class>/<image>."""
    items = []
    for d in _listdir(split_dir):
        if not d.is_dir():
            continue
        if class_index is not None and d.name not in class_index:
            raise PrepareError(f"{d.path}: class {d.name!r} is not a class of the training split")
        label = class_index[d.name] if class_index is not None else None
        for f in _listdir(Path(d.path)):
            if f.is_file() and _images.is_image_name(f.name):
                items.append((os.path.relpath(f.path, src), label, f.stat().st_size))
            elif f.is_file():
                ignored.append(os.path.relpath(f.path, src))
    return items


def _scan_flat_val(
    val_dir: Path, labels_file: Path, class_index: dict[str, int], ignored: list[str], src: Path
) -> tuple[list[tuple[str, int, int]], int]:
    if not labels_file.is_file():
        raise PrepareError(
            f"{val_dir} holds images but no class folders, and there is no label file "
            f"{labels_file} ('filename classname' per line)"
        )
    name_to_class = {}
    # Bytes, like the file names it lists: names that are not UTF-8 must match too.
    for lineno, raw in enumerate(labels_file.read_bytes().splitlines(), 1):
        line = os.fsdecode(raw.strip())
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise PrepareError(
                f"{labels_file}:{lineno}: expected 'filename classname', got {line!r}"
            )
        fname, cls = parts
        if cls not in class_index:
            raise PrepareError(
                f"{labels_file}:{lineno}: class {cls!r} is not a class of the training split"
            )
        name_to_class[fname] = class_index[cls]
    items, unlabeled = [], []
    for f in _listdir(val_dir):
        if not f.is_file():
            continue
        if not _images.is_image_name(f.name):
            if f.name != labels_file.name:
                ignored.append(os.path.relpath(f.path, src))
            continue
        if f.name not in name_to_class:
            unlabeled.append(f.name)
            continue
        items.append((os.path.relpath(f.path, src), name_to_class[f.name], f.stat().st_size))
    if unlabeled:
        raise PrepareError(
            f"{labels_file}: no label for {len(unlabeled)} image(s) in {val_dir}, "
            f"e.g. {unlabeled[:3]}"
        )
    unused = len(name_to_class) - len(items)
    return items, unused


def scan_tree(
    src: str | os.PathLike,
    val_labels: str | os.PathLike | None = None,
    *,
    allow_empty_classes: bool = False,
) -> dict:
    """Find the classes and the (path, label, bytes) list of each split; validate the tree.

    Raises PrepareError for a tree that cannot be prepared, including a training class
    folder with no image files (unless allow_empty_classes).
    """
    src = Path(src)
    if not src.exists():
        raise PrepareError(f"{src}: source directory does not exist")
    if not src.is_dir():
        raise PrepareError(f"{src}: source is a file, expected a directory with train/ (and val/)")
    train_dir = src / "train"
    if not train_dir.is_dir():
        raise PrepareError(f"{src}: no train/ directory (expected {train_dir}/<class>/<image>)")
    classes = [d.name for d in _listdir(train_dir) if d.is_dir()]
    if not classes:
        raise PrepareError(
            f"{train_dir}: no class directories (expected {train_dir}/<class>/<image>)"
        )
    class_index = {c: i for i, c in enumerate(classes)}
    ignored: list[str] = []
    splits = {"train": _scan_class_folders(train_dir, class_index, ignored, src)}
    if not splits["train"]:
        raise PrepareError(
            f"{train_dir}: {len(classes)} class directories but no image files in them"
        )
    counts = np.bincount([label for _, label, _ in splits["train"]], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty and not allow_empty_classes:
        raise PrepareError(
            f"{train_dir}: {len(empty)} class folder(s) with no image files: "
            f"{_names(empty)}; remove them, or pass --allow-empty-classes to keep them as "
            f"classes without training images"
        )
    unused_val_labels = 0
    val_dir = src / "val"
    val_has_folders = val_dir.is_dir() and any(d.is_dir() for d in _listdir(val_dir))
    if val_labels is not None and not (val_dir.is_dir() and not val_has_folders):
        # A label file that would not be read is a mistake (wrong tree or wrong file), not a no-op.
        raise PrepareError(
            f"{val_labels}: a label file is only for a flat {val_dir}/ (images, no class folders); "
            f"{val_dir} {'has class folders' if val_has_folders else 'does not exist'}"
        )
    if val_dir.is_dir():
        if val_has_folders:
            splits["val"] = _scan_class_folders(val_dir, class_index, ignored, src)
            ignored.extend(os.path.relpath(f.path, src) for f in _listdir(val_dir) if f.is_file())
        else:
            labels_file = Path(val_labels) if val_labels else src / VAL_LABELS
            splits["val"], unused_val_labels = _scan_flat_val(
                val_dir, labels_file, class_index, ignored, src
            )
        if not splits["val"]:
            raise PrepareError(f"{val_dir}: exists but holds no image files")
    return {
        "classes": classes,
        "splits": splits,
        "ignored": ignored,
        "unused_val_labels": unused_val_labels,
        "empty_classes": empty,
    }


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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


# -- the worker: decode one chunk ------------------------------------------------------------
def _decode_chunk(src: str, rel_paths: list[str], size: int, with_stats: bool):
    """Decode a chunk (runs in a worker process).

    Returns (uint8 (k_ok, size, size, 3), [(index in chunk, reason)], sums or None).
    Per-file failures never raise: any exception from one file skips that file.
    """
    out = np.empty((len(rel_paths), size, size, 3), dtype=np.uint8)
    failed, k = [], 0
    for i, rel in enumerate(rel_paths):
        path = os.path.join(src, rel)
        try:
            if os.path.getsize(path) == 0:
                raise ValueError("empty file (0 bytes)")
            out[k] = _images.load_fixed_size(path, size)
            k += 1
        except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
            failed.append((i, f"{type(e).__name__}: {e}"))
    out = out[:k]
    sums = chunk_sums(out) if (with_stats and k) else None
    return out, failed, sums


def _mp_context():
    # fork on Linux: workers inherit the imported modules (fast start) and, unlike spawn,
    # do not re-run the caller's __main__ (a script without an `if __name__ ==
    # "__main__"` guard, or code piped to `python -`, would otherwise break).  The workers
    # only touch Pillow and NumPy, so forking a process with threads (tqdm's monitor) is
    # safe here.  Elsewhere spawn, the only portable choice.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_init(parent_pid: int):
    # Ctrl-C is for the parent: it stops submitting, lets the running chunks finish and
    # exits with the finished chunks recorded.  Workers that died of the same SIGINT
    # mid-chunk would only add noise (and a broken pool) to that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_SECONDS = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the process `parent_pid` is gone (a pool worker's parent).

    An idle pool worker blocks reading its task queue; if the parent is SIGKILLed, no one
    closes that queue and the worker would wait forever.  Linux: the kernel sends SIGKILL
    when the parent dies.  Everywhere: a daemon thread polls os.getppid(), which changes
    (to init or a subreaper) once the parent is gone; this also covers the parent dying
    before the prctl call took effect.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watchdog remains
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(_WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class _InlineExecutor:
    """workers=0: decode in this process (debugging, profiling, tiny inputs)."""

    def submit(self, fn, *args):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - delivered through the future
            fut.set_exception(e)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


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
    if chunk_size < 1 or size < 1:
        raise PrepareError(f"chunk_size and size must be >= 1, got {chunk_size} and {size}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 0:
        raise PrepareError(f"workers must be >= 0 (0: decode in this process), got {workers}")
    _check_not_inside(src, dst)
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

    dst.mkdir(parents=True, exist_ok=True)
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
    unreadable = _classes_without_images(tree, state["splits"]["train"]["skipped"])
    if unreadable and not allow_empty_classes:
        raise PrepareError(
            f"{src}: {len(unreadable)} training class(es) have no readable image (every file "
            f"was skipped): {_names(unreadable)}; the reasons are in {pdir / STATE}; fix or "
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


def _check_not_inside(src: Path, dst: Path) -> None:
    """Refuse a destination that is the source tree or inside it (the store would be
    written among, and later scanned as part of, the images it is made from)."""
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise PrepareError(
            f"{dst}: the destination is {'the source tree' if d == s else 'inside the source tree'} "
            f"{src}; choose a destination outside it"
        )


def _classes_without_images(tree: dict, skipped: list) -> list[str]:
    """Training classes none of whose files was decoded."""
    kept = _kept_items(tree["splits"]["train"], skipped)
    counts = np.bincount([label for _, label, _ in kept], minlength=len(tree["classes"]))
    return [c for c, n in zip(tree["classes"], counts) if n == 0]


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
        executor = (
            _InlineExecutor()
            if workers <= 0
            else cf.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=_mp_context(),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        )
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
                        fut = executor.submit(_decode_chunk, str(src), rels, size, with_stats)
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
    kept = _kept_items(items, st["skipped"])
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


def _kept_items(items: list, skipped: list) -> list:
    bad = {rel for rel, _ in skipped}
    return [it for it in items if it[0] not in bad]
