"""Figure 4 (right): query images and the training images nearest to them in the last hidden layer.

"the six training images that produce feature vectors in the last hidden layer with the
smallest Euclidean distance from the feature vector for the test image" (§6.1). The
features are `Net.features(x, layer)`, by default the input of the output fc layer (the
last hidden layer, after dropout's test-mode scaling: the two towers' units together).

The search streams the training images in chunks (a store may hold a million images and
is memory-mapped): per chunk, features are computed, candidate distances come from
|q|^2 + |x|^2 - 2 q.x (one GEMM), and each query's k best candidates of the chunk get
their exact distance sqrt(sum((q - x)^2)) from the feature vectors themselves; a running
top-k (exact distance, then index) is merged chunk by chunk. Memory: one chunk of images
and features plus k feature vectors per query, whatever the store's size.

A query that is itself in the database finds itself first, at distance 0 up to float32
rounding (about 1e-6 of a typical distance): its features come from a batch of another
size than the chunk's, and the cpu backend's GEMMs round differently per batch shape.
"""
from __future__ import annotations

import numpy as np


def last_hidden_layer(net) -> str:
    """The input of the layer that makes the logits: the last hidden layer."""
    out = next(l for l in net.layers if l.name == net.output_name)
    return out.inputs[0]


def features(net, transform, images, layer: str, batch: int = 128) -> np.ndarray:
    """float32 (N, D) features of uint8 images (flattened if the layer is a map)."""
    out = []
    for i in range(0, len(images), batch):
        x = np.ascontiguousarray(transform(np.asarray(images[i:i + batch])), dtype=net.dtype)
        f = net.features(x, layer)
        # A NaN or inf feature makes every distance to it NaN, and a NaN distance would be
        # ranked as if it were a neighbour: refused, never drawn as a result.
        bad = ~np.isfinite(f.reshape(len(f), -1)).all(axis=1)
        if bad.any():
            raise ValueError(f"nearest: layer {layer!r} gives non-finite features for image {i + int(np.argmax(bad))} "
                             f"(and {int(bad.sum()) - 1} more of images {i}..{i + len(f) - 1}): are the "
                             "checkpoint's weights finite?")
        out.append(f.reshape(len(f), -1).astype(np.float32))
    return np.concatenate(out)


def nearest(net, transform, queries, database, *, k: int = 6, layer: str | None = None,
            chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 (Q, k), distances float64 (Q, k)) of each query's k nearest database images.

    queries, database: uint8 (N, S, S, 3) (a memory-mapped store split will do). Sorted by
    distance, ties by index. Raises ValueError when the database has fewer than k images.
    """
    layer = layer or last_hidden_layer(net)
    if len(database) < k:
        raise ValueError(f"nearest: the database has {len(database)} images, fewer than k={k}")
    q = features(net, transform, queries, layer)
    q64 = q.astype(np.float64)
    qn = (q64 ** 2).sum(axis=1)
    nq = len(q)
    best_d = np.full((nq, 0), np.inf)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    for lo in range(0, len(database), chunk):
        x = features(net, transform, database[lo:lo + chunk], layer)
        x64 = x.astype(np.float64)
        approx = qn[:, None] + (x64 ** 2).sum(axis=1)[None, :] - 2.0 * (q64 @ x64.T)
        kk = min(k, len(x))
        cand = np.argpartition(approx, kk - 1, axis=1)[:, :kk]                     # (Q, kk) chunk rows
        exact = np.sqrt(((q64[:, None, :] - x64[cand]) ** 2).sum(axis=2))         # (Q, kk)
        d = np.concatenate([best_d, exact], axis=1)
        i = np.concatenate([best_i, cand + lo], axis=1)
        order = np.lexsort((i, d), axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
    return best_i, best_d


def plot(queries, database, idx, dist, path=None, *, layer: str = "last hidden layer",
         title: str = "Nearest training images in the last hidden layer"):
    """Rows: a query, then its neighbours with their distances. -> Figure."""
    from .plotting import pyplot, save_figure

    plt = pyplot()
    nq, k = idx.shape
    fig, axes = plt.subplots(nq, k + 1, figsize=(1.1 * (k + 1) + 0.4, 1.15 * nq + 0.7), squeeze=False,
                             constrained_layout=True)
    for r in range(nq):
        axes[r, 0].imshow(queries[r], interpolation="nearest")
        for j in range(k):
            ax = axes[r, j + 1]
            ax.imshow(np.asarray(database[int(idx[r, j])]), interpolation="nearest")
            ax.set_title(f"{dist[r, j]:.2f}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"query {r + 1}", fontsize=8)
    axes[0, 0].set_title("query", fontsize=8)
    axes[-1, 0].set_xlabel("test image", fontsize=8)
    axes[-1, (k + 1) // 2].set_xlabel(f"{k} nearest training images (Euclidean distance in {layer})", fontsize=8)
    fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
