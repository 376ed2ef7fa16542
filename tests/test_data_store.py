"""The store format: write_store round trip, .npy header, clear errors for bad stores."""

import json

import numpy as np
import pytest

from cuda_convnet.data.store import (
    NPY_HEADER_BYTES,
    ImageStore,
    StoreError,
    npy_header,
    write_store,
)


def _small_store(root, n=5, size=16):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int32) % 2
    write_store(root, {"train": (imgs, labels), "val": (imgs[:2], labels[:2])}, ["a", "b"])
    return imgs, labels


def test_round_trip(tmp_path):
    imgs, labels = _small_store(tmp_path / "s")
    s = ImageStore(tmp_path / "s", "train")
    assert len(s) == 5 and s.classes == ["a", "b"] and s.size == 16
    np.testing.assert_array_equal(s.images, imgs)
    np.testing.assert_array_equal(s.labels, labels)
    np.testing.assert_allclose(s.mean, imgs.mean(0), atol=1e-4)
    assert s.eigvals.shape == (3,) and s.eigvecs.shape == (3, 3)
    v = ImageStore(tmp_path / "s", "val")
    assert len(v) == 2 and v.mean is not None  # statistics belong to the store, not the split
    assert "2 images" in repr(v)


def test_npy_header_is_valid_npy():
    h = npy_header((1281167, 256, 256, 3))
    assert len(h) == NPY_HEADER_BYTES and NPY_HEADER_BYTES % 64 == 0
    import io

    f = io.BytesIO(h)
    assert np.lib.format.read_magic(f) == (1, 0)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    assert shape == (1281167, 256, 256, 3) and not fortran and dtype == np.uint8


def test_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        ImageStore(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        ImageStore(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a prepared image store"):
        ImageStore(tmp_path / "empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(StoreError, match="not a cuda_convnet.image_store"):
        ImageStore(tmp_path / "foreign")
    (tmp_path / "foreign/manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable manifest"):
        ImageStore(tmp_path / "foreign")

    _small_store(tmp_path / "s")
    with pytest.raises(StoreError, match="no split 'test'"):
        ImageStore(tmp_path / "s", "test")
    m = json.loads((tmp_path / "s/manifest.json").read_text())
    m["version"] = 99
    (tmp_path / "s/manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="version 99"):
        ImageStore(tmp_path / "s")


def test_truncated_images_file(tmp_path):
    _small_store(tmp_path / "s")
    path = tmp_path / "s/train/images.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(StoreError, match="truncated"):
        ImageStore(tmp_path / "s", "train")


def test_images_do_not_match_manifest(tmp_path):
    _small_store(tmp_path / "s")
    np.save(tmp_path / "s/train/labels.npy", np.zeros(4, np.int32))
    with pytest.raises(StoreError, match="expected int32 \\(5,\\)"):
        ImageStore(tmp_path / "s", "train")
    np.save(tmp_path / "s/train/labels.npy", np.full(5, 7, np.int32))
    with pytest.raises(StoreError, match="labels outside"):
        ImageStore(tmp_path / "s", "train")
    (tmp_path / "s/train/labels.npy").unlink()
    with pytest.raises(StoreError, match="missing"):
        ImageStore(tmp_path / "s", "train")


def test_write_store_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_store(tmp_path, {"train": (np.zeros((2, 4, 4, 3), np.float32), np.zeros(2))}, ["a"])
    with pytest.raises(ValueError, match="labels"):
        write_store(tmp_path, {"train": (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3))}, ["a"])
