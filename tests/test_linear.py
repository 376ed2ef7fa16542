"""The fully connected layer (paper §3.5; cuda_convnet/reference/linear.py), the reference side of the family:
the gradient (central differences, float64), PyTorch's linear as the independent oracle, float32
within the kernel tolerance, argument errors and the GEMM launcher's index bounds. The kernels
against this reference: tests/test_kernels_linear*.py."""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import emu_ext, host_ptr
from reference_support import F32, arr, assert_attains, both
from torch_oracle import F, assert_close, needs_torch, torch

from cuda_convnet import checks
from cuda_convnet import reference as R

# ----------------------------------------------------------------------------- reference: gradient check (float64)

@SETTINGS
@given(n=st.integers(1, 4), fan_in=st.integers(1, 7), fan_out=st.integers(1, 6),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_gradcheck(n, fan_in, fan_out, bias, seed):
    rng = rng_from(seed)
    x = rng.standard_normal((n, fan_in))
    w = rng.standard_normal((fan_out, fan_in))
    b = rng.standard_normal(fan_out)
    if bias:
        fwd = lambda x, w, b: R.linear(x, w, b)
        bwd = lambda ins, y, dy: R.linear_backward(ins[0], ins[1], dy)
        check_op("linear", fwd, bwd, [x, w, b], rng=rng)
    else:
        fwd = lambda x, w: R.linear(x, w)
        bwd = lambda ins, y, dy: R.linear_backward(ins[0], ins[1], dy)[:2]
        check_op("linear", fwd, bwd, [x, w], rng=rng)


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

@needs_torch
def test_linear_vs_torch():
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    yt = F.linear(xt, wt, bt)
    assert_close(R.linear(x, w, b), yt.detach().numpy(), "linear")
    dy = rng.standard_normal((5, 3))
    yt.backward(torch.from_numpy(dy))
    for ours, theirs in zip(R.linear_backward(x, w, dy), (xt.grad, wt.grad, bt.grad)):
        assert_close(ours, theirs.numpy(), "linear_backward")


# ---------------------------------------------------------------------- reference: float32 within the kernel tolerance

def test_linear_float32_attains_the_kernel_tolerance():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (16, 1024)).astype(F32)
    w = (rng.standard_normal((256, 1024)) / 32).astype(F32)
    b = rng.uniform(-1, 1, 256).astype(F32)
    assert_attains("linear", *both(R.linear, x, w, b))
    dy = rng.uniform(-1, 1, (16, 256)).astype(F32)
    assert_attains("linear_backward", *both(R.linear_backward, x, w, dy))


# ----------------------------------------------------------------------------- bad input

def test_linear_shape_mismatch():
    with pytest.raises(ValueError, match=r"linear: w has 4 inputs .* but x has 3 features"):
        R.linear(arr(2, 3), arr(5, 4))
    with pytest.raises(ValueError, match=r"linear: x must be 2-D \(N, in\)"):
        R.linear(arr(2, 3, 1), arr(5, 3))


# ----------------------------------------------------------------------------- index bounds

MAX = checks.MAX_EXTENT


INT_MAX = 2**31 - 1


@pytest.mark.parametrize("which", ["M", "N", "K"])
def test_gemm_launcher_refuses_extents_whose_tile_loop_would_wrap(which):
    # K near 2^31: `k0 += 16` would pass INT_MAX. Refused before any pointer is read.
    a = np.ones(4, np.float32)
    dims = {"M": 1, "N": 1, "K": 1, which: INT_MAX - 3}
    with pytest.raises(ValueError, match=rf"gemm: {which} = {INT_MAX - 3} is larger than {MAX}"):
        emu_ext().gemm(a=host_ptr(a), b=host_ptr(a), c=host_ptr(a), bias=0, **dims, trans_a=False, trans_b=False)
