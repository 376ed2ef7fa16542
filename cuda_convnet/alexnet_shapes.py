"""AlexNet's layer shapes (paper §3.5, Figure 2) for the benchmarks and the kernel tests,
derived from the one definition of the net, `models.alexnet_config`.

227 or 224. The paper states a 224x224x3 input, but an 11x11 window at stride 4 tiles
227 pixels, not 224 ((227 - 11) / 4 + 1 = 55). The model takes the paper's 224 crops with
conv1 padded (1, 2, 1, 2) to a 227 frame (ARCHITECTURE.md §3); these tables use the
equivalent unpadded 227 input (`alexnet_config(input_size=227)`): every layer's output
size and every layer after conv1 are the same, conv1 reads no padding, and it is the
shape the cuDNN/PyTorch AlexNet benchmarks use.

    conv_layers()     the five conv layers, one-device grouped form (groups=2 where a
                      layer sees only its own tower's maps)
    tower_layers()    the same layers as one tower computes them (half the filters)
    fc_layers()       (name, inputs, outputs) of fc6, fc7, fc8
    param_shapes()    the 16 parameter tensors (KRSC conv filters, (out, in) FC weights,
                      biases) of the grouped form: 60,965,224 numbers
"""
from __future__ import annotations

from typing import NamedTuple

from .models import alexnet_config
from .shapes import conv_output_size, pool_output_size

#: The input side of the tables below (see the module docstring).
INPUT_SIZE = 227


class ConvLayer(NamedTuple):
    """One conv layer: NHWC input hw x hw x c, k filters of r x r, then LRN and/or pooling."""

    name: str
    hw: int
    c: int
    k: int
    r: int
    stride: int
    pad: int
    groups: int
    lrn: bool
    pool: bool


def conv_layers(classes: int = 1000) -> list[ConvLayer]:
    """The five conv layers in the grouped one-device form, on 227x227x3 inputs."""
    cfg = alexnet_config(classes, input_size=INPUT_SIZE)
    hw, c = cfg.input_shape[0], cfg.input_shape[2]
    layers = []
    for i, b in enumerate(cfg.convs):
        pad = b.padding if isinstance(b.padding, int) else None
        if pad is None:
            raise ValueError(f"conv{i + 1}: asymmetric padding {b.padding} has no single pad value")
        groups = 1 if b.both_towers else cfg.towers
        layers.append(ConvLayer(f"conv{i + 1}", hw, c, b.filters, b.size, b.stride, pad, groups, b.lrn, b.pool))
        hw = conv_output_size(hw, hw, b.size, b.size, b.stride, pad)[0]
        if b.pool:
            hw = pool_output_size(hw, hw, cfg.pool_size, cfg.pool_stride, 0)[0]
        c = b.filters
    return layers


def tower_layers() -> list[ConvLayer]:
    """The conv layers as one of the two towers computes them: half the filters; a layer
    that reads both towers (conv1, conv3) sees every input channel, the others half."""
    cols = alexnet_config(input_size=INPUT_SIZE).towers
    return [L._replace(name=L.name + "/t", c=L.c if L.groups == 1 else L.c // cols, k=L.k // cols, groups=1)
            for L in conv_layers()]


def fc_layers(classes: int = 1000) -> list[tuple[str, int, int]]:
    """(name, inputs, outputs) of fc6, fc7, fc8: fc6 reads conv5's pooled 6x6x256 maps."""
    cfg = alexnet_config(classes, input_size=INPUT_SIZE)
    last = conv_layers(classes)[-1]
    hw = conv_output_size(last.hw, last.hw, last.r, last.r, last.stride, last.pad)[0]
    hw = pool_output_size(hw, hw, cfg.pool_size, cfg.pool_stride, 0)[0]
    sizes = [hw * hw * last.k, *cfg.hidden, cfg.classes]
    return [(f"fc{6 + i}", sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def param_shapes(classes: int = 1000) -> list[tuple[int, ...]]:
    """Every parameter tensor of the grouped form, in layer order: weight, then bias."""
    shapes = []
    for L in conv_layers(classes):
        shapes += [(L.k, L.r, L.r, L.c // L.groups), (L.k,)]
    for _, fan_in, fan_out in fc_layers(classes):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes
