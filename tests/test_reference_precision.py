"""``precision=`` on the reference convolution (cpu backend): which GEMM operands are rounded.

The reference emulates the tensor-core precisions by rounding each GEMM's operands as the
kernels do (reference/precision.py) and then computing in the input's dtype: forward x
and w, dgrad dy and w, wgrad x and dy; the bias and db are never rounded. Checked here
against PyTorch CPU in float64 on operands rounded by hand (an independent convolution),
at the float64 ``torch`` tolerance, so a wrongly rounded or unrounded operand (an error of
2^-11 or 2^-8 relative) fails by orders of magnitude. "3xtf32" is, by definition, the
float32 reference (its big + residual split has float32-level accuracy), bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet import reference as R
from cuda_convnet.reference.precision import round_bf16, round_tf32

torch = pytest.importorskip("torch")
F = torch.nn.functional

ROUND = {"tf32": round_tf32, "bf16": round_bf16}
# (n, h, w, c, k, r, s, stride, padding (top, bottom, left, right), groups)
CASES = [
    (2, 7, 9, 6, 4, 3, 2, 2, (1, 0, 2, 1), 2),
    (1, 19, 19, 3, 4, 11, 11, 4, (1, 2, 1, 2), 1),  # conv1-like: 11x11 stride 4, asymmetric
    (2, 6, 6, 8, 6, 3, 3, 1, (1, 1, 1, 1), 2),     # conv4-like, two groups
]


def torch_conv(x, w, b, dy, stride, pad, groups):
    """(y, dx, dw, db) of PyTorch's float64 convolution; NHWC/KRSC in and out."""
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_()
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    top, bottom, left, right = pad
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=stride, groups=groups)
    yt.backward(torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2))))
    back = (lambda t: t.detach().permute(0, 2, 3, 1).numpy())
    return back(yt), back(xt.grad), back(wt.grad), bt.grad.numpy()


def data(case, seed=3):
    n, h, w, c, k, r, s, stride, pad, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    wt = rng.standard_normal((k, r, s, c // groups)) / np.sqrt(r * s * c / groups)
    b = rng.standard_normal(k)
    p = (h + pad[0] + pad[1] - r) // stride + 1
    q = (w + pad[2] + pad[3] - s) // stride + 1
    dy = rng.standard_normal((n, p, q, k))
    return x, wt, b, dy, dict(stride=stride, padding=pad, groups=groups)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_conv_rounds_each_gemms_operands(case, precision):
    x, w, b, dy, kw = data(case)
    rnd = ROUND[precision]
    cpu = ccn.backend("cpu")
    y = cpu.conv2d(x, w, b, **kw, precision=precision)
    dx, dw, db = cpu.conv2d_backward(x, w, dy, **kw, precision=precision)
    # Every GEMM operand rounded, the bias and db's dy not: one torch run on those values.
    ty, tdx, tdw, tdb = torch_conv(rnd(x), rnd(w), b, rnd(dy), kw["stride"], kw["padding"], kw["groups"])
    np.testing.assert_allclose(y, ty, **tol("conv2d", "torch"))
    np.testing.assert_allclose(dx, tdx, **tol("conv2d_backward", "torch"))
    np.testing.assert_allclose(dw, tdw, **tol("conv2d_backward", "torch"))
    np.testing.assert_array_equal(db, dy.sum(axis=(0, 1, 2)))  # db: the unrounded dy
    # The split ops are the same functions.
    np.testing.assert_array_equal(cpu.conv2d_dgrad(dy, w, x.shape, **kw, precision=precision), dx)
    dw2, db2 = cpu.conv2d_wgrad(x, dy, w.shape, **kw, precision=precision)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    # And the rounding is visible: far more than the float64 tolerance from the fp32 answer.
    y32 = cpu.conv2d(x, w, b, **kw)
    assert np.abs(y - y32).max() > 1e3 * tol("conv2d", "torch")["atol"]


@pytest.mark.parametrize("precision", ["fp32", "3xtf32"])
def test_conv_fp32_and_3xtf32_are_the_unrounded_reference(precision):
    x, w, b, dy, kw = data(CASES[0])
    x, w, b, dy = (a.astype(np.float32) for a in (x, w, b, dy))
    y = R.conv2d(x, w, b, **kw, precision=precision, relu=True)
    np.testing.assert_array_equal(y, R.conv2d(x, w, b, **kw, relu=True))
    for got, want in zip(R.conv2d_backward(x, w, dy, **kw, precision=precision), R.conv2d_backward(x, w, dy, **kw)):
        np.testing.assert_array_equal(got, want)


def test_conv_float32_inputs_keep_their_dtype():
    x, w, b, dy, kw = data(CASES[2])
    x, w, b, dy = (a.astype(np.float32) for a in (x, w, b, dy))
    for precision in ("tf32", "bf16"):
        assert R.conv2d(x, w, b, **kw, precision=precision).dtype == np.float32
        assert all(a.dtype == np.float32 for a in R.conv2d_backward(x, w, dy, **kw, precision=precision))


def test_conv_rounding_overflow_reaches_the_padding_rule():
    """A float32 tap that BF16 rounding carries to inf makes the all-padding windows NaN,
    as the kernels (which see the rounded inf) compute 0 * inf there."""
    x = np.ones((1, 2, 2, 1), np.float32)
    w = np.full((1, 1, 1, 1), np.finfo(np.float32).max, np.float32)
    y = R.conv2d(x, w, None, padding=1, precision="bf16")
    assert np.isnan(y[0, 0, 0, 0]) and np.isinf(y[0, 1, 1, 0])
    assert np.isfinite(R.conv2d(x, w, None, padding=1)).all()  # fp32: no overflow, zeros in the padding


@pytest.mark.parametrize("op", ["conv2d", "conv2d_backward", "conv2d_dgrad", "conv2d_wgrad"])
def test_conv_precision_is_checked_and_keyword_only(op):
    x, w, b, dy, kw = data(CASES[0])
    args = {"conv2d": (x, w, b), "conv2d_backward": (x, w, dy), "conv2d_dgrad": (dy, w, x.shape),
            "conv2d_wgrad": (x, dy, w.shape)}[op]
    fn = getattr(ccn.ops, op)  # through the dispatcher: NumPy arrays reach the cpu backend
    for bad in ("fp16", "TF32", None, 32):
        with pytest.raises(ValueError, match=rf"^{op}: precision must be one of 'fp32', '3xtf32', 'tf32', 'bf16'"):
            fn(*args, **kw, precision=bad)
    with pytest.raises(TypeError):
        getattr(R, op)(*args, kw["stride"], kw["padding"], kw["groups"], False, "tf32")
