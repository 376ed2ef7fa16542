"""The SGD update (paper §5), the whole op family: the fused kernel (csrc/sgd.cuh), bit for
bit the float32 reference (the kernel forbids FMA contraction), every tensor of the net in
ONE launch; then the reference: the paper's rule in place, float32 within the kernel
tolerance, torch.optim.SGD as the oracle (equal while the learning rate is constant,
different by exactly the documented amount on the step where it changes) and argument
errors."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned
from reference_support import F32, F64, arr, assert_attains
from tolerances import tol
from torch_oracle import assert_close, needs_torch, torch

from cuda_convnet import reference as R
from cuda_convnet.alexnet_shapes import param_shapes
from cuda_convnet.backends.device import BackendDevice

# AlexNet's parameters (§3.5, two towers as groups=2): conv KRSC weights and biases, FC
# (out, in) weights and biases; 16 tensors, 60,965,224 numbers.
ALEXNET_SHAPES = param_shapes()


def make_state(rng, shapes, make=np.ascontiguousarray):
    ws = [make(randn(rng, *s)) for s in shapes]
    gs = [make(randn(rng, *s)) for s in shapes]
    vs = [make(0.01 * randn(rng, *s)) for s in shapes]
    return ws, gs, vs


def check_sgd(dev, cpu, ws, gs, vs, expect_launches=1, keep_alignment=False, **hyper):
    ref_w, ref_v = [w.copy() for w in ws], [v.copy() for v in vs]
    cpu.sgd_update(ref_w, gs, ref_v, **hyper)
    # The float64 reference on the same float32 values (before the emu backend, whose put()
    # need not copy, updates ws and vs in place).
    w64, v64 = [w.astype(np.float64) for w in ws], [v.astype(np.float64) for v in vs]
    cpu.sgd_update(w64, [g.astype(np.float64) for g in gs], v64, **hyper)
    dw, dg, dv = [[dev.put(a, keep_alignment=keep_alignment) for a in arrays] for arrays in (ws, gs, vs)]
    assert dev.ops.sgd_update(dw, dg, dv, **hyper) is None
    assert dev.ops.last_sgd_launches == expect_launches
    for i, (w, v) in enumerate(zip(dw, dv)):
        np.testing.assert_array_equal(dev.get(w), ref_w[i], err_msg=f"params[{i}]")
        np.testing.assert_array_equal(dev.get(v), ref_v[i], err_msg=f"velocities[{i}]")
    for a, b in zip(dw + dv, w64 + v64):
        np.testing.assert_allclose(dev.get(a), b, **tol("sgd_update", "kernel_vs_reference"))


shapes_st = st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple), min_size=1, max_size=6)


@given(shapes=shapes_st, lr=st.sampled_from([0.01, 0.001, 0.1, 0.0]), momentum=st.sampled_from([0.9, 0.0, 0.5]),
       weight_decay=st.sampled_from([5e-4, 0.0, 0.01]), seed=st.integers(0, 2**31))
def test_sgd_matches_reference_bit_for_bit(kernel_device, cpu, shapes, lr, momentum, weight_decay, seed):
    ws, gs, vs = make_state(np.random.default_rng(seed), shapes)
    check_sgd(kernel_device, cpu, ws, gs, vs, lr=lr, momentum=momentum, weight_decay=weight_decay)


@pytest.mark.emu
def test_sgd_mixes_aligned_and_unaligned_tensors_in_one_launch(cpu):
    """Unaligned tensors take scalar units, aligned ones float4 units, in the same launch."""
    rng = np.random.default_rng(1)
    shapes = [(37,), (8, 5), (1,), (4, 4), (1001,)]
    ws, gs, vs = make_state(rng, shapes)
    for i in (0, 3):  # one tensor with all three unaligned, one with only g unaligned
        ws[i], gs[i], vs[i] = unaligned(ws[i]), unaligned(gs[i]), unaligned(vs[i])
    gs[1] = unaligned(gs[1])
    check_sgd(BackendDevice("emu"), cpu, ws, gs, vs, keep_alignment=True, lr=0.01)


def test_sgd_more_tensors_than_one_table(kernel_device, cpu):
    """70 tensors (the table holds 64): two launches, same result; empty tensors skipped."""
    rng = np.random.default_rng(2)
    shapes = [(int(rng.integers(1, 20)),) for _ in range(70)]
    shapes[3] = (0,)
    ws, gs, vs = make_state(rng, shapes)
    check_sgd(kernel_device, cpu, ws, gs, vs, expect_launches=2, lr=0.01)


def test_sgd_empty_list(kernel_device):
    assert kernel_device.ops.sgd_update([], [], [], lr=0.01) is None
    assert kernel_device.ops.last_sgd_launches == 0


@pytest.mark.alexnet_shapes
def test_sgd_alexnet_parameters_in_one_launch(kernel_device, cpu, capsys):
    """All 16 AlexNet tensors (61M parameters) updated by one launch, bit for bit."""
    rng = np.random.default_rng(3)
    # Uniform values are much cheaper to draw than normals at 61M.
    ws = [rng.random(s, dtype=np.float32) + 0.5 for s in ALEXNET_SHAPES]
    gs = [rng.random(s, dtype=np.float32) - 1.5 for s in ALEXNET_SHAPES]
    vs = [rng.random(s, dtype=np.float32) * 0.01 + 0.001 for s in ALEXNET_SHAPES]
    assert sum(w.size for w in ws) == 60_965_224
    ref_w, ref_v = [w.copy() for w in ws], [v.copy() for v in vs]
    cpu.sgd_update(ref_w, gs, ref_v, lr=0.01)
    dev = kernel_device
    dw, dg, dv = [dev.put(w) for w in ws], [dev.put(g) for g in gs], [dev.put(v) for v in vs]
    t = time.perf_counter()
    dev.ops.sgd_update(dw, dg, dv, lr=0.01)
    if dev.name == "cuda":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    dt = time.perf_counter() - t
    with capsys.disabled():
        print(f"\n[{dev.name}] sgd_update over AlexNet's 61.0M parameters: {dt:.3f} s")
    assert dev.ops.last_sgd_launches == 1
    for i in range(len(ws)):
        assert np.array_equal(dev.get(dw[i]), ref_w[i]), f"params[{i}] {ALEXNET_SHAPES[i]}"
        assert np.array_equal(dev.get(dv[i]), ref_v[i]), f"velocities[{i}] {ALEXNET_SHAPES[i]}"


def test_sgd_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    w, g, v = (put(np.ones((3, 2), np.float32)) for _ in range(3))
    with pytest.raises(TypeError, match="float32"):
        ops.sgd_update([put(np.ones((3, 2)))], [put(np.ones((3, 2)))], [put(np.ones((3, 2)))], lr=0.1)
    with pytest.raises(ValueError, match="same length"):
        ops.sgd_update([w], [g, g], [v], lr=0.1)
    with pytest.raises(ValueError, match=r"grads\[0\] must have shape"):
        ops.sgd_update([w], [put(np.ones((2, 3), np.float32))], [v], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        ops.sgd_update([w], [g], [v], lr=-1.0)
    with pytest.raises(TypeError, match="list of arrays"):
        ops.sgd_update(w, g, v, lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] overlap in memory"):
        ops.sgd_update([w, w], [g, g], [v, put(np.ones((3, 2), np.float32))], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] and velocities\[0\] overlap in memory"):
        ops.sgd_update([w], [g], [w], lr=0.1)


# ----------------------------------------------------------------------------- reference: definition

def test_sgd_update_is_the_papers_rule_in_place():
    w = np.array([1.0, -2.0])
    v = np.array([0.5, 0.0])
    g = np.array([0.3, 0.1])
    w_id, v_id = id(w), id(v)
    out = R.sgd_update([w], [g], [v], lr=0.01)
    assert out is None and id(w) == w_id and id(v) == v_id
    v_expected = 0.9 * np.array([0.5, 0.0]) - 0.0005 * 0.01 * np.array([1.0, -2.0]) \
        - 0.01 * np.array([0.3, 0.1])
    np.testing.assert_allclose(v, v_expected, rtol=1e-15)
    np.testing.assert_allclose(w, np.array([1.0, -2.0]) + v_expected, rtol=1e-15)


def test_sgd_updates_every_tensor_of_the_list():
    rng = np.random.default_rng(6)
    shapes = [(3, 4), (4,), (2, 3, 3, 1)]
    ws = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    vs = [np.zeros(s, np.float32) for s in shapes]
    before = [w.copy() for w in ws]
    R.sgd_update(ws, gs, vs, lr=0.1, momentum=0.5, weight_decay=0.01)
    for w, w0, g, v in zip(ws, before, gs, vs):
        assert w.dtype == np.float32 and v.dtype == np.float32
        np.testing.assert_allclose(v, -0.001 * w0 - 0.1 * g, rtol=1e-6)
        np.testing.assert_allclose(w, w0 + v, rtol=1e-6)


# ---------------------------------------------------------------------- reference: float32 within the kernel tolerance

def test_sgd_update_float32_attains_the_kernel_tolerance():
    rng = np.random.default_rng(4)
    w = rng.standard_normal(1000).astype(F32)
    v = (rng.standard_normal(1000) * 0.01).astype(F32)
    g = rng.standard_normal(1000).astype(F32)
    w64, v64 = w.astype(F64), v.astype(F64)
    for _ in range(3):
        R.sgd_update([w], [g], [v], lr=0.01)
        R.sgd_update([w64], [g.astype(F64)], [v64], lr=0.01)
    assert_attains("sgd_update", (w, v), (w64, v64))


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

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


@needs_torch
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


@needs_torch
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


# ----------------------------------------------------------------------------- bad input

def test_sgd_errors():
    w, g, v = arr(3), arr(3), arr(3)
    with pytest.raises(ValueError, match="sgd_update: params, grads and velocities must "
                                         "have the same length"):
        R.sgd_update([w], [g, g], [v], lr=0.1)
    with pytest.raises(ValueError, match=r"sgd_update: grads\[0\] must have shape \(3\)"):
        R.sgd_update([w], [arr(4)], [v], lr=0.1)
    with pytest.raises(ValueError, match=r"sgd_update: velocities\[0\] must be C-contiguous"):
        R.sgd_update([arr(3, 3)], [arr(3, 3)], [arr(3, 3).T], lr=0.1)
    with pytest.raises(TypeError, match=r"sgd_update: velocities\[0\] has dtype float32"):
        R.sgd_update([w], [g], [arr(3, dtype=np.float32)], lr=0.1)
    with pytest.raises(ValueError, match="sgd_update: lr must be >= 0"):
        R.sgd_update([w], [g], [v], lr=-0.1)
    with pytest.raises(TypeError, match="sgd_update: params must be a list"):
        R.sgd_update(w, [g], [v], lr=0.1)
    ro = arr(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        R.sgd_update([ro], [g], [v], lr=0.1)
