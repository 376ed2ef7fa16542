"""Dropout in the paper's mode with a Philox mask (§4.2) on fc6's output (4096) and, for a
bandwidth-sized case, on conv1's output."""

from __future__ import annotations

import math

from kernel_cases.activation import conv1_shape
from kernel_cases.case import Case, nhwc

DROP = dict(p=0.5, seed=2012, offset=0, mode="paper")


def cases(env):
    dev, R, F, torch = env.dev, env.R, env.F, env.torch
    out = []
    for where, dshape in (("fc6", (env.batch, env.ch(4096))), ("conv1-sized", conv1_shape(env))):
        n = math.prod(dshape)

        def make(s, dshape=dshape):
            inp = {"x": dev.randn(s, dshape), "dy": dev.randn(s + 1, dshape)}
            if F is not None:  # a precomputed keep mask for PyTorch's dropout backward
                inp["torch_mask"] = dev.to_torch(dev.randn(s + 2, dshape)) > 0
            return inp

        out.append(Case(
            f"dropout {where}", nhwc(dshape), make,
            lambda B, X: (B.dropout(X["x"], **DROP),),
            lambda H: (R.dropout(H["x"], **DROP),), 2 * 4 * n,
            base=(lambda T: F.dropout(T["x"], DROP["p"], training=True)) if F else None))
        out.append(Case(
            f"dropout_backward {where}", nhwc(dshape), make,
            lambda B, X: (B.dropout_backward(X["dy"], **DROP),),
            lambda H: (R.dropout_backward(H["dy"], **DROP),), 2 * 4 * n,
            base=(lambda T: torch.ops.aten.native_dropout_backward(T["dy"], T["torch_mask"], 1.0)) if F else None))
    return out
