"""CIFAR-10 from its "python version" batches (Krizhevsky's own format).

The paper uses CIFAR-10 for two checks (§3.1 Figure 1: ReLU vs tanh; §3.3: response
normalization 13% -> 11% test error).  The dataset ships as cifar-10-python.tar.gz
holding `cifar-10-batches-py/` with `data_batch_1..5`, `test_batch` and `batches.meta`,
each a Python-2 pickle of a dict:

    b"data"        uint8 (N, 3072): row-major channel planes, R (1024) then G then B,
                   each plane a 32x32 image in row-major order
    b"labels"      list of N ints in 0..9
    b"label_names" (batches.meta) list of 10 byte strings

We return NHWC uint8 (N, 32, 32, 3) (ARCHITECTURE.md §3: activations are NHWC), int32
labels and str names.  No download: pass the extracted directory or the .tar.gz.

The files are pickles, and unpickling can run code; the reader only allows the NumPy
array reconstruction the real files contain, so a hostile file raises instead.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"
SIDE = 32


class CifarError(ValueError):
    """A CIFAR batch file is missing or not in the expected format."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),  # protocol 5
        ("_codecs", "encode"),  # how Python 3's protocol-2 pickles spell bytes objects
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
                module = (
                    "numpy._core." + module[len("numpy.core.") :]
                )  # old files, no DeprecationWarning
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        d = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a format error
        raise CifarError(f"{where}: not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise CifarError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    # Python-3-written files have str keys; Krizhevsky's Python-2 files give bytes.
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def decode_batch(d: dict, where: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), labels int32 (N,)) from an unpickled batch dict."""
    if "data" not in d or "labels" not in d:
        raise CifarError(f"{where}: missing 'data' or 'labels' (keys: {sorted(d)})")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise CifarError(f"{where}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (data.shape[0],):
        raise CifarError(f"{where}: {labels.shape[0]} labels for {data.shape[0]} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 255):
        raise CifarError(f"{where}: labels outside 0..255")
    # (N, C, H, W) channel planes -> (N, H, W, C)
    images = np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
    return images, labels.astype(np.int32)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file: (images NHWC uint8, labels int32)."""
    path = Path(path)
    if not path.is_file():
        raise CifarError(f"{path}: no such CIFAR batch file")
    return decode_batch(_unpickle(path.read_bytes(), str(path)), str(path))


@dataclass
class Cifar10:
    train_images: np.ndarray  # uint8 (50000, 32, 32, 3)
    train_labels: np.ndarray  # int32 (50000,)
    test_images: np.ndarray  # uint8 (10000, 32, 32, 3)
    test_labels: np.ndarray
    label_names: list[str]


def _reader(root: Path):
    """A function name -> bytes over a directory or a .tar(.gz) archive."""
    if root.is_dir():
        base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root

        def read(name):
            p = base / name
            if not p.is_file():
                raise CifarError(f"{root}: missing {name} (expected {p})")
            return p.read_bytes()

        return read
    if root.is_file() and tarfile.is_tarfile(root):
        tar = tarfile.open(root)  # noqa: SIM115  (stays open: read() below serves members from it)
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name):
            if name not in members:
                raise CifarError(f"{root}: archive has no {name}")
            return tar.extractfile(members[name]).read()

        return read
    raise CifarError(f"{root}: neither a directory with the CIFAR-10 batches nor a .tar.gz of them")


def load_cifar10(root: str | os.PathLike, *, batches: list[str] | None = None) -> Cifar10:
    """Load CIFAR-10 from the extracted `cifar-10-batches-py` (or its parent) or the tarball.

    `batches` overrides the training batch names (default data_batch_1..5).
    """
    root = Path(root)
    if not root.exists():
        raise CifarError(f"{root}: does not exist")
    read = _reader(root)
    meta = _unpickle(read(META), f"{root}/{META}")
    names = meta.get("label_names")
    if not isinstance(names, (list, tuple)):
        raise CifarError(f"{root}/{META}: no label_names list")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    parts = [
        decode_batch(_unpickle(read(b), f"{root}/{b}"), f"{root}/{b}")
        for b in (batches or TRAIN_BATCHES)
    ]
    test_x, test_y = decode_batch(
        _unpickle(read(TEST_BATCH), f"{root}/{TEST_BATCH}"), f"{root}/{TEST_BATCH}"
    )
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    for y in (train_y, test_y):
        if len(y) and y.max() >= len(names):
            raise CifarError(f"{root}: label {int(y.max())} but only {len(names)} label names")
    return Cifar10(train_x, train_y, test_x, test_y, names)
