"""`figure filters`, `figure top5`, `figure neighbours` and Net.features, on a tiny checkpoint
trained on the bundled digits (tests/experiment_support.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from experiment_support import train_tiny_checkpoint
from PIL import Image
from subproc import run_cli

from cuda_convnet import models
from cuda_convnet.cli import main
from cuda_convnet.data.store import write_store
from cuda_convnet.experiments import filters, neighbours, top5
from cuda_convnet.experiments.data import Standardise, digits_uint8, load_dataset
from cuda_convnet.net import load_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint.npz")


def test_features_returns_any_layers_activations():
    net = models.digits_net(towers=2, width=1, weight_std="he", bias=0.1, seed=4)
    x = np.random.default_rng(1).standard_normal((3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(net.features(x), net.forward(x))  # default: the logits
    np.testing.assert_array_equal(net.features(x, "data"), x)
    conv = net.features(x, "conv1/1")
    assert conv.shape == (3,) + net.shapes["conv1/1"] == (3, 16, 16, 8)
    relu = net.features(x, "relu1/1")
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))
    hidden = net.features(x, "merge_out")
    # The last hidden layer feeds fc8: its logits are hidden @ W^T + b.
    w, b = net.state_dict()["fc8.weight"], net.state_dict()["fc8.bias"]
    np.testing.assert_allclose(hidden @ w.T + b, net.forward(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        net.features(x, "conv9")
    with pytest.raises(ValueError, match="loss layer"):
        net.features(x, "loss")


def test_filters_grid_has_one_block_per_tower(ckpt, tmp_path):
    out = tmp_path / "filters"
    assert main(["figure", "filters", ckpt, "--out", str(out)]) == 0
    rec = json.loads((out / "filters.json").read_text())
    assert rec["towers"] == 2 and rec["kernels"] == [8, 8] and rec["kernel_shape"] == [5, 5, 3]
    # 8 kernels of 5x5 in rows of 8, 1-pixel padding: each block 7 x 49; a 4-row gap between.
    assert rec["blocks"] == [[0, 0, 7, 49], [11, 0, 7, 49]] and rec["grid_shape"] == [18, 49, 3]
    ck = load_checkpoint(ckpt)
    towers = filters.tower_kernels(ck.net)
    grid, _ = filters.grid(towers)
    for t, (top, _, _, _) in enumerate(rec["blocks"]):
        for i, w in enumerate(towers[t]):  # every cell holds its kernel, contrast-normalised
            r, c = divmod(i, 8)
            cell = grid[top + 1 + r * 6: top + 6 + r * 6, 1 + c * 6: 6 + c * 6]
            np.testing.assert_allclose(cell, (w - w.min()) / (w.max() - w.min()), rtol=1e-5, atol=1e-6)
            assert cell.min() == 0 and cell.max() == pytest.approx(1)
    assert np.all(grid[7:11] == 1)  # the white gap between the towers
    spec = [float(filters.colour_specificity(k).mean()) for k in towers]
    assert rec["colour_specificity"] == pytest.approx(spec)
    assert (out / "filters.png").stat().st_size > 2000


def test_colour_specificity_values():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.standard_normal((4, 5, 5, 1)), 3, axis=-1)
    np.testing.assert_allclose(filters.colour_specificity(grey), 0, atol=1e-12)
    colour = rng.standard_normal((4, 5, 5, 3))
    colour -= colour.mean(axis=-1, keepdims=True)  # zero sum over R, G, B at every pixel
    np.testing.assert_allclose(filters.colour_specificity(colour), 1)
    mixed = grey + colour
    expect = (colour ** 2).sum(axis=(1, 2, 3)) / (mixed ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(filters.colour_specificity(mixed), expect)
    assert abs(filters.colour_specificity(rng.standard_normal((4000, 5, 5, 3))).mean() - 2 / 3) < 0.01


def test_filters_grouped_form_splits_the_towers():
    two = models.digits_net(towers=2, width=1, weight_std="he", bias=0.1, seed=2)
    one = models.digits_net(towers=1, width=1, weight_std="he", bias=0.1, seed=2)
    for a, b in zip(filters.tower_kernels(two), filters.tower_kernels(one), strict=True):
        np.testing.assert_array_equal(a, b)


def test_filters_plot_is_labelled(ckpt):
    towers = filters.tower_kernels(load_checkpoint(ckpt).net)
    fig, img = filters.plot(towers, [0.1, 0.9], title="conv1 kernels")
    ax = fig.axes[0]
    assert ax.get_title() == "conv1 kernels"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tower 1\ncolour 0.10", "tower 2\ncolour 0.90"]
    assert img.shape == (18 * 6, 49 * 6, 3)


def test_top5_bars_sorted_and_summing_to_at_most_one(ckpt, tmp_path):
    _, _, xv, yv, classes = digits_uint8(0)
    png = tmp_path / "img" / "7" / "a.png"  # a class folder names the label
    png.parent.mkdir(parents=True)
    Image.fromarray(xv[5]).save(png)
    out = tmp_path / "top5"
    assert main(["figure", "top5", ckpt, "digits:0", "digits:3", str(png), "--out", str(out)]) == 0
    rec = json.loads((out / "top5.json").read_text())
    assert [r["label"] for r in rec["images"]] == [classes[yv[0]], classes[yv[3]], "7"]
    ck = load_checkpoint(ckpt)
    probs = ck.net.predict(Standardise(ck.extra["input"]["mean"], ck.extra["input"]["std"])(xv[[0, 3, 5]]))
    for r, p in zip(rec["images"], probs):
        bars = [e["probability"] for e in r["top5"]]
        assert len(bars) == 5 and bars == sorted(bars, reverse=True) and sum(bars) <= 1 + 1e-6
        np.testing.assert_allclose(bars, np.sort(p)[::-1][:5], rtol=1e-5)
        assert r["top5"][0]["class"] == classes[int(np.argmax(p))]
    assert rec["known"] == 3
    idx, p = top5.top_k(probs, 5)
    fig, _ = top5.plot(xv[[0, 3, 5]], probs, classes, [int(yv[0]), int(yv[3]), 7])
    assert fig._suptitle.get_text() == "The five most probable labels"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["correct label", "other"]
    bars = fig.axes[3].patches  # the first image's bars, in rank order
    assert [b.get_width() for b in bars] == pytest.approx(list(p[0]))
    red = [b.get_facecolor()[:3] for b in bars if b.get_facecolor()[0] > 0.8 and b.get_facecolor()[2] < 0.3]
    assert len(red) == int(yv[0] in idx[0])
    assert fig.axes[3].get_xlabel() == "probability"


def test_neighbour_of_a_training_image_is_itself(ckpt, tmp_path):
    out = tmp_path / "nb"
    assert main(["figure", "neighbours", ckpt, "digits", "--query-split", "train", "--queries", "4",
                 "--chunk", "100", "--out", str(out)]) == 0
    rec = json.loads((out / "neighbours.json").read_text())
    assert rec["layer"] == "merge_out" and rec["k"] == 6 and rec["database"] == 1438
    d = np.array(rec["distances"])
    # Itself, at distance 0 up to float32 rounding: its features were computed in a batch of
    # another size (the queries' rather than the chunk's), which changes the last bit.
    assert d.shape == (4, 6) and np.all(d[:, 0] < 1e-5 * d[:, 1]) and np.all(np.diff(d, axis=1) >= 0)
    assert [n[0] for n in rec["neighbours"]] == rec["query_indices"]


def test_nearest_streams_chunks_like_a_brute_force_search(ckpt, tmp_path):
    ck = load_checkpoint(ckpt)
    ds = load_dataset(None)
    transform = Standardise(ck.extra["input"]["mean"], ck.extra["input"]["std"])
    db, q = ds.train_images[:300], ds.val_images[:7]
    layer = neighbours.last_hidden_layer(ck.net)
    fq = neighbours.features(ck.net, transform, q, layer).astype(np.float64)
    fd = neighbours.features(ck.net, transform, db, layer).astype(np.float64)
    full = np.sqrt(((fq[:, None] - fd[None]) ** 2).sum(-1))
    want = np.argsort(full, axis=1, kind="stable")[:, :6]
    for chunk in (1, 37, 1000):
        idx, dist = neighbours.nearest(ck.net, transform, q, db, k=6, chunk=chunk)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_allclose(dist, np.take_along_axis(full, want, axis=1), rtol=1e-5)


def test_neighbours_over_a_store(ckpt, tmp_path):
    xt, yt, xv, yv, classes = digits_uint8(0)
    store = write_store(tmp_path / "store", {"train": (xt[:200], yt[:200]), "val": (xv[:20], yv[:20])}, classes)
    out = tmp_path / "nb"
    assert main(["figure", "neighbours", ckpt, str(store), "--queries", "3", "--chunk", "64", "--out", str(out)]) == 0
    rec = json.loads((out / "neighbours.json").read_text())
    assert rec["query_split"] == "val" and rec["database"] == 200 and len(rec["neighbours"]) == 3
    fig = neighbours.plot(xv[:2], xt[:200], np.array(rec["neighbours"])[:2], np.array(rec["distances"])[:2])
    assert fig._suptitle.get_text().startswith("Nearest training images")
    assert fig.axes[0].get_title() == "query" and "6 nearest training images" in fig.axes[-4].get_xlabel()


def test_figure_user_errors_are_one_line(ckpt, tmp_path):
    for args, msg in ((("figure", "filters", tmp_path / "none.npz"), "no such checkpoint"),
                      (("figure", "top5", ckpt, "digits:99999"), "not digits:N"),
                      (("figure", "top5", ckpt, "digits:1", "--labels", "cat"), "not one of the checkpoint's"),
                      (("figure", "neighbours", ckpt, tmp_path), "manifest")):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
