"""Checkpoints: one .npz holding the weights, velocities and a JSON manifest (ARCHITECTURE.md §8.5).

Layout of the archive (NumPy's .npz, i.e. a zip of .npy files, read with
allow_pickle=False so a checkpoint can never execute code):

    manifest          uint8 bytes of a UTF-8 JSON object:
                        format "cuda_convnet.checkpoint", version 1,
                        net: the Net spec (layers, devices, input shape, seed, dtype),
                        step: training steps taken (drives the dropout masks),
                        optimizer: {"lr", "momentum", "weight_decay"} or null,
                        schedule: PlateauSchedule state or null,
                        extra: anything JSON the caller adds (epoch, batch, history, ...)
    param/<name>      every parameter, e.g. param/conv1.weight
    velocity/<name>   the optimizer's velocity for it (when an optimizer was saved)
    array/<name>      any further arrays the caller adds (`arrays=`: e.g. the training
                      mean image, so a checkpoint alone can classify an image file)

Writing is atomic: the archive goes to a temporary file in the destination's directory,
is flushed and fsync'ed, then os.replace'd over the destination, so an interrupted save
leaves the previous checkpoint intact. Reading a truncated, corrupt or foreign file raises
ValueError naming the file. Weights and velocities are stored bit-exactly, so training
resumed from a checkpoint continues bit-identically to an uninterrupted run (given the
same batches: the training loop saves its position in `extra`).
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

FORMAT = "cuda_convnet.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    net: object
    optimizer: object | None
    schedule: object | None
    extra: dict
    step: int
    arrays: dict = field(default_factory=dict)  # name -> array, as given to save_checkpoint(arrays=)


def save_checkpoint(path, net, *, optimizer=None, schedule=None, extra=None, arrays=None) -> None:
    """Write `net` (and optimizer, schedule, JSON `extra`, named NumPy `arrays`) atomically."""
    path = os.fspath(path)
    manifest = {
        "format": FORMAT, "version": VERSION, "net": net.spec(), "step": int(net.step),
        "optimizer": optimizer.hyperparameters() if optimizer is not None else None,
        "schedule": schedule.state_dict() if schedule is not None else None,
        "extra": extra or {},
    }
    members = {"manifest": np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)}
    for name, a in net.state_dict().items():
        members[f"param/{name}"] = a
    if optimizer is not None:
        for name, v in optimizer.state_dict()["velocities"].items():
            members[f"velocity/{name}"] = v
    for name, a in (arrays or {}).items():
        a = np.asarray(a)
        if a.dtype.hasobject:  # would be pickled, and checkpoints are read with allow_pickle=False
            raise TypeError(f"save_checkpoint: array {name!r} has dtype object; store numbers or strings")
        members[f"array/{name}"] = a
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _bad(path, why) -> ValueError:
    return ValueError(f"{path}: not a valid cuda_convnet checkpoint ({why})")


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, arrays) of a checkpoint file, validated; ValueError naming the file if bad."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    # Our own file object, so that it is closed whatever np.load raises.
    with open(path, "rb") as f:
        try:
            z = np.load(f, allow_pickle=False)
        except (ValueError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise _bad(path, f"truncated, corrupt or not an .npz: {type(e).__name__}: {e}") from None
        if not hasattr(z, "files"):  # a bare .npy array
            raise _bad(path, "a single .npy array, not an .npz archive")
        try:
            with z:
                if "manifest" not in z.files:
                    raise _bad(path, "no manifest: a foreign .npz")
                arrays = {k: z[k] for k in z.files}
        except ValueError as e:
            if str(e).startswith(f"{path}:"):
                raise
            raise _bad(path, f"unreadable member: {e}") from None
        except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
            raise _bad(path, f"truncated or corrupt: {type(e).__name__}: {e}") from None
    try:
        manifest = json.loads(arrays.pop("manifest").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"manifest is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(path, f"manifest format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise _bad(path, f"version {manifest.get('version')!r}; this code reads version {VERSION}")
    for key in ("net", "step"):
        if key not in manifest:
            raise _bad(path, f"manifest has no {key!r}")
    return manifest, arrays


def load_checkpoint(path, *, devices=None) -> Checkpoint:
    """Rebuild the net (and the optimizer and schedule, if saved) from a checkpoint.

    `devices` overrides the saved device names (e.g. load a GPU-trained net on "cpu").
    """
    from ..optim import SGD, PlateauSchedule
    from .graph import Net

    manifest, arrays = read_checkpoint(path)
    try:
        net = Net.from_spec(manifest["net"], devices=devices, init=False)
    except (KeyError, TypeError) as e:
        raise _bad(path, f"the net spec is incomplete: {e}") from None
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    try:
        net.load_state_dict(params)
    except ValueError as e:
        raise _bad(path, str(e)) from None
    net.step = int(manifest["step"])
    optimizer = schedule = None
    if manifest.get("optimizer") is not None:
        optimizer = SGD(net.parameters(), **manifest["optimizer"])
        vel = {k[len("velocity/"):]: v for k, v in arrays.items() if k.startswith("velocity/")}
        try:
            optimizer.load_state_dict({**manifest["optimizer"], "velocities": vel})
        except ValueError as e:
            raise _bad(path, str(e)) from None
        if manifest.get("schedule") is not None:
            schedule = PlateauSchedule(optimizer)
            schedule.load_state_dict(manifest["schedule"])
    named = {k[len("array/"):]: v for k, v in arrays.items() if k.startswith("array/")}
    return Checkpoint(net, optimizer, schedule, dict(manifest.get("extra") or {}), net.step, named)
