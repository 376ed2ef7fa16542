"""The paper's network exactly (§3.5, Figure 2): layer sizes, parameter count, both forms."""
from __future__ import annotations

import numpy as np
import pytest
from net_support import one_blas_thread  # noqa: F401

from cuda_convnet import models
from cuda_convnet.alexnet_shapes import conv_layers, param_shapes, tower_layers
from cuda_convnet.net import Copy

pytestmark = pytest.mark.usefixtures("one_blas_thread")

# Parameters (weights + biases) per layer of the whole net (both towers together).
PARAMS = {"conv1": 96 * 11 * 11 * 3 + 96, "conv2": 256 * 5 * 5 * 48 + 256, "conv3": 384 * 3 * 3 * 256 + 384,
          "conv4": 384 * 3 * 3 * 192 + 384, "conv5": 256 * 3 * 3 * 192 + 256, "fc6": 4096 * 9216 + 4096,
          "fc7": 4096 * 4096 + 4096, "fc8": 1000 * 4096 + 1000}
TOTAL = 60_965_224

# True output sizes (per example) of the layers; the paper prints 253,440 for conv1.
OUTPUTS = {"conv1": (55, 55, 96), "pool1": (27, 27, 96), "conv2": (27, 27, 256), "pool2": (13, 13, 256),
           "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256), "pool5": (6, 6, 256),
           "flatten": (9216,), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}
PAPER_NEURONS = [253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]


@pytest.fixture(scope="module")
def two_tower():
    return models.alexnet(towers=2, devices=("cpu", "cpu"))


@pytest.fixture(scope="module")
def one_tower():
    return models.alexnet(towers=1, devices=("cpu",))


def test_parameter_count_is_the_papers_60_million(two_tower, one_tower):
    assert sum(PARAMS.values()) == TOTAL
    assert two_tower.num_parameters() == TOTAL
    assert one_tower.num_parameters() == TOTAL
    assert f"total parameters: {TOTAL:,}" in two_tower.summary()
    assert f"total parameters: {TOTAL:,}" in one_tower.summary()


def test_benchmark_shape_tables_are_the_models(one_tower):
    """alexnet_shapes (227 unpadded, what the benches and kernel tests use) describes the
    model's net (224 crops, conv1 padded): the same tensors, fc6's 9216 inputs included."""
    assert [tuple(p.data.shape) for p in one_tower.parameters()] == param_shapes()
    assert [L.name for L in conv_layers()] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert [(L.c, L.k, L.groups) for L in tower_layers()] == [(3, 48, 1), (48, 128, 1), (256, 192, 1),
                                                               (192, 192, 1), (192, 128, 1)]


def test_parameters_per_layer(two_tower, one_tower):
    for layer, n in PARAMS.items():
        assert sum(p.size for p in one_tower.parameters() if p.layer == layer) == n, layer
        assert sum(p.size for p in two_tower.parameters() if p.layer.split("/")[0] == layer) == n, layer


def test_output_sizes(two_tower, one_tower):
    for layer, shape in OUTPUTS.items():
        assert one_tower.shapes[layer] == shape, layer
        if len(shape) == 3:  # each tower holds half of the maps
            half = shape[:2] + (shape[2] // 2,)
            assert two_tower.shapes[f"{layer}/0"] == two_tower.shapes[f"{layer}/1"] == half, layer
    assert two_tower.shapes["fc6/0"] == (2048,) and two_tower.shapes["fc8"] == (1000,)
    assert one_tower.input_shape == (224, 224, 3)


def test_true_neuron_counts_differ_from_the_paper_only_at_conv1(one_tower):
    true = [int(np.prod(one_tower.shapes[n])) for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                                           "fc8")]
    assert true == [290_400, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert [t == p for t, p in zip(true, PAPER_NEURONS)] == [False] + [True] * 7
    assert int(np.prod(one_tower.input_shape)) == 150_528


def test_227_variant_needs_no_padding():
    cfg = models.alexnet_config(input_size=227)
    assert cfg.convs[0].padding == 0
    with pytest.raises(ValueError, match="224"):
        models.alexnet_config(input_size=200)


def test_recipe_initialisation(one_tower):
    """§5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7; 0 elsewhere."""
    state = one_tower.state_dict()
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for layer in PARAMS:
        b = state[f"{layer}.bias"]
        assert np.all(b == (1.0 if layer in ones else 0.0)), layer
        w = state[f"{layer}.weight"]
        assert w.dtype == np.float32
        assert abs(float(w.std()) - 0.01) < 0.001 and abs(float(w.mean())) < 0.001, layer


def test_towers_meet_only_at_conv3_and_the_fc_layers(two_tower):
    """§3.2/§3.5: every cross-device copy feeds conv3's or an fc layer's input (or the data)."""
    copies = [l for l in two_tower._exec if isinstance(l, Copy)]
    consumers = set()
    for layer in two_tower.layers:
        for inp in two_tower._actual_inputs[layer.name]:
            if "->" in inp:
                consumers.add(layer.name)
    assert {c.split("/")[0] for c in consumers} == {"conv1", "merge3", "merge_fc", "merge7", "merge_out"}
    assert len(copies) == 8  # data->1, pool2 both ways, pool5 both ways, drop6 both ways, drop7 to device 0
    assert "cpu#0 -> cpu#1" in two_tower.summary()


def test_same_seed_same_function_in_both_forms(two_tower, one_tower):
    """Each tower's slice of a layer is drawn from (seed, layer, tower): the forms agree
    from the start, and map_weights says so."""
    mapped = models.map_weights(two_tower.state_dict(), one_tower)
    for name, a in one_tower.state_dict().items():
        np.testing.assert_array_equal(mapped[name], a, err_msg=name)


def test_forward_batch_1_two_towers_equal_one(two_tower, one_tower):
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    y2 = two_tower.forward(x)
    y1 = one_tower.forward(x)
    assert y1.shape == (1, 1000)
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-6)
    p = one_tower.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)



# README's ```python blocks that build AlexNet, each with what its run must show.
README_BLOCKS = {
    "models.alexnet(towers=2, devices=devices)": (
        "\nassert set(stats) == {'loss', 'top1_err', 'top5_err'} and all(type(v) is float for v in stats.values())"
        "\nassert probs.shape == (2, 1000) and abs(float(probs.sum()) - 2) < 1e-4"
        "\nassert ck.net.step == 1 and ck.net.num_parameters() == 60_965_224"
        "\nassert (__import__('os').path.isfile('ckpt.npz'))"),
    'precision="tf32")': (
        "\nassert net.precision == 'bf16' and y.shape == (2, 27, 27, 256) and y.dtype == np.float32"
        "\nassert np.isfinite(y).all() and not np.array_equal(y, ccn.backend('cpu').conv2d(x, w, b, padding=2))"),
}


@pytest.mark.slow
@pytest.mark.parametrize("marker", list(README_BLOCKS))
def test_readme_alexnet_snippets_run_as_written(tmp_path, marker):
    """README "The network" and "Precision": each block copied as is, run in a fresh process
    (on the CPU here), then checked."""
    import pathlib
    import re
    import subprocess
    import sys

    from subproc import env

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if marker in b]
    assert len(blocks) == 1, marker
    code = blocks[0] + README_BLOCKS[marker] + "\nprint('snippet ok')\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(OMP_NUM_THREADS="1"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "snippet ok" in r.stdout
