"""PyTorch CPU as the independent oracle for the reference ops, float64 (ARCHITECTURE.md §8.1).

Gradient checks prove backward matches forward; they cannot prove forward is the right
function. Here an independent implementation does: conv2d (groups, strides, asymmetric
padding through F.pad), tanh, relu, linear, cross-entropy, and SGD across a learning-rate
change, where the paper's rule and torch.optim.SGD differ by exactly the documented
amount. local_response_norm and max_pool2d are the oracles in tests/test_lrn.py and
tests/test_pool.py (one file per op family); the helpers are in tests/torch_oracle.py.

Layouts: ours NHWC / KRSC, torch NCHW / KCRS; converted at the boundary only.
Skipped cleanly when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch_oracle import assert_close, nchw, nhwc

from cuda_convnet import reference as R

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ----------------------------------------------------------------------------- conv2d

CONV_CASES = [
    # (n, h, w, c, k, r, s, stride, padding (top, bottom, left, right), groups)
    (2, 7, 9, 6, 4, 3, 2, 2, (1, 0, 2, 1), 2),
    (3, 11, 10, 3, 6, 5, 5, 3, (2, 2, 0, 1), 3),
    (1, 5, 5, 2, 2, 5, 5, 1, (0, 0, 0, 0), 1),
    (2, 13, 12, 4, 6, 3, 4, 4, (3, 0, 1, 2), 2),
    (2, 6, 6, 3, 5, 1, 1, 1, (1, 1, 1, 1), 1),
    (1, 19, 19, 3, 4, 11, 11, 4, (0, 0, 0, 0), 1),       # conv1-like, 11x11 stride 4
    (1, 9, 9, 4, 8, 3, 3, 1, (1, 1, 1, 1), 2),           # conv4-like, two towers
]


@pytest.mark.parametrize("n,h,w,c,k,r,s,stride,pad,groups", CONV_CASES)
def test_conv2d(n, h, w, c, k, r, s, stride, pad, groups):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((n, h, w, c))
    wt = rng.standard_normal((k, r, s, c // groups))
    b = rng.standard_normal(k)
    y = R.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups)

    xt, wtt = nchw(x), nchw(wt)
    bt = torch.from_numpy(b).requires_grad_()
    top, bottom, left, right = pad
    # F.pad takes (left, right, top, bottom) for the last two dims.
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wtt, bt, stride=stride,
                  groups=groups)
    assert_close(y, nhwc(yt), "conv2d")

    dy = rng.standard_normal(y.shape)
    yt.backward(nchw(dy).detach())
    dx, dw, db = R.conv2d_backward(x, wt, dy, stride=stride, padding=pad, groups=groups)
    assert_close(dx, nhwc(xt.grad), "conv2d_backward")
    assert_close(dw, nhwc(wtt.grad), "conv2d_backward")
    assert_close(db, bt.grad.numpy(), "conv2d_backward")


def test_conv2d_batch_chunking_matches_torch(monkeypatch):
    """Force one image per im2col chunk: results must not depend on the chunking."""
    import importlib
    conv_module = importlib.import_module("cuda_convnet.reference.conv")
    monkeypatch.setattr(conv_module, "IM2COL_CHUNK_BYTES", 1)
    test_conv2d(*CONV_CASES[0])
    test_conv2d(*CONV_CASES[3])


# ----------------------------------------------------------------------------- linear

def test_linear():
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    yt = F.linear(xt, wt, bt)
    assert_close(R.linear(x, w, b), yt.detach().numpy(), "linear")
    dy = rng.standard_normal((5, 3))
    yt.backward(torch.from_numpy(dy))
    for ours, theirs in zip(R.linear_backward(x, w, dy), (xt.grad, wt.grad, bt.grad)):
        assert_close(ours, theirs.numpy(), "linear_backward")


# ----------------------------------------------------------------------------- activations

@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_activation(name):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 5)) * 2
    xt = torch.from_numpy(x).requires_grad_()
    yt = getattr(torch, name)(xt)
    y = getattr(R, name)(x)
    assert_close(y, yt.detach().numpy(), name)
    dy = rng.standard_normal(x.shape)
    yt.backward(torch.from_numpy(dy))
    assert_close(getattr(R, name + "_backward")(y, dy), xt.grad.numpy(), name + "_backward")


# LRN and max_pool: tests/test_lrn.py, tests/test_pool.py (one file per op family).

# ----------------------------------------------------------------------------- softmax

def test_softmax_cross_entropy():
    rng = np.random.default_rng(16)
    z = rng.standard_normal((7, 10)) * 5
    z[0] += 800            # huge logits: the stable formulation must not overflow
    labels = rng.integers(0, 10, size=7)
    loss, probs = R.softmax_cross_entropy(z, labels)
    zt = torch.from_numpy(z).requires_grad_()
    lt = F.cross_entropy(zt, torch.from_numpy(labels))
    assert_close(loss, lt.item(), "softmax_cross_entropy")
    assert_close(probs, torch.softmax(zt, 1).detach().numpy(), "softmax_cross_entropy")
    lt.backward()
    assert_close(R.softmax_cross_entropy_backward(probs, labels), zt.grad.numpy(),
                 "softmax_cross_entropy_backward")


# ----------------------------------------------------------------------------- SGD

MOMENTUM, DECAY = 0.9, 5e-4


def _grad_fn(rng_seed):
    """A deterministic gradient that depends on w (so trajectories interact)."""
    rng = np.random.default_rng(rng_seed)
    a = rng.uniform(0.5, 2.0, size=(4, 3))
    noise = rng.standard_normal((20, 4, 3))
    return lambda w, step: a * w + noise[step]


def _run_paper(w0, lrs, grad, rescale_at_change=False):
    w, v = w0.copy(), np.zeros_like(w0)
    traj = []
    for i, lr in enumerate(lrs):
        if rescale_at_change and i and lr != lrs[i - 1]:
            v *= lr / lrs[i - 1]
        R.sgd_update([w], [grad(w, i)], [v], lr=lr, momentum=MOMENTUM, weight_decay=DECAY)
        traj.append(w.copy())
    return traj


def _run_torch(w0, lrs, grad):
    p = torch.from_numpy(w0.copy()).requires_grad_()
    opt = torch.optim.SGD([p], lr=lrs[0], momentum=MOMENTUM, weight_decay=DECAY)
    traj, bufs = [], []
    for i, lr in enumerate(lrs):
        opt.param_groups[0]["lr"] = lr
        p.grad = torch.from_numpy(grad(p.detach().numpy().copy(), i))
        opt.step()
        traj.append(p.detach().numpy().copy())
        bufs.append(opt.state[p]["momentum_buffer"].numpy().copy())
    return traj, bufs


def test_sgd_matches_torch_while_lr_constant():
    """Paper: v = μv - λεw - εg, w += v.  torch: b = μb + g + λw, w -= εb.
    With ε constant, v = -ε·b at every step, so the weights agree exactly."""
    w0 = np.random.default_rng(17).standard_normal((4, 3))
    grad = _grad_fn(18)
    lrs = [0.05] * 8
    ours = _run_paper(w0, lrs, grad)
    theirs, _ = _run_torch(w0, lrs, grad)
    for a, b in zip(ours, theirs):
        assert_close(a, b, "sgd_update")


def test_sgd_learning_rate_change_differs_exactly_as_documented():
    """At the step where ε changes from ε1 to ε2 (state equal before it), the paper's
    step keeps the old momentum at the old rate: w_paper - w_torch = μ(ε2 - ε1)·b_prev.
    Rescaling the paper's velocity by ε2/ε1 at the change reproduces torch exactly."""
    w0 = np.random.default_rng(19).standard_normal((4, 3))
    grad = _grad_fn(20)
    change = 5
    lrs = [0.05] * change + [0.005] * 5           # divided by 10, as in §5
    ours = _run_paper(w0, lrs, grad)
    theirs, bufs = _run_torch(w0, lrs, grad)
    for i in range(change):
        assert_close(ours[i], theirs[i], "sgd_update")
    expected = MOMENTUM * (lrs[change] - lrs[change - 1]) * bufs[change - 1]
    assert np.abs(expected).min() > 1e-4            # the difference is real, not rounding
    assert_close(ours[change] - theirs[change], expected, "sgd_update")
    # ... and after it the trajectories stay apart,
    assert not np.allclose(ours[-1], theirs[-1], rtol=1e-6, atol=0)
    # unless the paper's velocity is rescaled at the change: then torch throughout.
    rescaled = _run_paper(w0, lrs, grad, rescale_at_change=True)
    for a, b in zip(rescaled, theirs):
        assert_close(a, b, "sgd_update")
