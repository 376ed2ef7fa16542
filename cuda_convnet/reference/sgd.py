"""The paper's SGD update with momentum and weight decay, exactly (§5; ARCHITECTURE.md §3).

§5, for every weight w (batch 128, momentum 0.9, weight decay 0.0005, learning rate ε)::

    v_{i+1} = 0.9 · v_i - 0.0005 · ε · w_i - ε · <∂L/∂w>_{D_i}
    w_{i+1} = w_i + v_{i+1}

Note the learning rate sits *inside* v. PyTorch's ``optim.SGD`` keeps the learning rate
outside (buf = μ·buf + g + λw; w -= ε·buf), so the two agree exactly while ε is constant
(v = -ε·buf) but differ on the step where ε changes: the paper's step carries the old
momentum at the old ε, PyTorch rescales it to the new one. The difference on that step
is exactly μ·(ε_new - ε_old)·buf_prev (tests/test_sgd.py shows it).

Evaluation order, with every scalar first rounded to the array's dtype (a kernel that
does the same, without FMA contraction, reproduces the bits)::

    v = momentum·v;  v -= (weight_decay·lr)·w;  v -= lr·g;  w += v

where ``weight_decay·lr`` is one product computed in float64 on the host.
"""

from __future__ import annotations

from .. import checks

__all__ = ["sgd_update"]


def sgd_update(params, grads, velocities, *, lr: float, momentum: float = 0.9,
               weight_decay: float = 5e-4) -> None:
    """Update ``params`` and ``velocities`` (lists of arrays) in place; returns None."""
    lr, momentum, weight_decay = checks.check_sgd_args(params, grads, velocities, lr,
                                                       momentum, weight_decay)
    decay_lr = weight_decay * lr
    for w, g, v in zip(params, grads, velocities):
        t = w.dtype.type
        v *= t(momentum)
        v -= t(decay_lr) * w
        v -= t(lr) * g
        w += v
