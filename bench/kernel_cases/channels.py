"""Channel concat and split where the towers meet (conv2's pooled output, 13x13, 128 + 128
channels, before conv3), §3.2."""

from __future__ import annotations

import math

import numpy as np

from kernel_cases.case import Case, nhwc


def cases(env):
    dev, F, torch = env.dev, env.F, env.torch
    half = (env.batch, 13, 13, env.ch(128))
    n = math.prod(half)
    full = half[:3] + (2 * half[3],)
    return [
        Case("concat_channels", f"2x {nhwc(half)}",
             lambda s: {"a": dev.randn(s, half), "b": dev.randn(s + 1, half)},
             lambda B, X: (B.concat_channels([X["a"], X["b"]]),),
             lambda H: (np.concatenate([H["a"], H["b"]], axis=-1),), 4 * 4 * n,
             base=(lambda T: torch.cat([T["a"], T["b"]], dim=-1)) if F else None),
        Case("split_channels", nhwc(full),
             lambda s: {"x": dev.randn(s, full)},
             lambda B, X: tuple(B.split_channels(X["x"], [half[3], half[3]])),
             lambda H: tuple(np.split(H["x"], 2, axis=-1)), 4 * 4 * n,
             base=(lambda T: [t.contiguous() for t in T["x"].split(half[3], dim=-1)]) if F else None),
    ]
