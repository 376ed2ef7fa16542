"""Element-wise activations (ReLU §3.1, and tanh for the comparison of Figure 1) on conv1's
output, forward and backward."""

from __future__ import annotations

import math

from kernel_cases.case import Case, nhwc


def conv1_shape(env):
    return (env.batch, 55, 55, env.ch(96))


def cases(env):
    dev, R, F, torch = env.dev, env.R, env.F, env.torch
    shape = conv1_shape(env)
    n = math.prod(shape)
    out = []
    for op, fwd_ref, torch_fwd, torch_bwd in (
            ("relu", R.relu, lambda t: torch.relu(t), lambda T: torch.ops.aten.threshold_backward(T["dy"], T["y"], 0)),
            ("tanh", R.tanh, lambda t: torch.tanh(t), lambda T: torch.ops.aten.tanh_backward(T["dy"], T["y"]))):
        out.append(Case(
            f"{op} conv1", nhwc(shape),
            lambda s: {"x": dev.randn(s, shape)},
            lambda B, X, op=op: (getattr(B, op)(X["x"]),),
            lambda H, fwd_ref=fwd_ref: (fwd_ref(H["x"]),), 2 * 4 * n,
            base=(lambda T, torch_fwd=torch_fwd: torch_fwd(T["x"])) if F else None))

        def make_bwd(s, fwd_ref=fwd_ref, torch_fwd=torch_fwd):
            x = dev.randn(s, shape)
            return {"y": env.y_of(fwd_ref, torch_fwd, x), "dy": dev.randn(s + 1, shape)}

        out.append(Case(
            f"{op}_backward conv1", nhwc(shape), make_bwd,
            lambda B, X, op=op: (getattr(B, op + "_backward")(X["y"], X["dy"]),),
            lambda H, op=op: (getattr(R, op + "_backward")(H["y"], H["dy"]),), 3 * 4 * n,
            base=torch_bwd if F else None))
    return out
