"""The fused SGD update (csrc/sgd.cuh, paper §5): bit for bit the float32 reference
(the kernel forbids FMA contraction), every tensor of the net in ONE launch."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned
from tolerances import tol

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
