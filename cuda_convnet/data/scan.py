"""Scan an ImageNet-style source tree for `prepare` (see prepare.py for the layout).

Finds the classes (the sorted train/ sub-folders) and, per split, the sorted list of
(path relative to src, label, size in bytes); checks the tree and the destination
before any work.  File names are str as os.scandir gives them: a name that is not
valid UTF-8 is surrogate-escaped (os.fsdecode), and the label file is read as bytes
and decoded the same way, so such names match and round-trip (os.fsencode).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import images as _images

VAL_LABELS = "val_labels.txt"


class PrepareError(ValueError):
    """The source tree, the destination or the options cannot be prepared.

    Raised before any work, except for a training class whose files all turned out
    unreadable (known only after decoding; the decoded chunks are kept).
    """


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
            f"{quote_names(empty)}; remove them, or pass --allow-empty-classes to keep them as "
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


def quote_names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_not_inside(src: Path, dst: Path) -> None:
    """Refuse a destination that is the source tree or inside it (the store would be
    written among, and later scanned as part of, the images it is made from)."""
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise PrepareError(
            f"{dst}: the destination is {'the source tree' if d == s else 'inside the source tree'} "
            f"{src}; choose a destination outside it"
        )


def classes_without_images(tree: dict, skipped: list) -> list[str]:
    """Training classes none of whose files was decoded."""
    kept = kept_items(tree["splits"]["train"], skipped)
    counts = np.bincount([label for _, label, _ in kept], minlength=len(tree["classes"]))
    return [c for c, n in zip(tree["classes"], counts) if n == 0]


def kept_items(items: list, skipped: list) -> list:
    bad = {rel for rel, _ in skipped}
    return [it for it in items if it[0] not in bad]
