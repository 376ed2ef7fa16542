"""Figure 3: the first conv layer's kernels, one block per tower, and how colour-specific each is.

conv1's weights are KRSC (filters, size, size, 3). In the two-tower form each tower has
its own tensor (conv1/0.weight, conv1/1.weight); in the one-device grouped form tower t's
filters are the t-th slice along K of conv1.weight (models.map_weights' convention); a
one-column net is one block.

Each kernel is shown contrast-normalised on its own: (w - min) / (max - min) over its
size x size x 3 values, so every kernel spans the full grey range, as in the paper.

Colour specificity of a kernel w: the fraction of its energy not in its grey component,
    c(w) = |w - g|^2 / |w|^2,   g = the per-pixel mean over R, G, B, repeated on the channels
0 for a kernel that weighs R, G and B alike (it sees only luminance), up to 1 for one that
sums to zero over the channels at every pixel (pure colour contrast). Random N(0, s)
kernels have c = 2/3 in expectation. A tower's number is the mean over its kernels; the
paper observes tower 1 "largely color-agnostic" and tower 2 "largely color-specific".
"""
from __future__ import annotations

import re

import numpy as np


def tower_kernels(net, layer: str = "conv1") -> list[np.ndarray]:
    """conv1's kernels per tower: a list of float32 (K_t, size, size, C) arrays (host copies).

    Raises ValueError when the net has no such conv layer."""
    state = net.state_dict()
    towers = sorted((int(m[1]), name) for name in state
                    if (m := re.fullmatch(re.escape(layer) + r"/(\d+)\.weight", name)))
    if towers:
        return [np.asarray(state[name], dtype=np.float32) for _, name in towers]
    if f"{layer}.weight" not in state:
        raise ValueError(f"the net has no layer {layer!r} with weights (its parameters: {sorted(state)[:6]}...)")
    w = np.asarray(state[f"{layer}.weight"], dtype=np.float32)
    layer_obj = next(l for l in net.layers if l.name == layer)
    parts = len(getattr(layer_obj, "init_parts", [0]))  # the towers the grouped form stands for
    return list(np.split(w, parts, axis=0)) if parts > 1 and w.shape[0] % parts == 0 else [w]


def colour_specificity(kernels: np.ndarray) -> np.ndarray:
    """c(w) per kernel (see the module docstring): float64 (K,) in [0, 1]; kernels (K, R, S, C>1)."""
    w = np.asarray(kernels, dtype=np.float64)
    if w.ndim != 4 or w.shape[-1] < 2:
        raise ValueError(f"colour_specificity takes (K, R, S, C >= 2) kernels, got shape {w.shape}")
    grey = w.mean(axis=-1, keepdims=True)
    total = (w ** 2).sum(axis=(1, 2, 3))
    return np.where(total > 0, ((w - grey) ** 2).sum(axis=(1, 2, 3)) / np.where(total > 0, total, 1), 0.0)


def normalise(kernel: np.ndarray) -> np.ndarray:
    """One kernel scaled to [0, 1] by its own min and max (a constant kernel becomes 0.5)."""
    lo, hi = float(kernel.min()), float(kernel.max())
    return np.full_like(kernel, 0.5) if hi <= lo else (kernel - lo) / (hi - lo)


def grid(towers: list[np.ndarray], *, cols: int = 8, pad: int = 1, gap: int = 4) -> tuple[np.ndarray, list]:
    """The picture: float32 (H, W, 3) in [0, 1] and each tower's block (top, left, height, width).

    Tower t's kernels fill a block of ceil(K_t / cols) rows x cols kernels (each kernel
    size x size, `pad` white pixels around each); the blocks are stacked top to bottom,
    `gap` white rows apart, tower 0 on top (the paper's GPU 1). Single-channel kernels are
    shown grey.
    """
    size = towers[0].shape[1]
    cell = size + pad
    blocks, boxes, top = [], [], 0
    width = cols * cell + pad
    for k in towers:
        rows = -(-len(k) // cols)
        b = np.ones((rows * cell + pad, width, 3), dtype=np.float32)
        for i, w in enumerate(k):
            r, c = divmod(i, cols)
            img = normalise(w)
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, axis=-1)
            b[pad + r * cell:pad + r * cell + size, pad + c * cell:pad + c * cell + size] = img[..., :3]
        boxes.append((top, 0, b.shape[0], width))
        blocks.append(b)
        top += b.shape[0] + gap
        blocks.append(np.ones((gap, width, 3), dtype=np.float32))
    return np.concatenate(blocks[:-1], axis=0), boxes


def plot(towers: list[np.ndarray], spec: list[float], path=None, *, title: str = "conv1 kernels", scale: int = 6):
    """The grid as a figure, each tower's block labelled with its colour specificity. -> (Figure, grid array)."""
    from .plotting import pyplot, save_figure

    plt = pyplot()
    img, boxes = grid(towers)
    img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)  # crisp pixels in the PNG
    fig, ax = plt.subplots(figsize=(img.shape[1] / 80 + 1.5, img.shape[0] / 80 + 0.8), constrained_layout=True)
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(t + h / 2) * scale for t, _, h, _ in boxes],
                  [f"tower {i + 1}\ncolour {s:.2f}" for i, s in enumerate(spec)])
    ax.set_title(title, fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig, img
