"""Local response normalisation after conv1 (55x55x96) and conv2 (27x27x256), §3.3."""

from __future__ import annotations

import math

from kernel_cases.case import Case, nhwc

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


def cases(env):
    dev, R, F, ch, nchw = env.dev, env.R, env.F, env.ch, env.nchw
    out = []
    for where, hw, c in (("conv1", 55, ch(96)), ("conv2", 27, ch(256))):
        shape = (env.batch, hw, hw, c)
        n = math.prod(shape)
        torch_lrn = (lambda t: F.local_response_norm(nchw(t), LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"])
                     .permute(0, 2, 3, 1).contiguous()) if F else None
        out.append(Case(
            f"lrn {where}", nhwc(shape),
            lambda s, shape=shape: {"x": dev.randn(s, shape)},
            lambda B, X: (B.lrn(X["x"], **LRN),),
            lambda H: (R.lrn(H["x"], **LRN),), 2 * 4 * n,
            base=(lambda T: F.local_response_norm(nchw(T["x"]), LRN["size"], LRN["alpha"], LRN["beta"],
                                                  LRN["k"])) if F else None, op="lrn"))

        def make_bwd(s, shape=shape, torch_lrn=torch_lrn):
            x = dev.randn(s, shape)
            return {"x": x, "y": env.y_of(lambda h: R.lrn(h, **LRN), torch_lrn, x), "dy": dev.randn(s + 1, shape)}

        out.append(Case(
            f"lrn_backward {where}", nhwc(shape), make_bwd,
            lambda B, X: (B.lrn_backward(X["x"], X["y"], X["dy"], **LRN),),
            lambda H: (R.lrn_backward(H["x"], H["y"], H["dy"], **LRN),), 4 * 4 * n, op="lrn_backward"))
    return out
