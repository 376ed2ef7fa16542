"""Softmax cross-entropy over the 1000 classes, forward and backward (the loss is a batch
mean: these rows validate the whole batch)."""

from __future__ import annotations

import inspect
import math

from kernel_cases.case import Case, nhwc


def labels_checked(backend) -> dict:
    """Keyword arguments that skip a kernel backend's label-range check (a device-to-host
    read per call), for labels already checked once on the host; none for the reference."""
    if "check_labels" in inspect.signature(backend.softmax_cross_entropy).parameters:
        return {"check_labels": False}
    return {}


def cases(env):
    dev, R, F, torch, batch = env.dev, env.R, env.F, env.torch, env.batch
    classes = max(2, 1000 // env.div)
    lshape = (batch, classes)
    n = math.prod(lshape)

    def make(s):
        logits = dev.randn(s, lshape, 3.0)
        labels = dev.randint(s + 1, classes, (batch,))
        # The reference call below checks this set's label range on the host, once, outside
        # any timing: the timed calls of ours then skip that check (its device-to-host read
        # of the labels' min and max would be timed, not the kernel).
        probs = env.y_of(lambda h: R.softmax_cross_entropy(h, dev.host(labels))[1],
                         lambda t: torch.softmax(t, dim=1), logits)
        inp = {"logits": logits, "labels": labels, "probs": probs}
        if F is not None:
            inp["torch_labels"] = dev.to_torch(labels).long()
        return inp

    return [
        Case("softmax_cross_entropy", nhwc(lshape), make,
             lambda B, X: tuple(reversed(B.softmax_cross_entropy(X["logits"], X["labels"], **labels_checked(B)))),
             lambda H: tuple(reversed(R.softmax_cross_entropy(H["logits"], H["labels"]))),
             2 * 4 * n + 4 * batch,
             base=(lambda T: F.cross_entropy(T["logits"], T["torch_labels"])) if F else None, per_sample=False),
        Case("softmax_cross_entropy_backward", nhwc(lshape), make,
             lambda B, X: (B.softmax_cross_entropy_backward(X["probs"], X["labels"], **labels_checked(B)),),
             lambda H: (R.softmax_cross_entropy_backward(H["probs"], H["labels"]),), 2 * 4 * n + 4 * batch,
             per_sample=False),
    ]
