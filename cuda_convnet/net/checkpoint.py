"""Checkpoints: one .npz holding the weights, velocities and a JSON manifest (ARCHITECTURE.md §8.5).

Layout of the archive (NumPy's .npz, i.e. an uncompressed zip of .npy files):

    manifest          uint8 bytes of a UTF-8 JSON object:
                        format "cuda_convnet.checkpoint", version 2,
                        net: the Net spec (layers, devices, input shape, seed, dtype,
                          precision: absent in files written before nets had one,
                          which load as "fp32", what those nets computed in),
                        step: training steps taken (drives the dropout masks),
                        optimizer: {"lr", "momentum", "weight_decay"} or null,
                        schedule: PlateauSchedule state or null,
                        extra: anything JSON the caller adds (epoch, batch, history, ...),
                        arrays: {"<member name>": {"dtype": "<f4", "shape": [...]}} for every
                          member below: the archive must hold exactly these
    param/<name>      every parameter, e.g. param/conv1.weight
    velocity/<name>   the optimizer's velocity for it (when an optimizer was saved)
    array/<name>      any further arrays the caller adds (`arrays=`: e.g. the training
                      mean image, so a checkpoint alone can classify an image file)

Writing is atomic: the archive goes to a temporary file in the destination's directory,
is flushed and fsync'ed, then os.replace'd over the destination, so an interrupted save
leaves the previous checkpoint intact. Weights and velocities are stored bit-exactly, so
training resumed from a checkpoint continues bit-identically to an uninterrupted run
(given the same batches: the training loop saves its position in `extra`).

Reading validates the whole file against the schema above before anything is built:
zip structure (stored members only, sizes within the file, CRCs, no duplicate or
unlisted members), every member's .npy header (no pickles, no object dtypes, C order,
dtype and shape exactly as the manifest lists, byte count exact), the manifest's types
and ranges (version, step >= 0, finite hyperparameters >= 0, the schedule's fields), the
parameters and velocities the net spec implies, and a mean image when one is listed
(float, (H, W, 3), finite). Every failure -- a damaged zip, a crafted manifest, a missing
or extra entry -- raises CheckpointError (a ValueError) whose message starts with the
file's path and names the problem. Nothing is ever unpickled.

The net layer (graph.py) does not know this module: save_checkpoint takes a Net, and
load_checkpoint builds one with Net.from_spec.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import checks
from ..atomic import open_atomic
from ..checks import PRECISIONS
from ..optim import SGD, PlateauSchedule
from .graph import Net

FORMAT = "cuda_convnet.checkpoint"
VERSION = 2

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "read_checkpoint", "read_manifest", "save_checkpoint"]


class CheckpointError(ValueError):
    """A file that is not a valid cuda_convnet checkpoint: damaged, truncated, foreign or
    crafted. The message starts with the file's path and names the problem."""


@dataclass
class Checkpoint:
    net: object
    optimizer: object | None
    schedule: object | None
    extra: dict
    step: int
    arrays: dict = field(default_factory=dict)  # name -> array, as given to save_checkpoint(arrays=)


def save_checkpoint(path, net, *, optimizer=None, schedule=None, extra=None, arrays=None) -> None:
    """Write `net` (and optimizer, schedule, JSON `extra`, named NumPy `arrays`) atomically.

    Raises TypeError for an object-dtype array (it would need pickling) or an extra that
    JSON cannot hold, ValueError for a NaN or infinity in it (the manifest is strict JSON).
    """
    path = os.fspath(path)
    members = {}
    for name, a in net.state_dict().items():
        members[f"param/{name}"] = a
    if optimizer is not None:
        for name, v in optimizer.state_dict()["velocities"].items():
            members[f"velocity/{name}"] = v
    for name, a in (arrays or {}).items():
        a = np.ascontiguousarray(a)
        if a.dtype.hasobject:  # would be pickled, and checkpoints are never unpickled
            raise TypeError(f"save_checkpoint: array {name!r} has dtype object; store numbers or strings")
        members[f"array/{name}"] = a
    manifest = {
        "format": FORMAT, "version": VERSION, "net": net.spec(), "step": int(net.step),
        "optimizer": optimizer.hyperparameters() if optimizer is not None else None,
        "schedule": schedule.state_dict() if schedule is not None else None,
        "extra": extra or {},
        "arrays": {k: {"dtype": np.lib.format.dtype_to_descr(a.dtype), "shape": list(a.shape)}
                   for k, a in members.items()},
    }
    members["manifest"] = np.frombuffer(json.dumps(manifest, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    with open_atomic(path, "wb") as f:
        np.savez(f, **members)


# ----------------------------------------------------------------------------- reading

# What a damaged or crafted zip can raise from zipfile/zlib/struct while being read.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError, RuntimeError,
               NotImplementedError, struct.error, UnicodeDecodeError, OverflowError, MemoryError, IndexError)
_MAX_MANIFEST = 64 << 20  # bytes; a real manifest (spec + history) is a few kB


def _bad(path, why) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid cuda_convnet checkpoint ({why})")


def _parse_npy(path, name: str, data: bytes) -> np.ndarray:
    """One member's bytes -> array, refusing pickles, object dtypes, Fortran order, bad sizes."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError, MemoryError) as e:
        raise _bad(path, f"member {name!r} has no valid .npy header: {e}") from None
    if dtype.hasobject:
        raise _bad(path, f"member {name!r} has an object dtype (would need unpickling)")
    if fortran:
        raise _bad(path, f"member {name!r} is in Fortran order; checkpoints are written C-ordered")
    count = math.prod(shape)
    body = len(data) - f.tell()
    if count * dtype.itemsize != body:
        raise _bad(path, f"member {name!r} holds {body} data bytes; its header says {shape} {dtype} "
                         f"({count * dtype.itemsize} bytes)")
    return np.frombuffer(bytearray(data[f.tell():]), dtype=dtype).reshape(shape)


def _read_members(path, zf: zipfile.ZipFile, size: int, only=None) -> dict[str, np.ndarray]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _bad(path, "duplicate member names in the zip directory")
    out = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise _bad(path, f"member {info.filename!r} is not a .npy file")
        name = info.filename[:-4]
        if only is not None and name not in only:
            continue
        if info.compress_type != zipfile.ZIP_STORED:
            raise _bad(path, f"member {name!r} is compressed (method {info.compress_type}); checkpoints are "
                             "stored uncompressed")
        if info.flag_bits & 0x1:
            raise _bad(path, f"member {name!r} is marked encrypted")
        if not 0 <= info.file_size <= size or info.compress_size != info.file_size:
            raise _bad(path, f"member {name!r} claims {info.file_size} bytes in a {size}-byte file")
        if name == "manifest" and info.file_size > _MAX_MANIFEST:
            raise _bad(path, f"the manifest claims {info.file_size} bytes")
        out[name] = _parse_npy(path, name, zf.read(info))  # zf.read checks the CRC
    return out


def _open_zip(path, names=None) -> dict[str, np.ndarray]:
    """The members (all, or those in `names`) of the .npz at `path`; CheckpointError if damaged."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(6)
            if head.startswith(b"\x93NUMPY"):
                raise _bad(path, "a single .npy array, not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                return _read_members(path, zf, size, names)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except _ZIP_ERRORS as e:
        raise _bad(path, f"truncated, corrupt or not an .npz: {type(e).__name__}: {e}") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_manifest(path, member) -> dict:
    if member is None:
        raise _bad(path, "no manifest: a foreign .npz")
    if member.dtype != np.uint8 or member.ndim != 1:
        raise _bad(path, f"the manifest is {member.dtype} {member.shape}, not uint8 bytes")
    try:
        manifest = json.loads(member.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _bad(path, f"manifest is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(path, f"manifest format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    if manifest.get("version") != VERSION or not _is_int(manifest.get("version")):
        raise _bad(path, f"version {manifest.get('version')!r}; this code reads version {VERSION}")
    for key in ("net", "step", "optimizer", "schedule", "extra", "arrays"):
        if key not in manifest:
            raise _bad(path, f"manifest has no {key!r}")
    if not _is_int(manifest["step"]) or manifest["step"] < 0:
        raise _bad(path, f"step must be an integer >= 0, got {manifest['step']!r}")
    if not isinstance(manifest["extra"], dict):
        raise _bad(path, f"extra must be an object, got {type(manifest['extra']).__name__}")
    _check_spec(path, manifest["net"])
    _check_optimizer(path, manifest["optimizer"])
    _check_schedule(path, manifest["schedule"], manifest["optimizer"])
    arrays = manifest["arrays"]
    if not isinstance(arrays, dict):
        raise _bad(path, f"arrays must be an object, got {type(arrays).__name__}")
    for name, entry in arrays.items():
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape"} and isinstance(entry["dtype"], str)
                and isinstance(entry["shape"], list) and all(_is_int(d) and d >= 0 for d in entry["shape"])):
            raise _bad(path, f"arrays[{name!r}] must be {{'dtype': str, 'shape': [ints >= 0]}}, got {entry!r}")
        if not name.startswith(("param/", "velocity/", "array/")):
            raise _bad(path, f"arrays lists {name!r}, not a param/, velocity/ or array/ entry")
    return manifest


def _check_spec(path, spec):
    if not isinstance(spec, dict):
        raise _bad(path, f"net must be an object, got {type(spec).__name__}")
    want = {"format": str, "version": int, "input_shape": list, "devices": list, "seed": int, "dtype": str,
            "layers": list}
    for key, typ in want.items():
        if key not in spec:
            raise _bad(path, f"the net spec has no {key!r}")
        if not isinstance(spec[key], typ) or isinstance(spec[key], bool):
            raise _bad(path, f"net.{key} must be {typ.__name__}, got {type(spec[key]).__name__}")
    shape = spec["input_shape"]
    if len(shape) != 3 or not all(_is_int(d) and 1 <= d <= 1 << 16 for d in shape):
        raise _bad(path, f"net.input_shape must be 3 integers in [1, 65536], got {shape!r}")
    if not spec["devices"] or not all(isinstance(d, str) for d in spec["devices"]):
        raise _bad(path, f"net.devices must be a non-empty list of names, got {spec['devices']!r}")
    if spec["seed"] < 0:
        raise _bad(path, f"net.seed must be >= 0, got {spec['seed']}")
    if spec["dtype"] not in ("float32", "float64"):
        raise _bad(path, f"net.dtype must be float32 or float64, got {spec['dtype']!r}")
    if "precision" in spec and (not isinstance(spec["precision"], str) or spec["precision"] not in PRECISIONS):
        raise _bad(path, f"net.precision must be one of {', '.join(PRECISIONS)}, got {spec['precision']!r}")
    for i, layer in enumerate(spec["layers"]):
        if not (isinstance(layer, dict) and isinstance(layer.get("type"), str) and isinstance(layer.get("name"), str)
                and isinstance(layer.get("inputs"), list) and all(isinstance(x, str) for x in layer["inputs"])):
            raise _bad(path, f"net.layers[{i}] must be an object with a type, a name and a list of inputs")


def _check_optimizer(path, opt):
    if opt is None:
        return
    if not isinstance(opt, dict) or set(opt) != {"lr", "momentum", "weight_decay"}:
        raise _bad(path, f"optimizer must be null or {{lr, momentum, weight_decay}}, got {opt!r}")
    for k, v in opt.items():
        if not _is_real(v) or v < 0:
            raise _bad(path, f"optimizer.{k} must be a finite number >= 0, got {v!r}")


def _check_schedule(path, sched, opt):
    if sched is None:
        return
    if opt is None:
        raise _bad(path, "a schedule without an optimizer")
    if not isinstance(sched, dict):
        raise _bad(path, f"schedule must be an object, got {type(sched).__name__}")
    checks = {"factor": lambda v: _is_real(v) and 0 < v < 1, "patience": lambda v: _is_int(v) and v >= 1,
              "max_drops": lambda v: _is_int(v) and v >= 0, "min_delta": lambda v: _is_real(v) and v >= 0,
              "best": lambda v: v is None or _is_real(v), "bad_epochs": lambda v: _is_int(v) and v >= 0,
              "drops": lambda v: _is_int(v) and v >= 0, "finished": lambda v: isinstance(v, bool),
              "history": lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v),
              "evaluations": lambda v: _is_int(v) and v >= 0}
    for k, ok in checks.items():
        if k not in sched:
            raise _bad(path, f"schedule has no {k!r}")
        if not ok(sched[k]):
            raise _bad(path, f"schedule.{k} is out of range or of the wrong type: {sched[k]!r}")


def _check_members(path, manifest, arrays):
    listed = manifest["arrays"]
    missing = sorted(set(listed) - set(arrays))
    unlisted = sorted(set(arrays) - set(listed))
    if missing:
        raise _bad(path, f"entries listed in the manifest are missing: {missing[:5]}")
    if unlisted:
        raise _bad(path, f"entries not listed in the manifest: {unlisted[:5]}")
    for name, a in arrays.items():
        want = listed[name]
        if np.lib.format.dtype_to_descr(a.dtype) != want["dtype"] or list(a.shape) != want["shape"]:
            raise _bad(path, f"{name} is {a.dtype} {list(a.shape)}; the manifest says {want['dtype']} "
                             f"{want['shape']}")
    mean = arrays.get("array/mean")
    if mean is not None and (mean.dtype.kind != "f" or mean.ndim != 3 or mean.shape[-1] != 3
                             or not np.isfinite(mean).all()):
        raise _bad(path, f"the mean image must be finite floats (H, W, 3), got {mean.dtype} {mean.shape}")


def read_manifest(path) -> dict:
    """The validated manifest of a checkpoint, without reading its arrays. CheckpointError if bad."""
    path = os.fspath(path)
    return _parse_manifest(path, _open_zip(path, {"manifest"}).get("manifest"))


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, arrays) of a checkpoint file, validated against the schema (module
    docstring). Raises CheckpointError, its message starting with the path, for any fault."""
    path = os.fspath(path)
    arrays = _open_zip(path)
    manifest = _parse_manifest(path, arrays.pop("manifest", None))
    _check_members(path, manifest, arrays)
    return manifest, arrays


def load_checkpoint(path, *, devices=None, precision: str | None = None) -> Checkpoint:
    """Rebuild the net (and the optimizer and schedule, if saved) from a checkpoint.

    `devices` overrides the saved device names (e.g. load a GPU-trained net on "cpu");
    `precision` the saved precision (None: the checkpoint's; "fp32" for a file that
    records none). ValueError for a precision not in checks.PRECISIONS.
    Raises CheckpointError (a ValueError naming the file) for a missing, damaged or
    crafted file, including a net spec that does not build or whose parameters or
    velocities differ from the archive's entries.
    """
    path = os.fspath(path)
    if precision is not None:  # the caller's mistake, not the file's: a plain ValueError
        checks.check_precision("load_checkpoint", precision)
    manifest, arrays = read_checkpoint(path)
    try:
        net = Net.from_spec(manifest["net"], devices=devices, init=False, precision=precision)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, MemoryError) as e:
        raise _bad(path, f"the net spec does not build: {type(e).__name__}: {e}") from None
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    vel = {k[len("velocity/"):]: v for k, v in arrays.items() if k.startswith("velocity/")}
    want = {p.name: (p.shape, p.dtype) for p in net.parameters()}
    for what, got in (("param", params), ("velocity", vel if manifest["optimizer"] is not None else None)):
        if got is None:
            if vel:
                raise _bad(path, "velocities stored without an optimizer")
            continue
        if set(got) != set(want):
            raise _bad(path, f"the {what} entries {sorted(set(got) ^ set(want))[:5]} do not match the net spec")
        for name, a in got.items():
            if tuple(a.shape) != want[name][0] or a.dtype != want[name][1]:
                raise _bad(path, f"{what}/{name} is {a.dtype} {a.shape}; the net needs {want[name][1]} "
                                 f"{want[name][0]}")
    net.load_state_dict(params)
    net.step = manifest["step"]
    optimizer = schedule = None
    if manifest["optimizer"] is not None:
        optimizer = SGD(net.parameters(), **manifest["optimizer"])
        optimizer.load_state_dict({**manifest["optimizer"], "velocities": vel})
        if manifest["schedule"] is not None:
            schedule = PlateauSchedule(optimizer)
            schedule.load_state_dict(manifest["schedule"])
    named = {k[len("array/"):]: v for k, v in arrays.items() if k.startswith("array/")}
    return Checkpoint(net, optimizer, schedule, dict(manifest["extra"]), net.step, named)
