"""What the commands share (not a command itself): the model table, --devices, opening a
store or a checkpoint with one-line errors, and the BLAS thread limit.

A checkpoint written by `train` carries what a user needs to classify an image file with
it alone (`extra` in its manifest, see cuda_convnet.net.checkpoint):

    extra["model"], ["width"], ["crop"]   how to rebuild the net, the crop it takes
    extra["classes"]                      class names, in label order (from the store)
    extra["image_size"], ["store"]        the store's image side (prepare --size) and path
    extra["input_scale"]                  the views (pixels minus mean) are multiplied by it
    array "mean"                          the store's mean training image (S, S, 3) float32
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from . import UsageError

CHECKPOINT = "checkpoint.npz"


# -- models ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    name: str
    crops: tuple          # the crop sides (= the net's input) the model takes; the first is the default
    store_size: int       # the `prepare --size` the model is meant for
    widths: bool          # takes --width
    about: str

    def build(self, classes: int, devices, seed: int, crop: int, width: int | None, *, towers: int = 2,
              precision: str = "fp32"):
        """The net; towers=1 builds the one-device grouped form on devices[0] (same weights)."""
        from .. import models

        if towers == 1:
            devices = tuple(devices)[:1]
        if self.name == "alexnet":
            return models.alexnet(towers=towers, devices=devices, num_classes=classes, seed=seed, input_size=crop,
                                  precision=precision)
        return models.small_net(classes, towers=towers, devices=devices, seed=seed, width=width or 2,
                                precision=precision)

    def input_scale(self, store) -> float:
        """What the mean-subtracted pixels are multiplied by before the net sees them.

        alexnet: 1, the paper's raw 0..255 scale, for its N(0, 0.01) initialisation. small:
        1 / the pixels' standard deviation (from the store's RGB covariance), the unit
        variance its He initialisation assumes; at the raw scale (std ~50) its logits
        start in the tens and the loss diverges at lr 0.01 (measured on the test tree).
        """
        if self.name == "alexnet":
            return 1.0
        std = float(np.sqrt(np.sum(store.eigvals) / 3))  # per channel, on average
        return 1.0 / std if std > 0 else 1.0


MODELS = {
    "alexnet": ModelChoice("alexnet", (224, 227), 256, False,
                           "the paper's net (Figure 2), 224x224 crops (227: unpadded conv1) of 256x256 images"),
    "small": ModelChoice("small", (64,), 72, True,
                         "AlexNet scaled down (models.small_config), 64x64 crops of 72x72 images "
                         "(prepare --size 72); --width scales it (default 2)"),
}


# -- --precision -----------------------------------------------------------------------------
def add_precision(p, default: str) -> None:
    """`--precision {fp32,3xtf32,tf32,bf16}` (checks.PRECISIONS; None when left out);
    `default` says in the help what a missing flag means for this command."""
    from ..checks import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="arithmetic of the conv and fc layers' GEMMs: fp32 = float32 SIMT kernels "
                        "(torch.set_float32_matmul_precision('highest')), 3xtf32 = float32-level accuracy on TF32 "
                        "tensor cores, tf32 = operands rounded to TF32 ('high'; PyTorch's default for "
                        f"convolutions), bf16 = operands rounded to BF16 ('medium'); default {default}")


def check_crop(model: ModelChoice, crop: int | None, store_size: int) -> int:
    """The crop side for `model` on a store of `store_size` images; UsageError if it cannot be."""
    if crop is None:
        crop = model.crops[0]
    elif crop not in model.crops:
        want = " or ".join(str(c) for c in model.crops)
        raise UsageError(f"--model {model.name} takes {want}-pixel crops (its input size), not --crop {crop}")
    if crop > store_size:
        raise UsageError(f"{crop}x{crop} crops for --model {model.name} are larger than the store's "
                         f"{store_size}x{store_size} images (prepare with --size {model.store_size}"
                         f"{', or use --model small' if model.name == 'alexnet' else ''})")
    return crop


def crop_coverage_warning(model: ModelChoice, crop: int, store_size: int) -> str | None:
    """A warning when the store's image size is not the one `model` is meant for: the
    fraction of each image a crop covers (training sees only that much of each image).

    The run goes on (a smaller store than intended may be a deliberate choice); the line
    says how to get the model's own geometry.
    """
    if store_size == model.store_size:
        return None
    meant = model.store_size
    return (f"--model {model.name}'s {crop}x{crop} crops cover {100 * crop * crop / store_size ** 2:.0f}% of each of "
            f"the store's {store_size}x{store_size} images (the model is meant for {meant}x{meant} images, "
            f"{100 * crop * crop / meant ** 2:.0f}%: prepare with --size {meant})")


# -- devices ---------------------------------------------------------------------------------
def parse_devices(arg, flag: str = "--devices") -> tuple[str, ...]:
    """One or two device names from a comma-separated argument, each checked to run a Net.

    None picks cuda:0 when a GPU can run a Net, else cpu. Returns the names as given (one
    or two); `towers(names)` makes two of one.
    """
    from .. import has_cuda
    from ..backends import backend
    from ..net.devices import parse_device

    if arg is None:
        arg = "cuda:0" if has_cuda() else "cpu"
    names = [a.strip() for a in arg.split(",") if a.strip()]
    if len(names) not in (1, 2):
        raise UsageError(f"{flag} takes one device or two comma-separated ones, got {arg!r}")
    for n in names:
        try:
            kind, _ = parse_device(n)
        except ValueError as e:
            raise UsageError(f"{flag}: {e}") from None
        if kind == "cuda" and not has_cuda():
            raise UsageError(f"{flag} {n}: no usable GPU (cuda_convnet.has_cuda() is False)")
        try:
            backend(kind)
        except ImportError as e:  # the emulator extension is not built
            raise UsageError(f"{flag} {n}: {e}") from None
    return tuple(names)


def towers(names) -> tuple[str, str]:
    """The two towers' devices: one name serves both."""
    return tuple(names) * 2 if len(names) == 1 else tuple(names)


# -- outputs ---------------------------------------------------------------------------------
def output_dir(path, flag: str = "--out") -> str:
    """Check, before any work, that the output folder `path` can be made and written
    (it is not created here); return it absolute. UsageError saying why not."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path}: exists and is a file, expected a folder")
    existing = path
    while not os.path.exists(existing):  # the first ancestor that exists is where mkdir writes
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {path}: {existing} is a file, so the folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable")
    # What os.access cannot tell (a read-only or special file system, root's access):
    # make a scratch folder where the output will be made, and remove it.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot create the folder ({e.strerror})") from None
    return path


def output_file(path, flag: str) -> None:
    """Check that the file `path` can be written, before the work whose result goes there."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a folder, expected a file name")
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path}: no such folder {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable")
    # What os.access cannot tell (a read-only or special file system, root's access):
    # open it for appending, which changes nothing, and remove it if it is new.
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
        if not existed:
            os.remove(path)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot be written ({e.strerror})") from None


# -- --resume ---------------------------------------------------------------------------------
def resume_settings(ckpt, recorded: dict, given: dict, flags: dict) -> dict:
    """The settings a resumed run uses: `recorded` (the checkpoint's), with `given` (the
    command line's; None = not given) allowed only where it equals the recorded value.

    A resumed run continues bit-identically only with every recorded setting unchanged
    (batch order and augmentation follow the seed and batch size; the optimizer and the
    schedule carry their own state), so a different value is refused, naming the flag
    and both values. flags: setting -> its command-line flag. Returns setting -> value.
    """
    from . import UsageError

    changed = []
    for key, flag in flags.items():
        value = given.get(key)
        if value is None:
            continue
        shown = flag if value is True else f"{flag} {value}"
        if key not in recorded:
            changed.append(f"{shown} (the checkpoint records no {flag})")
        elif value != recorded[key]:
            was = f"without {flag}" if recorded[key] is None else f"with {flag} {recorded[key]}"
            changed.append(f"{shown} (the run was trained {was})")
    if changed:
        raise UsageError(f"--resume continues {ckpt} bit-identically, so its settings cannot change: "
                         f"{'; '.join(changed)}; leave these flags out to keep the recorded values")
    return {key: recorded.get(key) if given.get(key) is None else given[key] for key in flags}


def interrupted(ckpt) -> str:
    """What a Ctrl-C'd `train` or `demo` says: what its checkpoint file holds, read back, and
    what to run next. Interrupted before the first epoch's checkpoint landed, nothing was
    saved, and --resume would be refused (no checkpoint), so it says to start again."""
    from ..training import on_disk

    if not os.path.exists(ckpt):
        return (f"nothing was saved (no epoch had finished, so there is no checkpoint at {ckpt}); "
                "run the same command again to start over")
    return f"{on_disk(ckpt)}; continue with --resume"


@contextlib.contextmanager
def says_what_is_saved(out):
    """A Ctrl-C anywhere in a training command (loading the data, building the net, inside
    an epoch) ends with interrupted(OUT/checkpoint.npz): the line that says what is on disk."""
    try:
        yield
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted(os.path.join(os.path.abspath(os.fspath(out)), CHECKPOINT))) from None


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 epoch', '2 epochs': n and the noun, plural only when n != 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# -- stores and checkpoints ------------------------------------------------------------------
def subset(n: int, limit: int | None) -> np.ndarray | None:
    """Indices of `limit` of n examples, evenly spaced (a store is in class order); None = all."""
    if limit is None or limit >= n:
        return None
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def open_store(root, split: str | None = "train"):
    """ImageStore(root, split); split None: "train" if the store has it, else its first split."""
    from ..data.store import ImageStore, StoreError, read_manifest

    try:
        if split is None:
            splits = sorted(read_manifest(root).get("splits", {}))
            if not splits:
                raise UsageError(f"{root}: the store has no splits")
            split = "train" if "train" in splits else splits[0]
        return ImageStore(root, split)
    except StoreError as e:
        raise UsageError(str(e)) from None


def checkpoint_path(path) -> str:
    """A checkpoint file, or a training folder holding checkpoint.npz."""
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = os.path.join(path, CHECKPOINT)
        if not os.path.exists(inside):
            raise UsageError(f"{path}: a folder with no {CHECKPOINT} in it")
        return inside
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such checkpoint")
    return path


def read_manifest(path):
    """The manifest of a checkpoint (for what `train --resume` must match); one-line errors."""
    from ..net.checkpoint import CheckpointError
    from ..net.checkpoint import read_manifest as read

    try:
        return read(path)
    except CheckpointError as e:  # every fault of a checkpoint file, its path first
        raise UsageError(str(e)) from None


def load_model(path, devices, precision: str | None = None):
    """load_checkpoint(path) with the towers on `devices` (one name: all towers on it), in
    `precision` (None: the one the checkpoint records, "fp32" if it records none)."""
    from ..net import CheckpointError, load_checkpoint

    path = checkpoint_path(path)
    devs = devices[0] if len(devices) == 1 else list(devices)
    try:
        return load_checkpoint(path, devices=devs, precision=precision)
    except (CheckpointError, ValueError) as e:  # ValueError: the devices do not fit the net
        msg = str(e)
        raise UsageError(msg if msg.startswith(path) else f"{path}: {msg}") from None


class Scaled:
    """A view function (a training augment, the centre crop) with its output multiplied by `scale`."""

    def __init__(self, fn, scale: float):
        self.fn, self.scale = fn, float(scale)

    def __call__(self, x, **kw):
        x = self.fn(x, **kw)
        if self.scale != 1.0:
            x *= np.float32(self.scale)
        return x


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Limit BLAS to `n` threads (None: leave it alone). See cli/demo.py for why 1 helps small nets."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # ships with scikit-learn, a dependency

    with threadpool_limits(limits=max(1, int(n)), user_api="blas"):
        yield
