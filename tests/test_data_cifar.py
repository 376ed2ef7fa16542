"""CIFAR-10 python batches (Krizhevsky's pickle format), read from tiny self-made files."""

import pickle
import tarfile

import numpy as np
import pytest

from cuda_convnet.data.cifar import CifarError, load_cifar10, read_batch

NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


def _batch(n, seed):
    r = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": r.integers(0, 10, n).tolist(),
        b"data": r.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def _write(d, path):
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)  # the format Python 2's cPickle wrote


@pytest.fixture
def cifar_dir(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = {f"data_batch_{i}": _batch(4, i) for i in range(1, 6)}
    batches["test_batch"] = _batch(3, 9)
    for name, d in batches.items():
        _write(d, root / name)
    _write(
        {b"label_names": NAMES, b"num_cases_per_batch": 4, b"num_vis": 3072}, root / "batches.meta"
    )
    return tmp_path, batches


def test_layout_is_channel_planes_to_nhwc(cifar_dir):
    root, batches = cifar_dir
    images, labels = read_batch(root / "cifar-10-batches-py/data_batch_2")
    raw = batches["data_batch_2"][b"data"]
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
    for n, y, x, c in [(0, 0, 0, 0), (1, 5, 31, 1), (3, 31, 7, 2), (2, 17, 3, 1)]:
        assert images[n, y, x, c] == raw[n, c * 1024 + y * 32 + x]
    assert labels.tolist() == batches["data_batch_2"][b"labels"]


def test_load_directory_and_tarball(cifar_dir):
    root, batches = cifar_dir
    for source in (root, root / "cifar-10-batches-py"):
        c = load_cifar10(source)
        assert c.train_images.shape == (20, 32, 32, 3) and c.test_images.shape == (3, 32, 32, 3)
        assert c.label_names[0] == "airplane" and len(c.label_names) == 10
        np.testing.assert_array_equal(c.train_labels[4:8], batches["data_batch_2"][b"labels"])
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    t = load_cifar10(root / "cifar-10-python.tar.gz")
    np.testing.assert_array_equal(t.train_images, c.train_images)
    np.testing.assert_array_equal(t.test_labels, c.test_labels)


def test_errors(cifar_dir, tmp_path):
    root, _ = cifar_dir
    with pytest.raises(CifarError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
    (root / "cifar-10-batches-py/data_batch_3").unlink()
    with pytest.raises(CifarError, match="missing data_batch_3"):
        load_cifar10(root)
    _write({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, tmp_path / "bad")
    with pytest.raises(CifarError, match="3072"):
        read_batch(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"\x00garbage")
    with pytest.raises(CifarError, match="not a CIFAR python batch"):
        read_batch(tmp_path / "junk")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    _write({b"data": Evil(), b"labels": []}, tmp_path / "evil")
    with pytest.raises(CifarError, match="refusing"):
        read_batch(tmp_path / "evil")
