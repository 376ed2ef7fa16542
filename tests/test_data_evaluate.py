"""Top-1/top-5 error, ten-view and multi-model averaging (§2, §4.1, §6), per-class report."""

import csv

import numpy as np
import pytest

import cuda_convnet as ccn
from cuda_convnet.data.evaluate import evaluate, per_class_topk_counts, topk_error_rates
from cuda_convnet.data.store import write_store
from cuda_convnet.data.views import ten_crop_offsets


def test_topk_error_rates_by_hand():
    probs = np.array(
        [
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0],  # label 0: nothing else >= it: both right
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0],  # label 4: 5 classes >= it (0.05 ties): both wrong
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0],  # label 6: both wrong
            [0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05],  # label 1 tied with 0: top-1 wrong, top-5 right
            [0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05],  # label 2 tied with 3, 4: 4 classes >= it: top-5 right
        ]
    )
    labels = np.array([0, 4, 6, 1, 2])
    assert topk_error_rates(probs, labels) == {1: 4 / 5, 5: 2 / 5}
    assert topk_error_rates(probs, labels, ks=(2, 4)) == {2: 3 / 5, 4: 3 / 5}
    with pytest.raises(ValueError):
        topk_error_rates(probs, labels[:2])
    with pytest.raises(ValueError, match="no examples"):
        topk_error_rates(probs[:0], labels[:0])


def test_rates_are_the_backend_counts():
    """One rule: the rates and the per-class counts are the backend op's counts, ties included."""
    rng = np.random.default_rng(3)
    probs = rng.integers(0, 3, (40, 6)).astype(np.float64) / 3  # few levels: many ties
    probs[5, 2] = np.nan
    labels = rng.integers(0, 6, 40)
    counts = ccn.backend("cpu").topk_errors(probs, labels, ks=(1, 2, 5))
    assert topk_error_rates(probs, labels, ks=(1, 2, 5)) == {k: c / 40 for k, c in counts.items()}
    per_class = per_class_topk_counts(probs, labels, 6, ks=(1, 2, 5))
    assert per_class.sum(axis=0).tolist() == [counts[1], counts[2], counts[5]]
    assert per_class[labels[5]].min() >= 1  # the NaN row is an error of its class for every k


def test_uniform_and_nan_models_score_every_image_wrong():
    """A net with zero fc8 weights (uniform output) or a diverged one (NaN) is 100 % wrong."""
    labels = (np.arange(24) % 4)[::2]  # strided, as labels sliced from a table
    imgs = _class_images(labels)
    for out in (0.25, np.nan):
        res = evaluate(lambda x, out=out: np.full((len(x), 4), out), (imgs, labels), crop=24,
                       ten_crop=out == 0.25, progress=False, classes=list("abcd"))
        assert (res.top1, res.top5) == (1.0, 0.0 if out == 0.25 else 1.0)
        assert res.non_finite == (0 if out == 0.25 else 12)
        assert res.per_class["a"]["top1_error"] == 1.0


def _class_images(labels, size=32):
    """Image of class c is filled with value 10 * c: a 'model' can read its class off a pixel."""
    return np.broadcast_to(
        (10 * np.asarray(labels, np.uint8))[:, None, None, None], (len(labels), size, size, 3)
    ).copy()


def _reader_model(num_classes, noise_class=None):
    def predict(x):
        c = np.rint(x[:, 0, 0, 0] / 10).astype(int)
        if noise_class is not None:
            c = np.where(c == noise_class, (c + 1) % num_classes, c)  # always wrong on this class
        p = np.full((len(x), num_classes), 0.01 / (num_classes - 1))
        p[np.arange(len(x)), c] = 0.99
        return p

    return predict


def test_centre_and_ten_crop_on_arrays():
    labels = np.arange(20) % 4
    imgs = _class_images(labels)
    res = evaluate(
        _reader_model(4), (imgs, labels), crop=24, ten_crop=False, batch_size=6, progress=False
    )
    assert (res.top1, res.top5, res.count, res.views) == (0.0, 0.0, 20, 1)
    res = evaluate(
        _reader_model(4, noise_class=2),
        (imgs, labels),
        crop=24,
        batch_size=7,
        progress=False,
        classes=["a", "b", "c", "d"],
    )
    assert res.top1 == pytest.approx(5 / 20) and res.top5 == 0.0 and res.views == 10
    assert res.per_class["c"] == {"count": 5, "top1_error": 1.0, "top5_error": 0.0}
    assert res.per_class["a"]["top1_error"] == 0.0


def test_probabilities_are_averaged_over_views_and_models():
    # Each call returns a distribution that depends on the view (its top-left pixel
    # coordinates) and on the model; the result must be their plain mean (§4.1, §6).
    size, crop, k = 40, 32, 5
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)[None].repeat(3, 0)
    labels = np.array([0, 1, 2])
    seen = []

    def model(scale):
        def predict(v):
            key = v[:, 0, 0, 0] + 3 * v[:, 0, 0, 1] + scale  # differs per view (and flip)
            seen.append(tuple(v[0, 0, 0, :2]))
            logits = np.outer(key, np.arange(k)) / 50.0
            e = np.exp(logits - logits.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        return predict

    fns = [model(0.0), model(7.0)]
    res = evaluate(fns, (img, labels), crop=crop, keep_probs=True, progress=False)
    assert res.models == 2 and res.views == 10 and len(seen) == 20
    want = np.zeros((3, k))
    for t, left, f in ten_crop_offsets(size, crop):
        v = img[:, t : t + crop, left : left + crop]
        v = v[:, :, ::-1] if f else v
        for fn in fns:
            want += fn(v.astype(np.float32))
    np.testing.assert_allclose(res.probs, want / 20, rtol=1e-6)
    expected_corners = {
        (left + (crop - 1 if f else 0), t) for t, left, f in ten_crop_offsets(size, crop)
    }
    assert set(seen) == expected_corners


def test_store_source_per_class_csv_and_bad_predictions(tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2, 2], np.int32)
    imgs = _class_images(labels)
    write_store(tmp_path / "s", {"train": (imgs, labels), "val": (imgs, labels)}, ["x", "y", "z"])
    # the store's mean is subtracted: a reader model must add it back
    from cuda_convnet.data.store import ImageStore

    mean = ImageStore(tmp_path / "s", "val").mean

    def predict(x):
        return _reader_model(3, noise_class=1)(x + mean[4, 4, 0])

    res = evaluate(predict, tmp_path / "s", split="val", crop=24, progress=False)
    assert res.top1 == pytest.approx(2 / 7)
    res.write_per_class_csv(tmp_path / "pc.csv")
    rows = list(csv.DictReader((tmp_path / "pc.csv").read_text().splitlines()))
    assert [r["class"] for r in rows] == ["x", "y", "z"]
    assert float(rows[1]["top1_error"]) == 1.0 and int(rows[2]["count"]) == 3
    assert res.to_dict()["top1_error"] == res.top1

    with pytest.raises(ValueError, match="logits"):
        evaluate(
            lambda x: np.ones((len(x), 3)), tmp_path / "s", split="val", crop=24, progress=False
        )
    with pytest.raises(ValueError, match="shape"):
        evaluate(
            lambda x: np.ones((len(x), 4)) / 4, tmp_path / "s", split="val", crop=24, progress=False
        )
    with pytest.raises(TypeError):
        evaluate([], tmp_path / "s", split="val", progress=False)


def test_predict_fn_reusing_its_output_buffer():
    labels = np.arange(8) % 4
    imgs = _class_images(labels)
    buf = np.zeros((8, 4))
    inner = _reader_model(4, noise_class=3)

    def predict(x):  # like a net that writes its softmax into one preallocated array
        buf[: len(x)] = inner(x)
        return buf[: len(x)]

    res = evaluate(predict, (imgs, labels), crop=24, progress=False, keep_probs=True)
    ref = evaluate(inner, (imgs, labels), crop=24, progress=False, keep_probs=True)
    np.testing.assert_allclose(res.probs, ref.probs)
    assert res.top1 == ref.top1 == 0.25
