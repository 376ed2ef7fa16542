"""Overlapping max-pooling (3x3, stride 2) after conv1, conv2 and conv5, §3.4."""

from __future__ import annotations

import math

from kernel_cases.case import Case, nhwc

POOL = dict(size=3, stride=2)


def pool_out(h):
    return (h - POOL["size"]) // POOL["stride"] + 1


def cases(env):
    dev, R, F, ch, nchw, torch = env.dev, env.R, env.F, env.ch, env.nchw, env.torch
    out = []
    for where, hw, c in (("conv1", 55, ch(96)), ("conv2", 27, ch(256)), ("conv5", 13, ch(256))):
        shape = (env.batch, hw, hw, c)
        oshape = (env.batch, pool_out(hw), pool_out(hw), c)
        n_in, n_out = math.prod(shape), math.prod(oshape)
        out.append(Case(
            f"max_pool {where}", nhwc(shape),
            lambda s, shape=shape: {"x": dev.randn(s, shape)},
            lambda B, X: (B.max_pool(X["x"], **POOL),),
            lambda H: (R.max_pool(H["x"], **POOL),), 4 * (n_in + n_out),
            base=(lambda T: F.max_pool2d(nchw(T["x"]), POOL["size"], POOL["stride"])) if F else None))

        def make_bwd(s, shape=shape, oshape=oshape):
            x = dev.randn(s, shape)
            inp = {"x": x, "y": env.y_of(lambda h: R.max_pool(h, **POOL),
                                         lambda t: F.max_pool2d(nchw(t), POOL["size"], POOL["stride"])
                                         .permute(0, 2, 3, 1).contiguous(), x),
                   "dy": dev.randn(s + 1, oshape)}
            if F is not None:  # PyTorch's backward needs its forward's argmax indices
                _, inp["torch_idx"] = F.max_pool2d(nchw(dev.to_torch(x)), POOL["size"], POOL["stride"],
                                                   return_indices=True)
            return inp

        out.append(Case(
            f"max_pool_backward {where}", nhwc(shape), make_bwd,
            lambda B, X: (B.max_pool_backward(X["x"], X["y"], X["dy"], **POOL),),
            lambda H: (R.max_pool_backward(H["x"], H["y"], H["dy"], **POOL),), 4 * 2 * (n_in + n_out),
            base=(lambda T: torch.ops.aten.max_pool2d_with_indices_backward(
                nchw(T["dy"]), nchw(T["x"]), [3, 3], [2, 2], [0, 0], [1, 1], False, T["torch_idx"]))
            if F else None))
    return out
