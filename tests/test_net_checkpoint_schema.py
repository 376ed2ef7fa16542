"""A damaged or crafted checkpoint gets one clear error: CheckpointError naming the file.

Single-byte flips over the zip central directory and the manifest member (a fixed,
seeded sample of positions) either load the very same checkpoint or raise
CheckpointError; crafted manifests and members (wrong types, negative or huge sizes,
missing, extra or unlisted entries, pickles, compression) are each refused with a message
that names the problem; the CLI prints one line and exits 2.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from net_support import one_blas_thread, tiny_net  # noqa: F401
from subproc import run_cli

from cuda_convnet import SGD, CheckpointError, PlateauSchedule
from cuda_convnet.net import load_checkpoint, save_checkpoint
from cuda_convnet.net.checkpoint import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real checkpoint (net, optimizer, schedule, mean image, class names) and its contents."""
    path = tmp_path_factory.mktemp("ck") / "good.npz"
    net = tiny_net(towers=2, seed=5)
    opt = SGD(net.parameters(), lr=0.03)
    sched = PlateauSchedule(opt)
    sched.step(0.4)
    mean = np.random.default_rng(1).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    save_checkpoint(path, net, optimizer=opt, schedule=sched, extra={"epoch": 3},
                    arrays={"mean": mean, "classes": np.array(["cat", "dog"])})
    manifest, arrays = read_checkpoint(path)
    return {"path": path, "bytes": path.read_bytes(), "manifest": manifest, "arrays": arrays}


def _same(path, good):
    """Load `path` fully; it must equal the good checkpoint in every array and manifest field."""
    ck = load_checkpoint(path)
    manifest, arrays = read_checkpoint(path)
    assert manifest == good["manifest"]
    assert sorted(arrays) == sorted(good["arrays"])
    for k, a in arrays.items():
        assert a.dtype == good["arrays"][k].dtype
        np.testing.assert_array_equal(a, good["arrays"][k])
    assert set(ck.arrays) == {"mean", "classes"}


def _central_directory(data: bytes) -> tuple[int, int]:
    eocd = data.rindex(b"PK\x05\x06")
    offset = struct.unpack("<I", data[eocd + 16:eocd + 20])[0]
    return offset, len(data)  # the directory and the end record after it


def _manifest_region(data: bytes) -> tuple[int, int]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("manifest.npy")
    start = info.header_offset
    return start, start + 30 + len(info.filename) + len(info.extra) + info.compress_size + 100


@pytest.mark.parametrize("region", ["central_directory", "manifest"])
def test_single_byte_flips_load_identically_or_raise_checkpoint_error(tmp_path, good, region):
    data = good["bytes"]
    lo, hi = (_central_directory if region == "central_directory" else _manifest_region)(data)
    rng = np.random.default_rng(7 if region == "manifest" else 8)
    positions = sorted(rng.choice(np.arange(lo, min(hi, len(data))), size=min(160, hi - lo), replace=False))
    outcomes = {"same": 0, "error": 0}
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{pos}.npz"
        path.write_bytes(bytes(bad))
        try:
            _same(path, good)
            outcomes["same"] += 1
        except CheckpointError as e:
            assert str(e).startswith(f"{path}: not a valid cuda_convnet checkpoint (") or "no such" in str(e)
            outcomes["error"] += 1
        path.unlink()
    assert outcomes["error"] > len(positions) // 2  # the sample did hit structure, not only padding


# ----------------------------------------------------------------------------- crafted files

def _npy(a) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
    return f.getvalue()


def _raw_npy(descr: str, shape, fortran=False, body=b"") -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def _write(path, manifest, members: dict, compress=zipfile.ZIP_STORED):
    members = dict(members)
    if manifest is not None:
        members["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, a in members.items():
            z.writestr(name + ".npy", a if isinstance(a, bytes) else _npy(a))


def _listing(arrays):
    return {k: {"dtype": np.lib.format.dtype_to_descr(a.dtype), "shape": list(a.shape)} for k, a in arrays.items()}


def _edit(manifest, dotted, value):
    m = json.loads(json.dumps(manifest))
    *parents, last = dotted.split(".")
    d = m
    for p in parents:
        d = d[p]
    if value is KeyError:
        del d[last]
    else:
        d[last] = value
    return m


MANIFEST_CASES = [
    ("step", -1, "step must be an integer >= 0"),
    ("step", "7", "step must be an integer >= 0"),
    ("step", KeyError, "manifest has no 'step'"),
    ("version", True, "version True"),
    ("version", 1, "version 1"),
    ("format", 3, "manifest format is 3"),
    ("extra", [1, 2], "extra must be an object"),
    ("net", KeyError, "manifest has no 'net'"),
    ("net", "alexnet", "net must be an object"),
    ("net.input_shape", [16, -16, 3], "net.input_shape must be 3 integers"),
    ("net.input_shape", [16, 16], "net.input_shape must be 3 integers"),
    ("net.layers", {"a": 1}, "net.layers must be list"),
    ("net.layers", [7], r"net.layers\[0\] must be an object"),
    ("net.dtype", "float16", "net.dtype must be float32 or float64"),
    ("net.seed", -3, "net.seed must be >= 0"),
    ("net.devices", [], "net.devices must be a non-empty list"),
    ("optimizer.lr", -0.1, "optimizer.lr must be a finite number >= 0"),
    ("optimizer.lr", "fast", "optimizer.lr must be a finite number >= 0"),
    ("optimizer.momentum", KeyError, "optimizer must be null or"),
    ("schedule.factor", 2.0, "schedule.factor is out of range"),
    ("schedule.drops", -1, "schedule.drops is out of range"),
    ("schedule.best", "low", "schedule.best is out of range"),
    ("schedule.patience", KeyError, "schedule has no 'patience'"),
    ("optimizer", None, "a schedule without an optimizer"),
    ("arrays", [], "arrays must be an object"),
    ("arrays.array/mean", {"dtype": "<f4"}, r"arrays\['array/mean'\] must be"),
    ("arrays.array/mean", {"dtype": "<f4", "shape": [-16, 16, 3]}, r"arrays\['array/mean'\] must be"),
    ("arrays.array/mean", {"dtype": "<f4", "shape": [2**40, 2**40, 3]}, "array/mean is float32"),
    ("arrays.array/mean", {"dtype": "<f8", "shape": [16, 16, 3]}, "the manifest says <f8"),
    ("arrays.array/mean", KeyError, r"entries not listed in the manifest: \['array/mean'\]"),
    ("arrays.weights/x", {"dtype": "<f4", "shape": [1]}, "not a param/, velocity/ or array/ entry"),
    ("arrays.array/extra", {"dtype": "<f4", "shape": [1]}, r"listed in the manifest are missing: \['array/extra'\]"),
]


@pytest.mark.parametrize("key, value, message", MANIFEST_CASES)
def test_crafted_manifest_fields(tmp_path, good, key, value, message):
    path = tmp_path / "crafted.npz"
    _write(path, _edit(good["manifest"], key, value), good["arrays"])
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: not a valid cuda_convnet checkpoint")


def _member_case(good, case):
    """(manifest, members) for a crafted archive whose members disagree with a valid manifest."""
    arrays = dict(good["arrays"])
    manifest = good["manifest"]
    if case == "missing_mean":  # listed in the manifest, absent from the zip
        del arrays["array/mean"]
    elif case == "unlisted_array":
        arrays["array/evil"] = np.zeros(2, np.float32)
    elif case == "extra_param":  # listed consistently, but the net has no such parameter
        arrays["param/ghost.weight"] = np.zeros(2)
        manifest = {**manifest, "arrays": _listing(arrays)}
    elif case == "missing_velocity":
        del arrays["velocity/conv1/0.bias"]
        manifest = {**manifest, "arrays": _listing(arrays)}
    elif case == "wrong_param_shape":
        arrays["param/conv1/0.bias"] = np.zeros(3)
        manifest = {**manifest, "arrays": _listing(arrays)}
    elif case == "nan_mean":
        arrays["array/mean"] = np.full((16, 16, 3), np.nan, np.float32)
    elif case == "flat_mean":
        arrays["array/mean"] = np.zeros(768, np.float32)
        manifest = {**manifest, "arrays": _listing(arrays)}
    elif case == "huge_header_shape":  # the .npy header claims 2**60 elements: no allocation tried
        arrays["array/mean"] = _raw_npy("<f4", (2**20, 2**20, 2**20), body=b"\0" * 64)
    elif case == "object_member":
        arrays["array/classes"] = _raw_npy("|O", (2,), body=b"\x80\x04N.")
    elif case == "fortran_member":
        arrays["array/mean"] = _raw_npy("<f4", (16, 16, 3), fortran=True, body=b"\0" * 3072)
    elif case == "short_member":
        arrays["array/mean"] = _raw_npy("<f4", (16, 16, 3), body=b"\0" * 3000)
    elif case == "not_npy":
        arrays["array/mean"] = b"hello, world"
    elif case == "manifest_float":
        manifest = None
        arrays["manifest"] = np.zeros(4)
    elif case == "absurd_layer":  # a spec whose layer asks for 10**13 weights: refused, never allocated
        net = json.loads(json.dumps(manifest["net"]))
        fc = next(l for l in net["layers"] if l["type"] == "linear")
        fc["units"] = 10**13
        manifest = {**manifest, "net": net}
    return manifest, arrays


MEMBER_CASES = {
    "missing_mean": r"listed in the manifest are missing: \['array/mean'\]",
    "unlisted_array": r"not listed in the manifest: \['array/evil'\]",
    "extra_param": "do not match the net spec",
    "missing_velocity": "do not match the net spec",
    "wrong_param_shape": "the net needs",
    "nan_mean": "the mean image must be finite floats",
    "flat_mean": "the mean image must be finite floats",
    "huge_header_shape": "its header says",
    "object_member": "object dtype",
    "fortran_member": "Fortran order",
    "short_member": "holds 3000 data bytes",
    "not_npy": "no valid .npy header",
    "manifest_float": "not uint8 bytes",
    "absurd_layer": "the net spec does not build",
}


@pytest.mark.parametrize("case", sorted(MEMBER_CASES))
def test_crafted_members(tmp_path, good, case):
    path = tmp_path / "crafted.npz"
    manifest, arrays = _member_case(good, case)
    _write(path, manifest, arrays)
    with pytest.raises(CheckpointError, match=MEMBER_CASES[case]) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: not a valid cuda_convnet checkpoint")


@pytest.mark.parametrize("what", ["compressed", "duplicate", "empty", "npy", "directory"])
def test_zip_level_faults(tmp_path, good, what):
    path = tmp_path / "f.npz"
    if what == "compressed":
        _write(path, good["manifest"], good["arrays"], compress=zipfile.ZIP_DEFLATED)
        message = "compressed"
    elif what == "duplicate":
        _write(path, good["manifest"], good["arrays"])
        with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as z:
            z.writestr("array/mean.npy", _npy(good["arrays"]["array/mean"]))
        message = "duplicate member names"
    elif what == "empty":
        path.write_bytes(b"")
        message = "truncated, corrupt or not an .npz"
    elif what == "npy":
        path.write_bytes(_npy(np.zeros(3)))
        message = "a single .npy array"
    else:
        path.mkdir()
        message = "truncated, corrupt or not an .npz"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_cli_prints_one_line_and_exits_2(tmp_path, good):
    """eval, predict and train --resume on a damaged checkpoint: one line, exit status 2."""
    from PIL import Image

    from cuda_convnet.data.store import write_store

    bad = bytearray(good["bytes"])
    cd, _ = _central_directory(good["bytes"])
    bad[cd + 10] ^= 0x5A  # the first directory entry's compression method: a NotImplementedError in zipfile
    run = tmp_path / "run"
    run.mkdir()
    path = run / "checkpoint.npz"
    path.write_bytes(bytes(bad))
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(image)
    rng = np.random.default_rng(1)
    imgs, labels = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), np.arange(6) % 3
    write_store(tmp_path / "store", {"train": (imgs, labels), "val": (imgs, labels)}, ["a", "b", "c"])
    for args, says in ((("predict", path, image), "not a valid cuda_convnet checkpoint"),
                       (("eval", "store", path, "--no-progress"), "not a valid cuda_convnet checkpoint"),
                       (("train", "store", "--out", run, "--resume", "--no-progress"), str(path))):
        r = run_cli(*args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, r.stderr
        assert len(lines) == 1 and "Traceback" not in r.stderr and says in lines[0], r.stderr
