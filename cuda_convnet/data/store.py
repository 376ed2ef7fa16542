"""The packed image store that `prepare` writes and training reads (§2, ARCHITECTURE.md §7).

Layout of a store directory::

    manifest.json            written LAST; its presence means the store is complete
    report.json              what prepare did: counts, skipped files and why, timings
    mean.npy                 float32 (S, S, 3)  mean training image (§2)
    eigvals.npy              float64 (3,)       RGB covariance eigenvalues, descending,
                                                variances in (0..255)^2 units (§4.1)
    eigvecs.npy              float64 (3, 3)     columns are the eigenvectors
    <split>/images.npy       uint8 (N, S, S, 3) NHWC RGB, a plain .npy (np.load with
                                                mmap_mode='r' works; ImageStore does that)
    <split>/labels.npy       int32 (N,)         index into manifest["classes"]
    <split>/files.txt        N lines: the source path (relative to src) of each image,
                             as the file system's bytes (not necessarily UTF-8), with
                             a backslash written as two and a newline as backslash-n
                             (`encode_file_list`; ImageStore.files decodes it)

S is 256 for ImageNet.  `images.npy` is grown in place as prepare appends chunks, under
the name `images.npy.partial` with a zeroed header (so it cannot be mistaken for a valid
array), and gets its real .npy header and final name when the split is complete.  The
data always starts at byte `NPY_HEADER_BYTES` (128, 64-byte aligned).

Every small file is written to a temporary name and moved into place with os.replace,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..atomic import open_atomic

FORMAT = "cuda_convnet.image_store"
VERSION = 1
NPY_HEADER_BYTES = 128
MANIFEST = "manifest.json"
REPORT = "report.json"


class StoreError(ValueError):
    """A store directory is missing, incomplete, truncated or not ours."""


# -- atomic small-file writes ------------------------------------------------------------
def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """`data` as the whole of `path`, or `path` left as it was (cuda_convnet.atomic)."""
    with open_atomic(path, "wb") as f:
        f.write(data)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- files.txt ------------------------------------------------------------------------------
def encode_file_list(names: list[str]) -> bytes:
    """files.txt's bytes for str file names (os.fsdecode'd, surrogate-escaped if need be).

    Each name is written as its own bytes (os.fsencode), so a name that is not UTF-8
    survives; backslash and newline are escaped so that any name is exactly one line.
    """
    out = []
    for name in names:
        raw = os.fsencode(name).replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
        out.append(raw + b"\n")
    return b"".join(out)


def decode_file_list(data: bytes) -> list[str]:
    """The inverse of encode_file_list: names as os.fsdecode gives them (open() takes them)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [os.fsdecode(_UNESCAPE.sub(_unescape, line) if b"\\" in line else line) for line in lines]


_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def _unescape(m: re.Match) -> bytes:
    return b"\n" if m.group(1) == b"n" else m.group(1)


# -- the big images file: fixed-size .npy header, data appended after it ------------------
def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """A version-1.0 .npy header padded to exactly NPY_HEADER_BYTES bytes."""
    d = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(int(s) for s in shape)!r}, }}"
    magic = b"\x93NUMPY\x01\x00"
    body_len = NPY_HEADER_BYTES - len(magic) - 2
    body = d.encode("latin1")
    if len(body) + 1 > body_len:
        raise ValueError(f"shape {shape} too long for a {NPY_HEADER_BYTES}-byte .npy header")
    body = body + b" " * (body_len - len(body) - 1) + b"\n"
    return magic + body_len.to_bytes(2, "little") + body


def finalize_images_file(partial: Path, final: Path, count: int, size: int) -> None:
    """Write the real header into a complete `.partial` images file and give it its name."""
    expected = NPY_HEADER_BYTES + count * size * size * 3
    actual = partial.stat().st_size
    if actual != expected:
        raise StoreError(f"{partial}: {actual} bytes, expected {expected} for {count} images")
    with open(partial, "r+b") as f:
        f.write(npy_header((count, size, size, 3)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, final)


# -- reading -------------------------------------------------------------------------------
def read_manifest(root: str | os.PathLike) -> dict:
    root = Path(root)
    if not root.exists():
        raise StoreError(f"{root}: no such store directory")
    if not root.is_dir():
        raise StoreError(f"{root}: is a file, not a store directory")
    path = root / MANIFEST
    if not path.exists():
        hint = (
            " (preparation incomplete: run prepare again to resume)"
            if (root / ".progress").exists()
            else ""
        )
        raise StoreError(f"{root}: no {MANIFEST}; not a prepared image store{hint}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise StoreError(
            f"{path}: store version {manifest.get('version')}, this code reads {VERSION}"
        )
    return manifest


def _load_checked(path: Path, *, dtype, shape, mmap: bool = False, what: str) -> np.ndarray:
    if not path.exists():
        raise StoreError(f"{path}: missing ({what})")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        # np.load on a truncated file: "mmap length is greater than file size",
        # "cannot reshape array", "Failed to interpret file as a pickle" ...
        raise StoreError(f"{path}: unreadable or truncated {what} ({e})") from e
    if arr.dtype != np.dtype(dtype) or tuple(arr.shape) != tuple(shape):
        raise StoreError(
            f"{path}: {what} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {tuple(shape)}"
        )
    return arr


class ImageStore:
    """One split of a prepared store, memory-mapped.

    >>> s = ImageStore("out/", "train")
    >>> s.images[i]       # uint8 (256, 256, 3), read from disk on access
    >>> s.labels[i], s.classes[s.labels[i]], len(s)
    >>> s.mean, s.eigvals, s.eigvecs   # training statistics (same for every split)
    """

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        splits = self.manifest.get("splits", {})
        if split not in splits:
            raise StoreError(f"{self.root}: no split {split!r}; the store has {sorted(splits)}")
        info = splits[split]
        self.split = split
        self.size = int(self.manifest["image_size"])
        self.classes: list[str] = list(self.manifest["classes"])
        n = int(info["count"])
        s = self.size
        self.images = _load_checked(
            self.root / info["images"],
            dtype=np.uint8,
            shape=(n, s, s, 3),
            mmap=True,
            what=f"{split} images",
        )
        self.labels = _load_checked(
            self.root / info["labels"], dtype=np.int32, shape=(n,), what=f"{split} labels"
        )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise StoreError(f"{self.root}: {split} labels outside 0..{len(self.classes) - 1}")
        stats = self.manifest.get("stats")
        if stats:
            self.mean = _load_checked(
                self.root / stats["mean"], dtype=np.float32, shape=(s, s, 3), what="mean image"
            )
            self.eigvals = _load_checked(
                self.root / stats["eigvals"], dtype=np.float64, shape=(3,), what="eigenvalues"
            )
            self.eigvecs = _load_checked(
                self.root / stats["eigvecs"], dtype=np.float64, shape=(3, 3), what="eigenvectors"
            )
        else:
            self.mean = self.eigvals = self.eigvecs = None
        self._files_name = info.get("files")
        self._files: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def files(self) -> list[str]:
        """Source path of each image (relative to the prepared tree), read on first use."""
        if self._files is None:
            if not self._files_name:
                raise StoreError(f"{self.root}: split {self.split!r} records no file names")
            data = (self.root / self._files_name).read_bytes()
            self._files = decode_file_list(data) if data else []
        return self._files

    def __repr__(self) -> str:
        n, k = len(self), len(self.classes)
        return f"ImageStore({str(self.root)!r}, {self.split!r}: {n} images, {k} classes)"


# -- writing a store from arrays (synthetic data, tests, benchmarks) ----------------------
def write_store(
    root: str | os.PathLike,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    *,
    stats_split: str = "train",
) -> Path:
    """Write a complete store from in-memory uint8 (N, S, S, 3) images and labels.

    The training statistics are computed over `stats_split` exactly as prepare does.
    """
    from .stats import PixelStats

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    size = None
    split_info = {}
    stats = None
    for name, (images, labels) in splits.items():
        images = np.ascontiguousarray(images)
        labels = np.asarray(labels, dtype=np.int32)
        if (
            images.dtype != np.uint8
            or images.ndim != 4
            or images.shape[1] != images.shape[2]
            or images.shape[3] != 3
        ):
            raise ValueError(
                f"split {name!r}: expected uint8 (N, S, S, 3), got {images.dtype} {images.shape}"
            )
        if labels.shape != (len(images),):
            raise ValueError(f"split {name!r}: {len(labels)} labels for {len(images)} images")
        size = images.shape[1] if size is None else size
        if images.shape[1] != size:
            raise ValueError("all splits must have the same image size")
        (root / name).mkdir(exist_ok=True)
        partial = root / name / "images.npy.partial"
        with open(partial, "wb") as f:
            f.write(b"\0" * NPY_HEADER_BYTES)
            f.write(images.tobytes())
        finalize_images_file(partial, root / name / "images.npy", len(images), size)
        save_npy_atomic(root / name / "labels.npy", labels)
        split_info[name] = {
            "count": len(images),
            "images": f"{name}/images.npy",
            "labels": f"{name}/labels.npy",
        }
        if name == stats_split:
            stats = PixelStats(size, size)
            for i in range(0, len(images), 256):
                stats.add_images(images[i : i + 256])
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "image_size": int(size),
        "classes": list(classes),
        "splits": split_info,
        "stats": None,
    }
    if stats is not None and stats.count:
        write_stats(root, stats)
        manifest["stats"] = STATS_FILES
    write_json_atomic(root / MANIFEST, manifest)
    return root


STATS_FILES = {"mean": "mean.npy", "eigvals": "eigvals.npy", "eigvecs": "eigvecs.npy"}


def write_stats(root: Path, stats) -> None:
    eigvals, eigvecs = stats.pca()
    save_npy_atomic(root / STATS_FILES["mean"], stats.mean_image())
    save_npy_atomic(root / STATS_FILES["eigvals"], eigvals)
    save_npy_atomic(root / STATS_FILES["eigvecs"], eigvecs)
