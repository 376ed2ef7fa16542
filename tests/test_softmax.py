"""Softmax cross-entropy and top-k errors, the whole op family: the kernels
(csrc/softmax.cuh) against the reference (loss and probabilities within the table's
tolerance, the gradient bit for bit (same operations in the same order), top-k counts exact
with the reference's rule: a label tied with the k-th class, or a non-finite row, is an
error); then the reference: stability, the mean gradient, ties, its gradient (central
differences, float64), float32 within the kernel tolerance, PyTorch's cross_entropy as the
oracle, argument errors and the launchers' index bounds."""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import assert_same_in_every_order, emu_ext, host_ptr, in_every_thread_order, randn
from reference_support import F32, F64, arr, assert_attains, both
from tolerances import tol
from torch_oracle import F, assert_close, needs_torch, torch

import cuda_convnet as ccn
from cuda_convnet import checks
from cuda_convnet import reference as R


def check_softmax(dev, cpu, logits, labels):
    loss, probs = dev.ops.softmax_cross_entropy(dev.put(logits), dev.put(labels))
    probs = dev.get(probs)
    loss = float(loss)
    want_loss, want_probs = cpu.softmax_cross_entropy(logits.astype(np.float64), labels)
    t = tol("softmax_cross_entropy", "kernel_vs_reference")
    np.testing.assert_allclose(probs, want_probs, **t)
    np.testing.assert_allclose(loss, want_loss, **t)
    d = dev.get(dev.ops.softmax_cross_entropy_backward(dev.put(probs), dev.put(labels)))
    np.testing.assert_array_equal(d, cpu.softmax_cross_entropy_backward(probs, labels))
    np.testing.assert_allclose(d, cpu.softmax_cross_entropy_backward(want_probs, labels),
                               **tol("softmax_cross_entropy_backward", "kernel_vs_reference"))
    return loss, probs


@given(n=st.integers(1, 6), classes=st.one_of(st.integers(1, 40), st.integers(250, 300)),
       scale=st.sampled_from([1.0, 10.0]), seed=st.integers(0, 2**31))
def test_softmax_cross_entropy_matches_reference(kernel_device, cpu, n, classes, scale, seed):
    rng = np.random.default_rng(seed)
    logits = scale * randn(rng, n, classes)
    labels = rng.integers(0, classes, n)
    check_softmax(kernel_device, cpu, logits, labels)


@pytest.mark.alexnet_shapes
def test_softmax_alexnet_output(kernel_device, cpu):
    """fc8 at batch 2: 2 x 1000 (and batch 128's row count with 1000 classes)."""
    rng = np.random.default_rng(1000)
    check_softmax(kernel_device, cpu, 3 * randn(rng, 2, 1000), np.array([7, 999]))
    check_softmax(kernel_device, cpu, 3 * randn(rng, 128, 1000), rng.integers(0, 1000, 128))


def test_softmax_is_stable_for_huge_logits(kernel_device, cpu):
    logits = np.array([[1e4, 0, -1e4], [-3e38, 3e38, 0]], np.float32)
    loss, probs = check_softmax(kernel_device, cpu, logits, np.array([1, 1]))
    assert np.isfinite(loss) and np.isfinite(probs).all()


def test_softmax_label_dtypes_and_loss_type(kernel_device, cpu):
    rng = np.random.default_rng(4)
    logits = randn(rng, 3, 5)
    for dt in (np.int64, np.int32, np.uint8, np.int16):
        labels = np.array([0, 4, 2], dt)
        loss, _ = kernel_device.ops.softmax_cross_entropy(kernel_device.put(logits), kernel_device.put(labels))
        assert loss.dtype == np.float32 and np.isfinite(float(loss))
    if kernel_device.name == "emu":
        assert isinstance(loss, np.float32)  # like the reference's NumPy scalar


def brute_force_topk(probs, labels, k):
    """The rule spelt out one example at a time, independently of the vectorised reference."""
    errors = 0
    for row, label in zip(probs.tolist(), labels.tolist()):
        if not all(np.isfinite(row)):
            errors += 1
            continue
        at_least = sum(1 for c, v in enumerate(row) if c != label and v >= row[label])
        errors += at_least >= k
    return errors


@given(n=st.integers(1, 8), classes=st.integers(1, 12), levels=st.integers(1, 4), seed=st.integers(0, 2**31),
       ks=st.lists(st.integers(1, 14), min_size=1, max_size=4),
       poison=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_topk_matches_reference_with_ties(kernel_device, cpu, n, classes, levels, seed, ks, poison):
    """Probabilities drawn from a few levels: many ties, each one counted against the model;
    optionally one non-finite value in a random row (an error for every k)."""
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, levels, (n, classes)).astype(np.float32) / levels
    labels = rng.integers(0, classes, n)
    if poison is not None:
        probs[rng.integers(0, n), rng.integers(0, classes)] = poison
    got = kernel_device.ops.topk_errors(kernel_device.put(probs), kernel_device.put(labels), ks=ks)
    want = cpu.topk_errors(probs, labels, ks=ks)
    assert got == want
    assert want == {k: brute_force_topk(probs, labels, k) for k in ks}


@pytest.mark.parametrize("name", ["cpu", "emu"])
def test_topk_uniform_output_is_all_errors(name):
    """A uniform output (e.g. fc8 weights all zero) ties every class: 100 % error, not 0 %."""
    got = ccn.backend(name).topk_errors(np.full((4, 10), .1, np.float32), np.arange(4))
    assert got == {1: 4, 5: 4}


# (probs row, label, ks, {k: errors}): ties at the k-th place, non-finite rows, all-equal rows.
TOPK_CASES = [
    ([.4, .4, .2], 0, (1, 2), {1: 1, 2: 0}),             # tied for first: top-1 error, top-2 correct
    ([.4, .4, .2], 1, (1, 2), {1: 1, 2: 0}),             # same from the other side (no order bias)
    ([.5, .3, .1, .1], 2, (3, 4), {3: 1, 4: 0}),          # two above and a tie: top-3 error, top-4 ok
    ([.3, .3, .3, .1], 0, (2, 3), {2: 1, 3: 0}),          # tied with exactly k-1 = 2 others: top-3 ok
    ([.3, .3, .3, .1], 0, (1, 2), {1: 1, 2: 1}),          # ... with k-1 = 1 other's room: errors
    ([.7, .2, .1], 0, (1, 5), {1: 0, 5: 0}),              # a strict maximum is correct
    ([.25, .25, .25, .25], 3, (1, 3, 4, 9), {1: 1, 3: 1, 4: 0, 9: 0}),  # all equal: needs k >= classes
    ([np.nan, .5, .5], 1, (1, 5), {1: 1, 5: 1}),          # NaN elsewhere in the row
    ([.5, np.nan, .5], 1, (1, 5), {1: 1, 5: 1}),          # NaN at the label
    ([np.inf, .1, .1], 0, (1, 5), {1: 1, 5: 1}),          # +inf at the label (would rank first)
    ([-np.inf, .9, .1], 1, (1,), {1: 1}),                 # -inf elsewhere
    ([1.0], 0, (1, 5), {1: 0, 5: 0}),                     # one class
]


@pytest.mark.parametrize("row, label, ks, want", TOPK_CASES)
def test_topk_rule_instances(kernel_device, cpu, row, label, ks, want):
    probs, labels = np.array([row], F32), np.array([label])
    assert cpu.topk_errors(probs, labels, ks=ks) == want
    assert kernel_device.ops.topk_errors(kernel_device.put(probs), kernel_device.put(labels), ks=ks) == want


@pytest.mark.alexnet_shapes
def test_topk_alexnet_and_many_ks(kernel_device, cpu):
    rng = np.random.default_rng(5)
    _, probs = cpu.softmax_cross_entropy(3 * randn(rng, 64, 1000), rng.integers(0, 1000, 64))
    labels = rng.integers(0, 1000, 64)
    ks = list(range(1, 40, 2))  # 20 values of k: two launches of the 16-entry list
    got = kernel_device.ops.topk_errors(kernel_device.put(probs), kernel_device.put(labels), ks=ks)
    assert got == cpu.topk_errors(probs, labels, ks=ks)
    assert kernel_device.ops.topk_errors(kernel_device.put(probs), kernel_device.put(labels)) == \
        cpu.topk_errors(probs, labels)


@pytest.mark.emu
def test_softmax_identical_in_every_thread_order(monkeypatch):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(6)
    logits, labels = randn(rng, 5, 333), rng.integers(0, 333, 5)

    def run():
        loss, probs = emu.softmax_cross_entropy(logits, labels)
        return [loss, probs, np.array(list(emu.topk_errors(probs, labels).values()))]

    assert_same_in_every_order(in_every_thread_order(monkeypatch, run))


def test_softmax_empty_batch(kernel_device):
    logits, labels = kernel_device.put(np.ones((0, 4), np.float32)), kernel_device.put(np.zeros(0, np.int64))
    loss, probs = kernel_device.ops.softmax_cross_entropy(logits, labels)
    assert float(loss) == 0 and probs.shape == (0, 4)
    assert kernel_device.ops.softmax_cross_entropy_backward(probs, labels).shape == (0, 4)
    assert kernel_device.ops.topk_errors(probs, labels) == {1: 0, 5: 0}


def test_softmax_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    logits = put(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        ops.softmax_cross_entropy(logits, put(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        ops.softmax_cross_entropy_backward(logits, put(np.array([0, -1, 1])))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        ops.topk_errors(logits, put(np.array([0, 9, 1])))
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        ops.softmax_cross_entropy(logits, put(np.array([0.0, 1.0, 2.0])))
    with pytest.raises(TypeError, match="float32"):
        ops.softmax_cross_entropy(put(np.ones((3, 4))), put(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"labels must have shape \(3\)"):
        ops.softmax_cross_entropy(logits, put(np.array([0, 1])))
    with pytest.raises(ValueError, match="ks entry must be >= 1"):
        ops.topk_errors(logits, put(np.array([0, 1, 2])), ks=(0,))


def test_check_labels_false_skips_only_the_range_check(kernel_device, monkeypatch):
    """check_labels=False (for labels checked once, outside a timed loop) gives the same
    results and makes no label-range read; the default still refuses bad labels."""
    from cuda_convnet.backends.kernel_ops import softmax as softmax_ops

    rng = np.random.default_rng(12)
    logits = rng.standard_normal((6, 11)).astype(np.float32)
    labels = rng.integers(0, 11, 6).astype(np.int32)
    ops, put, get = kernel_device.ops, kernel_device.put, kernel_device.get
    loss, probs = ops.softmax_cross_entropy(put(logits), put(labels))
    d = ops.softmax_cross_entropy_backward(probs, put(labels))
    checked = []
    real = softmax_ops._check_label_values
    monkeypatch.setattr(softmax_ops, "_check_label_values", lambda *a: checked.append(a[0]) or real(*a))
    loss2, probs2 = ops.softmax_cross_entropy(put(logits), put(labels), check_labels=False)
    d2 = ops.softmax_cross_entropy_backward(probs2, put(labels), check_labels=False)
    assert checked == []
    assert float(get(loss2)) == float(get(loss))
    np.testing.assert_array_equal(get(probs2), get(probs))
    np.testing.assert_array_equal(get(d2), get(d))
    bad = labels.copy()
    bad[2] = 11
    with pytest.raises(ValueError, match="label"):
        ops.softmax_cross_entropy(put(logits), put(bad))
    assert checked == ["softmax_cross_entropy"]


def test_topk_counts_on_device_and_unchecked(kernel_device, cpu, monkeypatch):
    """on_device=True: the same counts as an int32 array (ks order) left on the device, for
    a caller that reads them with the loss in one transfer; check_labels=False reads no
    label back. The reference takes the same keywords."""
    from cuda_convnet.backends.kernel_ops import softmax as softmax_ops

    rng = np.random.default_rng(13)
    _, probs = cpu.softmax_cross_entropy(3 * randn(rng, 40, 17), rng.integers(0, 17, 40))
    labels = rng.integers(0, 17, 40)
    want = cpu.topk_errors(probs, labels, ks=(1, 3, 5))
    assert 0 < want[1] < 40
    checked = []
    real = softmax_ops._check_label_values
    monkeypatch.setattr(softmax_ops, "_check_label_values", lambda *a: checked.append(a[0]) or real(*a))
    got = kernel_device.ops.topk_errors(kernel_device.put(probs), kernel_device.put(labels), ks=(1, 3, 5),
                                        check_labels=False, on_device=True)
    assert checked == []
    assert type(got).__module__.split(".")[0] == ("cupy" if kernel_device.name == "cuda" else "numpy")
    host = kernel_device.get(got)
    assert host.dtype == np.int32 and host.tolist() == [want[1], want[3], want[5]]
    ref = cpu.topk_errors(probs, labels, ks=(1, 3, 5), check_labels=False, on_device=True)
    assert ref.dtype == np.int32 and ref.tolist() == host.tolist()


# ----------------------------------------------------------------------------- reference: definition

def test_softmax_is_stable_and_keeps_dtype():
    z = np.array([[1e4, 0.0, -1e4], [3.0, 3.0, 3.0]], dtype=np.float32)
    loss, probs = R.softmax_cross_entropy(z, np.array([1, 2]))
    assert loss.dtype == np.float32 and probs.dtype == np.float32
    assert np.isfinite(loss) and np.isfinite(probs).all()
    np.testing.assert_allclose(float(loss), (1e4 + np.log(3)) / 2, rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)


def test_softmax_backward_is_mean_gradient():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    d = R.softmax_cross_entropy_backward(probs, np.array([1, 0]))
    np.testing.assert_allclose(d, [[0.1, -0.1], [-0.2, 0.2]], rtol=1e-14)


def test_topk_errors_and_ties():
    probs = np.array([
        [0.1, 0.6, 0.3],    # label 1: top-1 correct
        [0.5, 0.5, 0.0],    # label 1 tied with class 0: a tie counts against -> top-1 error
        [0.2, 0.3, 0.5],    # label 0: two classes at least as probable
        [0.4, 0.35, 0.25],  # label 2: two classes at least as probable
    ])
    labels = np.array([1, 1, 0, 2])
    assert R.topk_errors(probs, labels) == {1: 3, 5: 0}
    assert R.topk_errors(probs, labels, ks=(1, 2, 3)) == {1: 3, 2: 2, 3: 0}
    probs[0, 2] = np.nan  # a non-finite row is an error for every k
    assert R.topk_errors(probs, labels, ks=(1, 2, 3)) == {1: 4, 2: 3, 3: 1}


# ----------------------------------------------------------------------------- reference: gradient check (float64)

def _softmax_check(n, classes, rng, elementwise=False):
    z = rng.standard_normal((n, classes)) * 3
    labels = rng.integers(0, classes, size=n)
    fwd = lambda z: R.softmax_cross_entropy(z, labels)[0]
    bwd = lambda ins, loss, g: (
        R.softmax_cross_entropy_backward(R.softmax_cross_entropy(ins[0], labels)[1], labels) * g,)
    check_op("softmax_cross_entropy", fwd, bwd, [z], rng=rng, elementwise=elementwise)


@SETTINGS
@given(n=st.integers(1, 6), classes=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy_gradcheck(n, classes, seed):
    _softmax_check(n, classes, rng_from(seed))


def test_softmax_cross_entropy_elementwise():
    _softmax_check(3, 5, rng_from(6), elementwise=True)


# ---------------------------------------------------------------------- reference: float32 within the kernel tolerance

def test_softmax_and_topk_float32_attain_the_kernel_tolerance():
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((32, 1000)) * 4).astype(F32)
    labels = rng.integers(0, 1000, 32)
    (l32, p32), (l64, p64) = both(R.softmax_cross_entropy, z, labels)
    assert_attains("softmax_cross_entropy", (l32, p32), (l64, p64))
    assert_attains("softmax_cross_entropy_backward",
                   *both(R.softmax_cross_entropy_backward, p32, labels))
    assert R.topk_errors(p32, labels) == R.topk_errors(p32.astype(F64), labels)


# ----------------------------------------------------------------------------- reference vs PyTorch (float64)

@needs_torch
def test_softmax_cross_entropy_vs_torch():
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


# ----------------------------------------------------------------------------- bad input

def test_softmax_errors():
    z = arr(3, 5)
    with pytest.raises(TypeError, match="softmax_cross_entropy: labels must have an integer"):
        R.softmax_cross_entropy(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must have shape \(3\)"):
        R.softmax_cross_entropy(z, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must be in \[0, 5\)"):
        R.softmax_cross_entropy(z, np.array([0, 5, 1]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_backward: labels must be in"):
        R.softmax_cross_entropy_backward(z, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"topk_errors: ks entry must be >= 1"):
        R.topk_errors(z, np.array([0, 1, 2]), ks=(0,))
    with pytest.raises(TypeError, match=r"topk_errors: ks must be a sequence"):
        R.topk_errors(z, np.array([0, 1, 2]), ks=5)


# ----------------------------------------------------------------------------- index bounds

MAX = checks.MAX_EXTENT


INT_MAX = 2**31 - 1


def test_softmax_launchers_refuse_class_counts_whose_loop_would_wrap():
    a, labels, counts = np.ones(4, np.float32), np.zeros(1, np.int32), np.zeros(2, np.int32)
    with pytest.raises(ValueError, match=rf"classes = {INT_MAX} is larger than {MAX}"):
        emu_ext().softmax_cross_entropy(logits=host_ptr(a), labels=host_ptr(labels), probs=host_ptr(a),
                                        row_loss=host_ptr(a), loss=host_ptr(a), rows=1, classes=INT_MAX)
    with pytest.raises(ValueError, match=rf"classes = {INT_MAX} is larger than {MAX}"):
        emu_ext().topk_errors(probs=host_ptr(a), labels=host_ptr(labels), rows=1, classes=INT_MAX, ks=[1, 5],
                              counts=host_ptr(counts))
