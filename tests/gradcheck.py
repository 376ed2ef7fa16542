"""Central-difference gradient checks, float64 (ARCHITECTURE.md §8.1).

Two checks of an op's backward against its forward, both on the scalar loss
``L(inputs) = Σ forward(*inputs) · G`` with a fixed random ``G`` (so the analytic
gradients are ``backward(G)``, exactly how a network calls them):

``check_directional`` (Chainer's ``gradient_check`` idea)
    One random unit direction ``d`` over all inputs together; compare
    ``(L(x + h·d) - L(x - h·d)) / 2h`` with ``Σ <grad_i, d_i>``. Two forward passes per
    check, whatever the input size, so it is cheap enough for every hypothesis draw.
    A random direction exercises every element of every gradient at once: a wrong entry
    shows up unless it is exactly orthogonal to ``d`` (probability zero).
``check_elementwise`` (Caffe's ``GradientChecker``)
    Perturbs every input element in turn: 2·size forward passes. Used on tiny shapes,
    where it pins down *which* element is wrong when the directional check fails.

Tolerance: ``|numeric - analytic| <= atol + rtol · scale``, ``scale`` = the analytic
gradient's norm (directional) or its largest |entry| (element-wise); rtol/atol from
``tests/tolerances.py``. Inputs must stay away from kinks (ReLU at 0, max-pool ties)
by at least ``h``; callers arrange that (offset inputs, shuffled-arange pooling inputs).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from tolerances import GRADCHECK_STEP, tol

__all__ = ["check_directional", "check_elementwise", "check_op", "SETTINGS", "rng_from"]

# Modest example counts for the hypothesis-drawn gradient checks: the whole reference
# suite must run in well under 90 s on 2 cores.
SETTINGS = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def rng_from(seed):
    return np.random.default_rng(seed)


def _loss(forward, inputs, g_out):
    out = forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    return float(sum(np.vdot(o, g) for o, g in zip(outs, g_out)))


def check_directional(forward, inputs, grads, g_out, *, rtol, atol, rng,
                      h: float = GRADCHECK_STEP, what: str = "op"):
    """Assert the directional derivative along a random unit direction matches.

    ``forward(*inputs)`` -> array (or tuple of arrays); ``g_out`` matches its output(s);
    ``grads[i]`` is the analytic dL/d inputs[i], or None for an input not checked
    (it is then held fixed).
    """
    dirs = [None if g is None else rng.standard_normal(x.shape)
            for x, g in zip(inputs, grads)]
    norm = np.sqrt(sum(float(np.vdot(d, d)) for d in dirs if d is not None))
    dirs = [None if d is None else d / norm for d in dirs]
    plus = [x if d is None else x + h * d for x, d in zip(inputs, dirs)]
    minus = [x if d is None else x - h * d for x, d in zip(inputs, dirs)]
    numeric = (_loss(forward, plus, g_out) - _loss(forward, minus, g_out)) / (2 * h)
    analytic = sum(float(np.vdot(g, d)) for g, d in zip(grads, dirs) if d is not None)
    scale = np.sqrt(sum(float(np.vdot(g, g)) for g in grads if g is not None))
    err = abs(numeric - analytic)
    assert err <= atol + rtol * scale, (
        f"{what}: directional derivative mismatch: numeric {numeric!r} vs analytic "
        f"{analytic!r} (|diff| {err:.3e} > atol {atol} + rtol {rtol} * |grad| {scale:.3e})")


def check_elementwise(forward, inputs, grads, g_out, *, rtol, atol,
                      h: float = GRADCHECK_STEP, what: str = "op"):
    """Assert every entry of every checked gradient matches its central difference."""
    inputs = [np.array(x, copy=True) for x in inputs]
    for i, (x, g) in enumerate(zip(inputs, grads)):
        if g is None:
            continue
        numeric = np.empty_like(x)
        flat = x.reshape(-1)          # a view: perturbing it perturbs inputs[i]
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + h
            lp = _loss(forward, inputs, g_out)
            flat[j] = saved - h
            lm = _loss(forward, inputs, g_out)
            flat[j] = saved
            numeric.reshape(-1)[j] = (lp - lm) / (2 * h)
        scale = float(np.abs(g).max()) if g.size else 0.0
        bad = np.abs(numeric - g) > atol + rtol * scale
        assert not bad.any(), (
            f"{what}: input {i}: {int(bad.sum())} of {g.size} gradient entries wrong; "
            f"first at {np.argwhere(bad)[0].tolist()}: numeric "
            f"{numeric[tuple(np.argwhere(bad)[0])]!r} vs analytic "
            f"{g[tuple(np.argwhere(bad)[0])]!r}")


def check_op(op: str, forward, backward, inputs, *, rng, elementwise: bool = False,
             checked=None):
    """Gradient-check ``op`` with tolerances from the table.

    ``forward(*inputs)`` -> y; ``backward(inputs, y, g_out)`` -> tuple of gradients, one
    per input (None where an input is not differentiated). ``checked``: optional list of
    bools choosing which gradients to check.
    """
    y = forward(*inputs)
    g_out = tuple(rng.standard_normal(np.shape(o)) for o in (y if isinstance(y, tuple) else (y,)))
    grads = list(backward(inputs, y, g_out[0] if len(g_out) == 1 else g_out))
    if checked is not None:
        grads = [g if c else None for g, c in zip(grads, checked)]
    t = tol(op, "gradcheck")
    if elementwise:
        check_elementwise(forward, inputs, grads, g_out, what=op, **t)
    else:
        check_directional(forward, inputs, grads, g_out, rng=rng, what=op, **t)
