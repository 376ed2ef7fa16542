"""The fully connected layer's op family (paper §3.5; cuda_convnet/reference/linear.py and the
float32 GEMM kernels of csrc/gemm.cuh), every level in one file: the reference's gradient
(central differences, float64), PyTorch's linear as the independent oracle, float32 within
the kernel tolerance, argument errors and the GEMM launcher's index bounds; then linear and
linear_backward on the emu backend (and cuda when a GPU is present) against the reference,
on random float32 inputs, outputs poisoned with NaN before every launch (conftest.py),
every kernel version and the split-K path. The tensor-core GEMM: tests/test_linear_tc.py."""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_kernel_close, emu_ext, host_ptr, randn
from reference_support import F32, arr, assert_attains, both
from torch_oracle import F, assert_close, needs_torch, torch

import cuda_convnet as ccn
from cuda_convnet import checks
from cuda_convnet import reference as R
from cuda_convnet.alexnet_shapes import fc_layers

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


# ============================================================================= kernels

def reference(cpu, x, w, b=None, dy=None):
    """The reference in float64 on the same float32 values."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    if dy is None:
        return cpu.linear(x64, w64, None if b is None else b.astype(np.float64))
    return cpu.linear_backward(x64, w64, dy.astype(np.float64))


def check_linear(dev, cpu, n, fan_in, fan_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    # Weights scaled by 1/sqrt(fan_in) keep outputs O(1), the scale tests/tolerances.py assumes.
    x, dy = randn(rng, n, fan_in), randn(rng, n, fan_out)
    w = randn(rng, fan_out, fan_in) / np.float32(np.sqrt(fan_in))
    b = randn(rng, fan_out) if with_bias else None
    y = dev.get(dev.ops.linear(dev.put(x), dev.put(w), dev.put(b)))
    assert y.shape == (n, fan_out) and y.dtype == np.float32
    assert_kernel_close("linear", y, reference(cpu, x, w, b))
    dx, dw, db = (dev.get(a) for a in dev.ops.linear_backward(dev.put(x), dev.put(w), dev.put(dy)))
    rdx, rdw, rdb = reference(cpu, x, w, dy=dy)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert_kernel_close("linear_backward", got, want)
    # The ReLU in the GEMM's epilogue: max(0, y) of the same bits (the reference's relu=True
    # is max(0, its y)); need_dx=False: no dx, and dw and db the same bits as with it.
    yr = dev.get(dev.ops.linear(dev.put(x), dev.put(w), dev.put(b), relu=True))
    np.testing.assert_array_equal(yr, np.maximum(y, 0))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    np.testing.assert_array_equal(cpu.linear(x64, w64, b64, relu=True), np.maximum(cpu.linear(x64, w64, b64), 0))
    none, dw2, db2 = dev.ops.linear_backward(dev.put(x), dev.put(w), dev.put(dy), need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dev.get(dw2), dw)
    np.testing.assert_array_equal(dev.get(db2), db)
    rnone, rdw2, rdb2 = cpu.linear_backward(x64, w64, dy.astype(np.float64), need_dx=False)
    assert rnone is None
    np.testing.assert_array_equal(rdw2, rdw)
    np.testing.assert_array_equal(rdb2, rdb)


@given(
    n=st.integers(1, 70),
    fan_in=st.integers(1, 150),
    fan_out=st.integers(1, 140),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_linear_matches_reference_on_drawn_shapes(kernel_device, cpu, n, fan_in, fan_out, with_bias, seed):
    check_linear(kernel_device, cpu, n, fan_in, fan_out, with_bias, seed)


@pytest.mark.parametrize(
    "n,fan_in,fan_out",
    [
        (1, 1, 1),      # K = 1, a single output
        (64, 16, 64),   # exactly one tile
        (65, 17, 63),   # one past / one short of every tile edge
        (3, 1, 200),    # K = 1 with many columns
        # gemm_kernel2 (M, N >= 128): forward N=out; dgrad N=in; wgrad M=out, N=in
        (128, 128, 128),  # one 128 x 128 tile, float4 loads everywhere
        (130, 133, 131),  # ragged, K and N not multiples of 4: scalar loads and stores
        (257, 160, 200),  # 3 row tiles; forward, dgrad and wgrad all on kernel2
    ],
)
def test_linear_tile_edges(kernel_device, cpu, n, fan_in, fan_out):
    check_linear(kernel_device, cpu, n, fan_in, fan_out, True, seed=n * fan_in + fan_out)


@pytest.mark.parametrize("n,fan_in,fan_out,auto", [(5, 7, 9, 1), (130, 133, 131, 2)])
def test_linear_each_gemm_kernel_version(kernel_device, cpu, monkeypatch, n, fan_in, fan_out, auto):
    """kernel_versions["linear"/"linear_backward"] forces gemm_kernel1 or 2 on any shape (both
    zero-fill ragged edges); 0 lets the launcher pick (2 where M, N >= 128)."""
    ops, put = kernel_device.ops, kernel_device.put
    x, w = put(np.ones((n, fan_in), np.float32)), put(np.ones((fan_out, fan_in), np.float32))
    assert ops.kernel_version("linear", x, w) == auto
    for version in (1, 2):
        monkeypatch.setitem(ops.kernel_versions, "linear", version)
        monkeypatch.setitem(ops.kernel_versions, "linear_backward", version)
        assert ops.kernel_version("linear", x, w) == version
        check_linear(kernel_device, cpu, n, fan_in, fan_out, True, seed=version)
    with pytest.raises(ValueError, match="precision 'tf32' runs gemm_tc"):
        ops.linear(x, w, precision="tf32")
    with pytest.raises(ValueError, match="'linear_backward' launches several kernels"):
        ops.kernel_version("linear_backward", x, w, put(np.ones((n, fan_out), np.float32)))
    with pytest.raises(ValueError, match="'bias_grad' has no kernel versions"):
        ops.kernel_version("bias_grad", x, w)


@pytest.mark.alexnet_shapes
def test_linear_alexnet_fc_shapes(kernel_device, cpu):
    """The paper's FC layers at batch 2: fc6 9216->4096 forward (the whole layer), and
    fc6 cut to 512 outputs plus fc7/fc8 shapes through the backward pass."""
    rng = np.random.default_rng(6)
    x, w, b = randn(rng, 2, 9216), randn(rng, 4096, 9216) * 0.01, randn(rng, 4096)
    y = kernel_device.get(kernel_device.ops.linear(kernel_device.put(x), kernel_device.put(w), kernel_device.put(b)))
    assert_kernel_close("linear", y, reference(cpu, x, w, b))
    check_linear(kernel_device, cpu, 2, 9216, 512, True, seed=7)
    check_linear(kernel_device, cpu, 2, 4096, 1000, True, seed=8)


def test_linear_backward_is_deterministic(kernel_device):
    """No atomics in the reductions: two runs give bit-identical gradients."""
    rng = np.random.default_rng(3)
    x, w, dy = randn(rng, 130, 70), randn(rng, 90, 70), randn(rng, 130, 90)
    args = [kernel_device.put(a) for a in (x, w, dy)]
    first = [kernel_device.get(a) for a in kernel_device.ops.linear_backward(*args)]
    second = [kernel_device.get(a) for a in kernel_device.ops.linear_backward(*args)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.emu
def test_linear_identical_in_every_thread_order(monkeypatch, cpu):
    """The emulator's thread order between barriers must not change a correct kernel's
    result, bit for bit (each output element is one thread's fixed-order sum)."""
    emu = ccn.backend("emu")
    rng = np.random.default_rng(11)
    x, w, b, dy = randn(rng, 67, 45), randn(rng, 70, 45), randn(rng, 70), randn(rng, 67, 70)
    results = {}
    for order in ("forward", "reverse", "shuffle:5"):
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        results[order] = [emu.linear(x, w, b), *emu.linear_backward(x, w, dy)]
    for order, outs in results.items():
        for a, ref in zip(outs, results["forward"]):
            np.testing.assert_array_equal(a, ref, err_msg=order)
    assert_kernel_close("linear", results["forward"][0], reference(cpu, x, w, b))


def test_linear_rejects_bad_input(kernel_device):
    rng = np.random.default_rng(0)
    x, w = randn(rng, 4, 5), randn(rng, 3, 5)
    ops, put = kernel_device.ops, kernel_device.put
    with pytest.raises(TypeError, match="float32"):
        ops.linear(put(x.astype(np.float64)), put(w.astype(np.float64)))
    with pytest.raises(ValueError, match="w has 6 inputs"):
        ops.linear(put(x), put(randn(rng, 3, 6)))
    with pytest.raises(ValueError, match="contiguous"):
        ops.linear(put(randn(rng, 5, 4)).T, put(w))
    with pytest.raises(ValueError, match="b must have shape"):
        ops.linear(put(x), put(w), put(randn(rng, 4)))
    with pytest.raises(TypeError, match="must be an array"):
        ops.linear(x.tolist(), put(w))


@pytest.mark.emu
def test_emu_refuses_device_arrays_it_cannot_read():
    emu = ccn.backend("emu")

    class Fake:
        shape, dtype, ndim = (2, 2), np.dtype(np.float32), 2

        class flags:
            c_contiguous = True

    with pytest.raises(TypeError, match="NumPy arrays"):
        emu.linear(Fake(), np.ones((2, 2), np.float32))


@pytest.mark.parametrize("precision,splits", [("fp32", 0), ("fp32", 3), ("tf32", 0)])
def test_linear_backward_accumulates_dx_in_place(kernel_device, cpu, monkeypatch, precision, splits):
    """dx_accumulate: the dx GEMM runs with beta = 1 into the given array, which comes back
    as dx and equals the separate sum `prior + dx` bit for bit (alpha = beta = 1 make the
    epilogue, or split-K's reduction, one rounding of the same two floats); dw and db are
    unchanged."""
    dev = kernel_device
    monkeypatch.setattr(dev.ops, "gemm_splits", splits)
    rng = np.random.default_rng(7)
    x, w, dy = randn(rng, 5, 70), randn(rng, 9, 70), randn(rng, 5, 9)
    prior = randn(rng, 5, 70)
    for ops, put, get in ((dev.ops, dev.put, dev.get), (cpu, np.asarray, np.asarray)):
        dx, dw, db = (get(a) for a in ops.linear_backward(put(x), put(w), put(dy), precision=precision))
        acc = put(prior.copy())
        got = ops.linear_backward(put(x), put(w), put(dy), precision=precision, dx_accumulate=acc)
        assert got[0] is acc
        np.testing.assert_array_equal(get(got[0]), prior + dx)
        np.testing.assert_array_equal(get(got[1]), dw)
        np.testing.assert_array_equal(get(got[2]), db)
        with pytest.raises(ValueError, match=r"linear_backward: dx_accumulate must have shape \(5, 70\)"):
            ops.linear_backward(put(x), put(w), put(dy), dx_accumulate=put(prior[:, :69].copy()))


# ---------------------------------------------------------------- split-K
#: The emulator's multiprocessor count (csrc/simt/simt.h): the SM count of an H100 SXM.
EMU_SMS = 132
#: Resident blocks per SM of gemm_kernel1 / gemm_kernel2 (csrc/gemm.cu): one wave is SMs x this.
BLOCKS_PER_SM = {1: 4, 2: 2}
TILE = {1: 64, 2: 128}


def fc_gemms(batch):
    """(name, M, N, K) of every float32 GEMM of the AlexNet FC layers: forward, dgrad, wgrad."""
    out = []
    for name, fan_in, fan_out in fc_layers():
        out += [(f"{name} fwd", batch, fan_out, fan_in), (f"{name} dgrad", batch, fan_in, fan_out),
                (f"{name} wgrad", fan_out, fan_in, batch)]
    return out


@pytest.mark.emu
@pytest.mark.parametrize("name,m,n,k", fc_gemms(128), ids=[g[0] for g in fc_gemms(128)])
def test_every_alexnet_fc_gemm_fills_a_wave_at_batch_128(name, m, n, k):
    """The launcher's plan on the emulator's 132 SMs: tiles x K slices >= one full wave,
    slices of whole K steps that cover K exactly once, a workspace of one [M, N] slab per slice."""
    plan = ccn.backend("emu").gemm_plan(m, n, k)
    v = plan["version"]
    assert v == 2, name  # M, N >= 128: the 128 x 128 tile
    blocks = -(-m // TILE[v]) * -(-n // TILE[v]) * plan["splits"]
    assert blocks >= EMU_SMS * BLOCKS_PER_SM[v], f"{name}: {blocks} blocks, {plan}"
    assert plan["k_chunk"] % 16 == 0 or plan["k_chunk"] == k
    assert (plan["splits"] - 1) * plan["k_chunk"] < k <= plan["splits"] * plan["k_chunk"]
    assert plan["workspace_floats"] == (plan["splits"] * m * n if plan["splits"] > 1 else 0)


@pytest.mark.emu
def test_gemm_plan_policy():
    ops = ccn.backend("emu")
    # A grid that already fills the wave (16 x 32 tiles of 128) is not split.
    assert ops.gemm_plan(2048, 4096, 4096)["splits"] == 1
    assert ops.gemm_plan(1024, 1024, 4096)["splits"] == 6  # 64 tiles need >= 5 slices: 816 rounded down, 688 even
    assert ops.ext.gemm_plan(40, 70, 100, splits=3) == {"version": 1, "splits": 3, "k_chunk": 48,
                                                          "workspace_floats": 3 * 40 * 70}
    assert ops.ext.gemm_plan(40, 70, 100, splits=1)["splits"] == 1
    # No slice shorter than 64 when automatic: K = 100 on one tile gives 2 slices, not 16.
    assert ops.ext.gemm_plan(8, 8, 100) == {"version": 1, "splits": 2, "k_chunk": 64, "workspace_floats": 128}
    assert ops.ext.gemm_plan(8, 8, 64)["splits"] == 1
    assert ops.ext.gemm_plan(8, 8, 9, version=2)["version"] == 2
    with pytest.raises(ValueError, match="version must be 0"):
        ops.ext.gemm_plan(8, 8, 8, version=3)
    with pytest.raises(ValueError, match="splits must be >= 0"):
        ops.ext.gemm_plan(8, 8, 8, splits=-1)


@pytest.mark.emu
def test_gemm_split_needs_its_workspace():
    emu = ccn.backend("emu")
    a = np.ones(64 * 64, np.float32)
    c = np.full(64, np.nan, np.float32)
    with pytest.raises(ValueError, match="null workspace"):
        emu.ext.gemm(a.ctypes.data, a.ctypes.data, c.ctypes.data, 0, 1, 64, 64, False, False, splits=2)
    ws = np.empty(64, np.float32)
    with pytest.raises(ValueError, match="workspace too small: 64 floats given, 128 needed"):
        emu.ext.gemm(a.ctypes.data, a.ctypes.data, c.ctypes.data, 0, 1, 64, 64, False, False, workspace=ws.ctypes.data,
                     workspace_floats=64, splits=2)
    # Automatic without a workspace: unsplit, and right.
    emu.ext.gemm(a.ctypes.data, a.ctypes.data, c.ctypes.data, 0, 1, 64, 64, False, False)
    np.testing.assert_array_equal(c, np.full(64, 64, np.float32))


@pytest.mark.parametrize("splits", [1, 3, 0])
@pytest.mark.parametrize(
    "n,fan_in,fan_out",
    [
        (9, 200, 30),     # kernel1: the forward's K = 200 in 1, 3 or (automatic) 4 slices
        (130, 100, 129),  # kernel2 forward and dgrad (M = 130); wgrad K = 130
        (3, 1, 200),      # K = 1: never split
    ],
)
def test_linear_split_and_unsplit_match_reference(kernel_device, cpu, monkeypatch, splits, n, fan_in, fan_out):
    """Every GEMM of linear / linear_backward with split-K forced off, forced to 3 slices,
    and as the launcher picks (which splits these small grids), against the reference;
    the epilogue (bias, ReLU) applied once, after the slices are summed."""
    monkeypatch.setattr(type(kernel_device.ops), "gemm_splits", splits)
    check_linear(kernel_device, cpu, n, fan_in, fan_out, True, seed=splits * 7 + n)


def test_linear_split_is_deterministic(kernel_device, monkeypatch):
    """The slices are summed in order by a second kernel (no atomics): bit-identical runs,
    and (on the emulator) the same bits in every thread order."""
    monkeypatch.setattr(type(kernel_device.ops), "gemm_splits", 4)
    rng = np.random.default_rng(13)
    x, w, b, dy = randn(rng, 130, 200), randn(rng, 140, 200), randn(rng, 140), randn(rng, 130, 140)
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    assert ops.gemm_plan(130, 140, 200)["splits"] == 4

    def run():
        return [get(ops.linear(put(x), put(w), put(b), relu=True)),
                *(get(a) for a in ops.linear_backward(put(x), put(w), put(dy)))]

    first = run()
    orders = ("reverse", "shuffle:3") if kernel_device.name == "emu" else ("again",)
    for order in orders:
        monkeypatch.setenv("CCN_SIMT_ORDER", order)
        for a, ref in zip(run(), first):
            np.testing.assert_array_equal(a, ref, err_msg=order)


@pytest.mark.slow
@pytest.mark.alexnet_shapes
def test_linear_alexnet_fc8_at_batch_128(kernel_device, cpu):
    """fc8 at batch 128 (4096 -> 1000): forward 128 x 1000 x 4096 split into 37 slices of
    K = 112 on 132 SMs, dgrad 128 x 4096 x 1000 into 11, wgrad 1000 x 4096 x 128 into 2."""
    ops = kernel_device.ops
    if kernel_device.name == "emu":
        assert [ops.gemm_plan(*mnk)["splits"] for mnk in ((128, 1000, 4096), (128, 4096, 1000),
                                                          (1000, 4096, 128))] == [37, 11, 2]
    rng = np.random.default_rng(8)
    x, dy = randn(rng, 128, 4096), randn(rng, 128, 1000)
    w, b = randn(rng, 1000, 4096) / np.float32(64), randn(rng, 1000)
    y = kernel_device.get(ops.linear(kernel_device.put(x), kernel_device.put(w), kernel_device.put(b), relu=True))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert_kernel_close("linear", y, cpu.linear(x64, w64, b.astype(np.float64), relu=True))
    got = [kernel_device.get(a) for a in ops.linear_backward(*(kernel_device.put(a) for a in (x, w, dy)))]
    for g, want in zip(got, cpu.linear_backward(x64, w64, dy.astype(np.float64))):
        assert_kernel_close("linear_backward", g, want)
