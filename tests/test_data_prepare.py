"""prepare(): a real tree of JPEG/PNG files -> store; statistics; skip report; resume."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cuda_convnet.data import images as images_mod
from cuda_convnet.data import prepare as prepare_mod
from cuda_convnet.data.prepare import PrepareError, prepare
from cuda_convnet.data.store import ImageStore, StoreError

RNG = np.random.default_rng(1234)


def _photo(w, h, seed):
    """A smooth colour field plus noise: compresses like a photo, distinct per image."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c = r.uniform(0, 1, (3, 3))
    a = np.stack([c[k, 0] * 255 * x / w + c[k, 1] * 255 * y / h for k in range(3)], -1) * 0.5
    a += r.integers(0, 60, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def _coords_456x256():
    """Pixel values encode coordinates: R = x % 256, G = y, B = x // 256."""
    y, x = np.mgrid[0:256, 0:456]
    return np.stack([x % 256, y, x // 256], axis=-1).astype(np.uint8)


def make_tree(root: Path, *, flat_val: bool = True) -> dict:
    """The test tree.  Returns {"bad": [...relative paths that must be skipped]}."""
    t = root / "train"
    for c in ("apple", "banana", "cherry"):
        (t / c).mkdir(parents=True)
    Image.fromarray(_photo(400, 300, 1)).save(t / "apple/wide.JPEG", quality=92)
    Image.fromarray(_photo(300, 500, 2)).save(t / "apple/tall.jpg", quality=92)
    Image.fromarray(_photo(320, 240, 3)[..., 0], mode="L").save(t / "apple/gray.JPEG")
    Image.fromarray(_photo(300, 300, 4)).convert("CMYK").save(t / "apple/cmyk.JPEG")
    Image.fromarray(_photo(100, 80, 5)).save(t / "apple/small.png")
    rgba = np.dstack([_photo(260, 300, 6), np.full((300, 260), 255, np.uint8)])
    rgba[:, :40, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(t / "banana/rgba.png")
    Image.fromarray(_photo(300, 270, 7)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        t / "banana/palette.png"
    )
    Image.fromarray(_photo(280, 350, 8)).save(t / "banana/png_inside.JPEG", format="PNG")
    Image.fromarray(_photo(500, 375, 9)).save(t / "banana/truncated.JPEG", quality=90)
    data = (t / "banana/truncated.JPEG").read_bytes()
    (t / "banana/truncated.JPEG").write_bytes(data[: len(data) // 3])
    (t / "banana/empty.JPEG").write_bytes(b"")
    (t / "banana/README.txt").write_text("not an image; ignored")
    for i in range(3):
        Image.fromarray(_photo(330 + 20 * i, 260, 10 + i)).save(t / f"cherry/c{i}.JPEG", quality=90)
    Image.fromarray(_coords_456x256()).save(t / "cherry/coords.png")
    v = root / "val"
    if flat_val:
        v.mkdir()
        Image.fromarray(_photo(300, 260, 20)).save(v / "v1.JPEG")
        Image.fromarray(_photo(260, 300, 21)).save(v / "v2.png")
        Image.fromarray(_photo(256, 256, 22)).save(v / "v3.JPEG")
        (root / "val_labels.txt").write_text(
            "v1.JPEG cherry\nv2.png apple\n\n# comment\nv3.JPEG banana\n"
        )
    else:
        for c, k in (("apple", 30), ("cherry", 31)):
            (v / c).mkdir(parents=True)
            Image.fromarray(_photo(300, 260, k)).save(v / c / "x.JPEG")
    return {"bad": ["train/banana/empty.JPEG", "train/banana/truncated.JPEG"]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    info = make_tree(root / "src")
    report = prepare(root / "src", root / "out", workers=2, progress=False, chunk_size=3)
    return root, info, report


def test_store_contents(prepared):
    root, info, report = prepared
    tr = ImageStore(root / "out", "train")
    va = ImageStore(root / "out", "val")
    assert tr.classes == ["apple", "banana", "cherry"] == va.classes
    assert len(tr) == 12 and tr.images.shape == (12, 256, 256, 3) and tr.images.dtype == np.uint8
    assert isinstance(tr.images, np.memmap)
    assert tr.labels.dtype == np.int32
    by_file = dict(zip(tr.files, tr.labels.tolist()))
    assert by_file["train/apple/cmyk.JPEG"] == 0 and by_file["train/banana/png_inside.JPEG"] == 1
    assert by_file["train/cherry/c2.JPEG"] == 2
    assert not set(info["bad"]) & set(tr.files)
    assert dict(zip(va.files, va.labels.tolist())) == {
        "val/v1.JPEG": 2,
        "val/v2.png": 0,
        "val/v3.JPEG": 1,
    }
    # §2 geometry: shorter side already 256, so the store holds exactly columns 100..355
    i = tr.files.index("train/cherry/coords.png")
    np.testing.assert_array_equal(tr.images[i], _coords_456x256()[:, 100:356])
    # the same pixels as decoding the file directly
    i = tr.files.index("train/apple/gray.JPEG")
    np.testing.assert_array_equal(
        tr.images[i], images_mod.load_fixed_size(root / "src/train/apple/gray.JPEG")
    )
    assert np.all(tr.images[i][..., 0] == tr.images[i][..., 2])
    # a plain .npy: numpy alone can open it
    raw = np.load(root / "out/train/images.npy", mmap_mode="r")
    np.testing.assert_array_equal(raw[3], tr.images[3])


def test_skip_report(prepared):
    root, info, report = prepared
    assert report["skipped_count"] == 2
    assert sorted(s["file"] for s in report["skipped"]["train"]) == sorted(info["bad"])
    reasons = {s["file"]: s["reason"] for s in report["skipped"]["train"]}
    assert "empty" in reasons["train/banana/empty.JPEG"]
    assert report["splits"]["train"] == {"found": 14, "written": 12, "skipped": 2}
    assert report["ignored_files"] == ["train/banana/README.txt"]
    on_disk = json.loads((root / "out/report.json").read_text())
    assert on_disk["skipped"] == report["skipped"]
    assert not (root / "out/.progress").exists()


def test_mean_and_pca_match_direct_computation(prepared):
    root, _, _ = prepared
    tr = ImageStore(root / "out", "train")
    x = np.asarray(tr.images, dtype=np.float64)
    np.testing.assert_allclose(tr.mean, x.mean(axis=0), rtol=0, atol=1e-4)  # float32 rounding
    assert tr.mean.dtype == np.float32
    pixels = x.reshape(-1, 3)
    cov = np.cov(pixels.T, bias=True)
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    np.testing.assert_allclose(tr.eigvals, vals, rtol=1e-9)
    for k in range(3):  # eigenvectors agree up to sign
        assert abs(float(tr.eigvecs[:, k] @ vecs[:, k])) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(tr.eigvecs.T @ tr.eigvecs, np.eye(3), atol=1e-12)
    assert np.all(np.diff(tr.eigvals) <= 0)


def test_rerun_on_complete_store_does_nothing(prepared, monkeypatch):
    root, _, _ = prepared
    monkeypatch.setattr(images_mod, "load_fixed_size", _fail_if_called)
    again = prepare(root / "src", root / "out", workers=0, progress=False, chunk_size=3)
    assert again["already_complete"] is True


def _fail_if_called(*a, **k):
    raise AssertionError("decoded an image that was already done")


def _tree_bytes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "report.json"
    }


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "event,after,workers", [("recorded", 2, 0), ("appended", 4, 0), ("recorded", 3, 2)]
)
def test_interrupted_prepare_resumes_byte_identical(tmp_path, monkeypatch, event, after, workers):
    # workers=0 decodes in this process, so the decode counter sees every call; with
    # worker processes only the bytes are compared.
    make_tree(tmp_path / "src", flat_val=False)
    ref = prepare(tmp_path / "src", tmp_path / "ref", workers=0, progress=False, chunk_size=2)

    # Count decodes per file across the interrupted run and the resumed one (in-process).
    calls: dict = {}
    real = images_mod.load_fixed_size

    def counting(path, size=256):
        calls[str(path)] = calls.get(str(path), 0) + 1
        return real(path, size)

    def hook(ev, split, chunk):
        if ev == event and chunk == after:
            raise _Interrupt(f"simulated crash at {ev} {split} chunk {chunk}")

    monkeypatch.setattr(images_mod, "load_fixed_size", counting)
    monkeypatch.setattr(prepare_mod, "_hook", hook)
    with pytest.raises(_Interrupt):
        prepare(tmp_path / "src", tmp_path / "out", workers=workers, progress=False, chunk_size=2)
    assert not (tmp_path / "out/manifest.json").exists()
    with pytest.raises(StoreError, match="incomplete"):
        ImageStore(tmp_path / "out", "train")
    if event == "appended":  # the crash left an unrecorded chunk at the end of the file
        partial = tmp_path / "out/train/images.npy.partial"
        with open(partial, "ab") as f:
            f.write(b"\xff" * (256 * 256 * 3 * 8))  # and garbage past everything still to come

    monkeypatch.setattr(prepare_mod, "_hook", None)
    report = prepare(
        tmp_path / "src", tmp_path / "out", workers=workers, progress=False, chunk_size=2
    )
    done_chunks = after + 1 if event == "recorded" else after
    assert report["resumed_from_chunk"]["train"] == done_chunks
    # Files of recorded chunks were decoded once; only the one unrecorded chunk twice.
    twice = sorted(p for p, n in calls.items() if n > 1)
    if workers:
        pass
    elif event == "recorded":
        assert twice == []
    else:
        assert len(twice) <= 2  # the chunk that was appended but not recorded
    assert _tree_bytes(tmp_path / "out") == _tree_bytes(tmp_path / "ref")
    assert report["skipped"] == ref["skipped"]


def test_resume_refuses_a_changed_tree(tmp_path, monkeypatch):
    make_tree(tmp_path / "src")

    def hook(ev, split, chunk):
        if ev == "recorded" and chunk == 1:
            raise _Interrupt()

    monkeypatch.setattr(prepare_mod, "_hook", hook)
    with pytest.raises(_Interrupt):
        prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False, chunk_size=2)
    monkeypatch.setattr(prepare_mod, "_hook", None)
    Image.fromarray(_photo(300, 300, 99)).save(tmp_path / "src/train/apple/new.JPEG")
    with pytest.raises(PrepareError, match="different source tree"):
        prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False, chunk_size=2)


def test_clear_errors(tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no train/"):
        prepare(tmp_path / "empty", tmp_path / "out", progress=False)
    (tmp_path / "empty/train/a").mkdir(parents=True)
    with pytest.raises(PrepareError, match="no image files"):
        prepare(tmp_path / "empty", tmp_path / "out", progress=False)
    src = tmp_path / "src"
    make_tree(src)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PrepareError, match="is a file"):
        prepare(src, tmp_path / "afile", progress=False)
    (src / "val_labels.txt").write_text("v1.JPEG cherry\nv2.png apple\n")  # v3 unlabeled
    with pytest.raises(PrepareError, match="no label for 1"):
        prepare(src, tmp_path / "out", progress=False)
    (src / "val_labels.txt").write_text("v1.JPEG cherry\nv2.png apple\nv3.JPEG durian\n")
    with pytest.raises(PrepareError, match="durian"):
        prepare(src, tmp_path / "out", progress=False)
    (src / "val_labels.txt").unlink()
    with pytest.raises(PrepareError, match="no label file"):
        prepare(src, tmp_path / "out", progress=False)


def test_all_training_files_corrupt(tmp_path):
    (tmp_path / "src/train/a").mkdir(parents=True)
    (tmp_path / "src/train/a/x.JPEG").write_bytes(b"garbage")
    with pytest.raises(PrepareError, match="could be decoded"):
        prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False)


def test_cli(tmp_path, capsys):
    """`python -m cuda_convnet prepare` (the main() the console script runs)."""
    from cuda_convnet.cli import main

    make_tree(tmp_path / "src")
    assert main(["prepare", str(tmp_path / "src"), str(tmp_path / "out"), "--workers", "0", "--no-progress",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_count"] == 2
    assert main(["prepare", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- names, classes without images, destination, what differs on a rerun ------------------------
def test_names_that_are_not_utf8(tmp_path):
    """A Latin-1 name (bytes b'Stra\\xdfe.png') in train/, in a flat val/ and its label
    file: prepared, listed in files.txt as its own bytes, reported, read back."""
    make_tree(tmp_path / "src")
    strasse = os.fsdecode(b"Stra\xdfe.png")
    Image.fromarray(_photo(200, 150, 40)).save(tmp_path / "src/train/apple" / strasse)
    (tmp_path / "src/train/cherry" / os.fsdecode(b"caf\xe9.JPEG")).write_bytes(b"not an image")
    Image.fromarray(_photo(150, 200, 41)).save(tmp_path / "src/val" / os.fsdecode(b"v\xe4.png"))
    with open(tmp_path / "src/val_labels.txt", "ab") as f:
        f.write(b"v\xe4.png banana\n")
    report = prepare(tmp_path / "src", tmp_path / "out", workers=2, progress=False, chunk_size=3)
    assert report["splits"]["train"] == {"found": 16, "written": 13, "skipped": 3}
    assert b"train/apple/Stra\xdfe.png" in (tmp_path / "out/train/files.txt").read_bytes().split(b"\n")
    tr, va = ImageStore(tmp_path / "out", "train"), ImageStore(tmp_path / "out", "val")
    i = tr.files.index(f"train/apple/{strasse}")
    np.testing.assert_array_equal(tr.images[i], images_mod.load_fixed_size(tmp_path / "src/train/apple" / strasse))
    assert va.classes[va.labels[va.files.index(os.fsdecode(b"val/v\xe4.png"))]] == "banana"
    on_disk = json.loads((tmp_path / "out/report.json").read_text())
    assert b"train/cherry/caf\xe9.JPEG" in [os.fsencode(s["file"]) for s in on_disk["skipped"]["train"]]


def test_empty_class_folder_is_refused_or_kept(tmp_path):
    make_tree(tmp_path / "src", flat_val=False)
    (tmp_path / "src/train/durian").mkdir()
    (tmp_path / "src/train/durian/notes.txt").write_text("no images here")
    with pytest.raises(PrepareError, match=r"1 class folder\(s\) with no image files: 'durian'"):
        prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False)
    assert not (tmp_path / "out").exists()  # refused before any work
    report = prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False, allow_empty_classes=True)
    assert report["classes_without_images"] == ["durian"]
    tr = ImageStore(tmp_path / "out", "train")
    assert tr.classes == ["apple", "banana", "cherry", "durian"] and 3 not in set(tr.labels.tolist())


def test_class_of_unreadable_files_is_refused_or_kept(tmp_path, monkeypatch):
    make_tree(tmp_path / "src", flat_val=False)
    (tmp_path / "src/train/durian").mkdir()
    for k in range(3):
        (tmp_path / f"src/train/durian/d{k}.JPEG").write_bytes(b"\xff\xd8 broken " * k)
    with pytest.raises(PrepareError, match=r"1 training class\(es\) have no readable image.*'durian'"):
        prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False, chunk_size=4)
    assert not (tmp_path / "out/manifest.json").exists()
    # Allowed on a rerun: the decoded chunks are kept, nothing is decoded again.
    monkeypatch.setattr(images_mod, "load_fixed_size", _fail_if_called)
    report = prepare(
        tmp_path / "src", tmp_path / "out", workers=0, progress=False, chunk_size=4, allow_empty_classes=True
    )
    assert report["classes_without_images"] == ["durian"] and report["splits"]["train"]["skipped"] == 5


@pytest.mark.parametrize("inside", [".", "train", "train/apple/store"])
def test_destination_inside_the_source_is_refused(tmp_path, inside):
    make_tree(tmp_path / "src")
    before = sorted(str(p) for p in (tmp_path / "src").rglob("*"))
    with pytest.raises(PrepareError, match="inside the source tree|is the source tree"):
        prepare(tmp_path / "src", tmp_path / "src" / inside, workers=0, progress=False)
    assert sorted(str(p) for p in (tmp_path / "src").rglob("*")) == before  # nothing written


def test_rerun_names_the_option_that_differs(tmp_path, monkeypatch):
    make_tree(tmp_path / "src")
    prepare(tmp_path / "src", tmp_path / "done", workers=0, progress=False, size=64, chunk_size=3)
    with pytest.raises(PrepareError, match=r"size \(--size\) is 64 there, 72 now"):
        prepare(tmp_path / "src", tmp_path / "done", workers=0, progress=False, size=72, chunk_size=3)

    def hook(ev, split, chunk):
        if ev == "recorded" and chunk == 1:
            raise _Interrupt()

    monkeypatch.setattr(prepare_mod, "_hook", hook)
    with pytest.raises(_Interrupt):
        prepare(tmp_path / "src", tmp_path / "part", workers=0, progress=False, size=64, chunk_size=2)
    monkeypatch.setattr(prepare_mod, "_hook", None)
    with pytest.raises(PrepareError, match=r"chunk_size \(--chunk-size\) is 2 there, 3 now"):
        prepare(tmp_path / "src", tmp_path / "part", workers=0, progress=False, size=64, chunk_size=3)
    Image.fromarray(_photo(300, 300, 99)).save(tmp_path / "src/train/apple/new.JPEG")
    with pytest.raises(PrepareError, match=r"file counts are \{'train': 15, 'val': 3\}, there \{'train': 14"):
        prepare(tmp_path / "src", tmp_path / "part", workers=0, progress=False, size=64, chunk_size=2)


def test_a_label_file_that_would_not_be_read_is_refused(tmp_path):
    make_tree(tmp_path / "src", flat_val=False)
    (tmp_path / "labels.txt").write_text("x.JPEG apple\n")
    with pytest.raises(PrepareError, match="only for a flat .* has class folders"):
        prepare(tmp_path / "src", tmp_path / "out", val_labels=tmp_path / "labels.txt", progress=False)
    shutil.rmtree(tmp_path / "src/val")
    with pytest.raises(PrepareError, match="only for a flat .* does not exist"):
        prepare(tmp_path / "src", tmp_path / "out", val_labels=tmp_path / "labels.txt", progress=False)
    assert not (tmp_path / "out").exists()
