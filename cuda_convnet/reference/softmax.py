"""Softmax with cross-entropy loss, and top-k error counting (§3.5 "1000-way softmax", §2).

The last layer of the net: probabilities ``probs = softmax(logits)`` per row and the loss
``mean_n -log probs[n, labels[n]]`` ("maximizes the multinomial logistic regression
objective ... the average across training cases of the log-probability of the correct
label", §3.5). Computed stably as ``z = logits - max(logits)``,
``loss_n = log Σ exp(z) - z[label]`` (never log of a rounded-to-zero probability).

``softmax_cross_entropy_backward(probs, labels) = (probs - onehot(labels)) / N``: the
gradient of the *mean* loss, so the batch average of §5's update rule is already in it.

``topk_errors`` counts §2's top-1 / top-5 errors. The rule, shared bit for bit by every
backend (the CUDA kernel included), never resolves a doubt in the model's favour:

    rank(n) = #{c != label : probs[n, c] >= probs[n, label]}
    example n is a top-k error  iff  rank(n) >= k  or  row n holds a NaN or an infinity

So a label tied with the k-th most probable class is an error (a uniform output scores
100 % error, not 0 %), and a diverged net's NaN probabilities are all errors. No argsort:
the count needs one comparison per class, so a kernel computes it exactly.
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["softmax_cross_entropy", "softmax_cross_entropy_backward", "topk_error_mask", "topk_errors"]


def _check_label_values(op, labels, classes):
    # Reading values is fine here (host arrays); checks.py never reads them.
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{op}: labels must be in [0, {classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, *, check_labels: bool = True):
    """-> (loss, probs): loss the batch mean (a NumPy scalar of logits' dtype), probs (N, K).

    check_labels=False skips the label-range check, for labels the caller already checked
    (on the cuda backend the check is a read back from the device); the same keyword on
    the backward and ``topk_errors``.
    """
    n, classes = checks.check_softmax_args(logits, labels)
    if check_labels:
        _check_label_values("softmax_cross_entropy", labels, classes)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    sums = e.sum(axis=1, keepdims=True)
    probs = e / sums
    picked = z[np.arange(n), labels]
    per_example = np.log(sums[:, 0]) - picked
    loss = per_example.mean(dtype=logits.dtype) if n else logits.dtype.type(0)
    return logits.dtype.type(loss), probs


def softmax_cross_entropy_backward(probs: np.ndarray, labels: np.ndarray, *, check_labels: bool = True) -> np.ndarray:
    """d(mean loss)/d logits = (probs - onehot(labels)) / N."""
    n, classes = checks.check_softmax_backward_args(probs, labels)
    if check_labels:
        _check_label_values("softmax_cross_entropy_backward", labels, classes)
    d = probs.copy()
    d[np.arange(n), labels] -= 1
    if n:
        d *= probs.dtype.type(1.0 / n)
    return d


def topk_errors(probs: np.ndarray, labels: np.ndarray, ks=(1, 5), *, check_labels: bool = True,
                on_device: bool = False):
    """{k: number of top-k errors} for probs (N, classes) and int labels (N,) in [0, classes).

    The module's rule: an example is top-k correct only when fewer than k classes other
    than its label have a probability >= the label's, and its row is finite. Counts are
    Python ints. on_device=True returns them instead as an int32 array (len(ks),) in ks
    order on the backend's device, not read back (a training step fetches them together
    with the loss). Raises TypeError/ValueError (cuda_convnet.checks) for bad shapes,
    dtypes, labels outside [0, classes) (unless check_labels=False) or ks entries < 1.
    """
    ks = checks.check_topk_args(probs, labels, ks)
    if check_labels:
        _check_label_values("topk_errors", labels, probs.shape[1])
    counts = topk_error_mask(probs, labels, ks).sum(axis=1).astype(np.int32)
    if on_device:
        return counts
    return {k: int(c) for k, c in zip(ks, counts)}


def topk_error_mask(probs: np.ndarray, labels: np.ndarray, ks) -> np.ndarray:
    """bool (len(ks), N): entry [j, n] is True when example n is a top-ks[j] error.

    The per-example form of ``topk_errors`` (same rule; unchecked: callers check), for
    per-class breakdowns.
    """
    n = probs.shape[0]
    true_p = probs[np.arange(n), labels][:, None]
    others = (probs >= true_p).sum(axis=1) - 1      # the label itself is always >= itself
    bad = ~np.isfinite(probs).all(axis=1)           # NaN label prob: `others` is -1 there
    return np.stack([(others >= k) | bad for k in ks]) if len(ks) else np.zeros((0, n), bool)
