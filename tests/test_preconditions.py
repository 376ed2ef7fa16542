"""Preconditions every op checks before any pointer is touched, identically on every
backend (cuda_convnet/checks.py): element alignment, no overlap between an array written
in place and any other argument, scalars checked in the precision they are used in
(NumPy scalars accepted, bools refused), and degenerate shapes giving the same result or
the same error on cpu and emu."""
from __future__ import annotations

import numpy as np
import pytest
from kernel_inputs import randn
from net_support import batch, tiny_net

import cuda_convnet as ccn
from cuda_convnet import optim

BACKENDS = ("cpu", "emu")


def _rng(seed=0):
    return np.random.default_rng(seed)


def misaligned(a):
    """A C-contiguous copy of ``a`` whose data starts 1 byte past an element boundary."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + a.itemsize + 1, dtype=np.uint8)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert out.flags.c_contiguous and out.ctypes.data % a.itemsize
    return out


def _op_calls():
    """name -> (function(backend, *arrays), [arrays]): one call of every op on small,
    random float32 inputs (labels int64)."""
    rng = _rng(1)
    x4 = randn(rng, 2, 5, 5, 4)
    w = randn(rng, 3, 3, 3, 4)
    b3 = randn(rng, 3)
    y_conv = randn(rng, 2, 3, 3, 3)
    xl, wl, bl, dyl = randn(rng, 4, 6), randn(rng, 5, 6), randn(rng, 5), randn(rng, 4, 5)
    pool_y = ccn.backend("cpu").max_pool(x4)
    lrn_y = ccn.backend("cpu").lrn(x4)
    logits = randn(rng, 4, 7)
    probs = ccn.backend("cpu").softmax_cross_entropy(logits, np.arange(4) % 7)[1]
    labels = (np.arange(4) % 7).astype(np.int64)
    images = rng.integers(0, 256, (2, 10, 10, 3), dtype=np.uint8)
    mean, sigma, P = randn(rng, 10, 10, 3), np.abs(randn(rng, 3)), randn(rng, 3, 3)
    return {
        "linear": (lambda o, x, w_, b: o.linear(x, w_, b), [xl, wl, bl]),
        "linear_backward": (lambda o, x, w_, dy: o.linear_backward(x, w_, dy), [xl, wl, dyl]),
        "conv2d": (lambda o, x, w_, b: o.conv2d(x, w_, b), [x4, w, b3]),
        "conv2d_backward": (lambda o, x, w_, dy: o.conv2d_backward(x, w_, dy), [x4, w, y_conv]),
        "relu": (lambda o, x: o.relu(x), [x4]),
        "relu_backward": (lambda o, y, dy: o.relu_backward(y, dy), [x4, x4 + 1]),
        "tanh": (lambda o, x: o.tanh(x), [x4]),
        "tanh_backward": (lambda o, y, dy: o.tanh_backward(y, dy), [x4, x4 + 1]),
        "lrn": (lambda o, x: o.lrn(x), [x4]),
        "lrn_backward": (lambda o, x, y, dy: o.lrn_backward(x, y, dy), [x4, lrn_y, lrn_y + 1]),
        "max_pool": (lambda o, x: o.max_pool(x), [x4]),
        "max_pool_backward": (lambda o, x, y, dy: o.max_pool_backward(x, y, dy), [x4, pool_y, pool_y + 1]),
        "dropout": (lambda o, x: o.dropout(x, seed=3), [x4]),
        "dropout_backward": (lambda o, dy: o.dropout_backward(dy, seed=3), [x4]),
        "softmax_cross_entropy": (lambda o, z, t: o.softmax_cross_entropy(z, t), [logits, labels]),
        "softmax_cross_entropy_backward": (lambda o, p, t: o.softmax_cross_entropy_backward(p, t),
                                           [probs, labels]),
        "topk_errors": (lambda o, p, t: o.topk_errors(p, t), [probs, labels]),
        "sgd_update": (lambda o, w_, g, v: o.sgd_update([w_], [g], [v], lr=0.1),
                       [xl.copy(), xl + 1, xl + 2]),
        "concat_channels": (lambda o, a, b: o.concat_channels([a, b]), [x4, x4 + 1]),
        "split_channels": (lambda o, y: o.split_channels(y, [1, 3]), [x4]),
        "train_views": (lambda o, im, m, s, p: o.train_views(im, seed=1, offset=0, mean=m, sigma=s, P=p,
                                                             crop=8), [images, mean, sigma, P]),
    }


OP_ARGS = [(name, i) for name, (_, arrays) in _op_calls().items() for i, a in enumerate(arrays)
           if np.asarray(a).itemsize > 1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,index", OP_ARGS)
def test_every_array_argument_must_be_element_aligned(backend, op, index):
    fn, arrays = _op_calls()[op]
    arrays = [np.array(a, copy=True) for a in arrays]
    fn(ccn.backend(backend), *arrays)  # the aligned call runs
    arrays[index] = misaligned(arrays[index])
    with pytest.raises(ValueError, match=rf"^{op}: \S+ is not {arrays[index].itemsize}-byte aligned"):
        fn(ccn.backend(backend), *arrays)


# ------------------------------------------------------------------------------ aliasing

@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_refuses_overlapping_views(backend):
    ops = ccn.backend(backend)
    buf = randn(_rng(2), 12)
    g = randn(_rng(3), 6)
    # params[0] and velocities[0] share two elements (bytes 16..24) but start apart.
    with pytest.raises(ValueError, match=r"params\[0\] and velocities\[0\] overlap in memory"):
        ops.sgd_update([buf[0:6]], [g], [buf[4:10]], lr=0.1)
    # Two parameters overlapping by one element.
    v0, v1 = np.zeros(6, np.float32), np.zeros(6, np.float32)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] overlap in memory"):
        ops.sgd_update([buf[0:6], buf[5:11]], [g, g], [v0, v1], lr=0.1)
    # A gradient aliasing a velocity (read while written).
    w, v = randn(_rng(4), 6), randn(_rng(5), 6)
    with pytest.raises(ValueError, match=r"velocities\[0\] and grads\[0\] overlap in memory"):
        ops.sgd_update([w], [v[0:6]], [v], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] and grads\[0\] overlap in memory"):
        ops.sgd_update([w], [w], [v], lr=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_accepts_disjoint_views_of_one_buffer(backend):
    ops = ccn.backend(backend)
    buf = randn(_rng(6), 12)
    g = randn(_rng(7), 6)
    w, v = buf[0:6], buf[6:12]          # adjacent, no shared byte
    w_ref, v_ref = w.copy(), v.copy()
    ops.sgd_update([w], [g], [v], lr=0.05, momentum=0.9, weight_decay=5e-4)
    ccn.backend("cpu").sgd_update([w_ref], [g], [v_ref], lr=0.05, momentum=0.9, weight_decay=5e-4)
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(v, v_ref)
    assert not np.array_equal(w, buf[0:6] * 0)  # really updated values, not zeros


def test_grads_may_share_memory_with_each_other():
    # Gradients are only read: one array passed as two gradients is fine.
    ops = ccn.backend("emu")
    g = randn(_rng(8), 4)
    ws = [randn(_rng(9), 4), randn(_rng(10), 4)]
    vs = [np.zeros(4, np.float32), np.zeros(4, np.float32)]
    ops.sgd_update(ws, [g, g], vs, lr=0.1, momentum=0.0, weight_decay=0.0)
    np.testing.assert_array_equal(vs[0], vs[1])
    np.testing.assert_array_equal(vs[0], np.float32(-0.1) * g)


# ------------------------------------------------------------------------------ scalars

@pytest.mark.parametrize("backend", BACKENDS)
def test_learning_rate_that_overflows_float32_is_refused(backend):
    w, g, v = randn(_rng(13), 3), randn(_rng(14), 3), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"sgd_update: lr = 1e\+39 overflows float32"):
        ccn.backend(backend).sgd_update([w], [g], [v], lr=1e39)
    # Each scalar finite in float32 but their product is not.
    with pytest.raises(ValueError, match=r"weight_decay \* lr = .* overflows float32"):
        ccn.backend(backend).sgd_update([w], [g], [v], lr=3e38, weight_decay=2.0)


def test_learning_rate_overflowing_float32_is_fine_for_float64():
    w, g, v = randn(_rng(15), 3, dtype=np.float64), randn(_rng(16), 3, dtype=np.float64), np.zeros(3)
    w0 = w.copy()
    ccn.backend("cpu").sgd_update([w], [g], [v], lr=1e39, momentum=0.0, weight_decay=0.0)
    np.testing.assert_allclose(w, w0 - 1e39 * g, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lr", [np.float32(0.01), np.float64(0.01), np.int64(0), np.float16(0.01)])
def test_numpy_scalars_are_accepted(backend, lr):
    w, g, v = randn(_rng(17), 5), randn(_rng(18), 5), np.zeros(5, np.float32)
    w2, v2 = w.copy(), v.copy()
    ops = ccn.backend(backend)
    ops.sgd_update([w], [g], [v], lr=lr, momentum=np.float32(0.9), weight_decay=np.float64(5e-4))
    ops.sgd_update([w2], [g], [v2], lr=float(lr), momentum=float(np.float32(0.9)), weight_decay=5e-4)
    np.testing.assert_array_equal(w, w2)
    x = randn(_rng(19), 1, 3, 3, 4)
    np.testing.assert_array_equal(ops.lrn(x, size=np.int64(3), alpha=np.float32(1e-3), k=np.float64(2)),
                                  ops.lrn(x, size=3, alpha=float(np.float32(1e-3)), k=2.0))
    np.testing.assert_array_equal(ops.max_pool(x, size=np.int32(2), stride=np.uint8(1)),
                                  ops.max_pool(x, size=2, stride=1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flag", [True, np.bool_(False)])
def test_bools_are_refused_as_numbers(backend, flag):
    ops = ccn.backend(backend)
    w, g, v = randn(_rng(20), 3), randn(_rng(21), 3), np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="lr must be a real number, got bool"):
        ops.sgd_update([w], [g], [v], lr=flag)
    with pytest.raises(TypeError, match="size must be an int"):
        ops.max_pool(randn(_rng(22), 1, 3, 3, 1), size=flag)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_p_that_rounds_to_one_in_float32_is_refused(backend):
    x = randn(_rng(23), 8)
    with pytest.raises(ValueError, match=r"dropout: p must be < 1.0, got 0.9999999999, which rounds to 1.0"):
        ccn.backend(backend).dropout(x, p=0.9999999999, seed=1, mode="inverted")


def test_optimizer_accepts_numpy_scalars_and_checks_float32_range():
    net = tiny_net(dtype="float32")
    opt = optim.SGD(net.parameters(), lr=np.float32(0.01), momentum=np.float64(0.9), weight_decay=np.int64(0))
    assert opt.lr == float(np.float32(0.01))
    with pytest.raises(ValueError, match="SGD: lr = 1e\\+39 overflows float32"):
        optim.SGD(net.parameters(), lr=1e39)
    with pytest.raises(TypeError, match="SGD: lr must be a real number, got bool"):
        optim.SGD(net.parameters(), lr=True)


# ------------------------------------------------------------------------------ degenerate shapes

def _degenerate_calls():
    rng = _rng(30)
    empty4 = np.zeros((0, 5, 5, 4), np.float32)
    w = randn(rng, 3, 3, 3, 4)
    return {
        "conv2d N=0": lambda o: o.conv2d(empty4, w, randn(rng, 3), padding=1),
        "conv2d H=W=0 padded": lambda o: o.conv2d(np.zeros((2, 0, 0, 4), np.float32), w, padding=2),
        "conv2d_backward N=0": lambda o: o.conv2d_backward(empty4, w, np.zeros((0, 3, 3, 3), np.float32)),
        "max_pool N=0": lambda o: o.max_pool(empty4),
        "max_pool H=W=0 padded": lambda o: o.max_pool(np.zeros((2, 0, 0, 4), np.float32), size=3, stride=2,
                                                      padding=2),
        "max_pool H=0": lambda o: o.max_pool(np.zeros((1, 0, 5, 1), np.float32), size=1, stride=1),
        "max_pool C=0": lambda o: o.max_pool(np.zeros((2, 5, 5, 0), np.float32)),
        "max_pool_backward N=0": lambda o: o.max_pool_backward(empty4, np.zeros((0, 2, 2, 4), np.float32),
                                                               np.zeros((0, 2, 2, 4), np.float32)),
        "lrn N=0": lambda o: o.lrn(empty4),
        "lrn C=0": lambda o: o.lrn(np.zeros((2, 3, 3, 0), np.float32)),
        "lrn_backward N=0": lambda o: o.lrn_backward(empty4, empty4, empty4),
        "linear N=0": lambda o: o.linear(np.zeros((0, 6), np.float32), randn(rng, 5, 6), randn(rng, 5)),
        "linear in=0": lambda o: o.linear(np.zeros((3, 0), np.float32), np.zeros((5, 0), np.float32),
                                          randn(rng, 5)),
        "linear_backward in=0": lambda o: o.linear_backward(np.zeros((3, 0), np.float32),
                                                            np.zeros((5, 0), np.float32), randn(rng, 3, 5)),
        "linear_backward N=0": lambda o: o.linear_backward(np.zeros((0, 6), np.float32), randn(rng, 5, 6),
                                                           np.zeros((0, 5), np.float32)),
        "relu empty": lambda o: o.relu(np.zeros((0, 3), np.float32)),
        "dropout empty": lambda o: o.dropout(np.zeros((0,), np.float32), seed=1),
        "softmax N=0": lambda o: o.softmax_cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, np.int64)),
        "softmax classes=0": lambda o: o.softmax_cross_entropy(np.zeros((2, 0), np.float32),
                                                               np.zeros(2, np.int64)),
        "topk N=0": lambda o: o.topk_errors(np.zeros((0, 4), np.float32), np.zeros(0, np.int64)),
        "concat empty rows": lambda o: o.concat_channels([np.zeros((0, 2), np.float32),
                                                          np.zeros((0, 3), np.float32)]),
        "split zero part": lambda o: o.split_channels(randn(rng, 2, 3), [0, 3, 0]),
        "sgd empty tensor": lambda o: o.sgd_update([np.zeros(0, np.float32)], [np.zeros(0, np.float32)],
                                                   [np.zeros(0, np.float32)], lr=0.1),
    }


def _outcome(backend, name):
    try:
        out = _degenerate_calls()[name](ccn.backend(backend))
    except (ValueError, TypeError) as e:
        return ("error", type(e).__name__, str(e))
    flat = out if isinstance(out, (list, tuple)) else [out]
    if isinstance(out, dict):
        return ("ok", out)
    return ("ok", [(np.shape(a), np.asarray(a, dtype=np.float64).tolist()) for a in flat if a is not None])


@pytest.mark.parametrize("name", list(_degenerate_calls()))
def test_degenerate_shapes_agree_between_cpu_and_emu(name):
    cpu, emu = _outcome("cpu", name), _outcome("emu", name)
    assert cpu == emu


def test_zero_size_image_is_an_error_naming_the_problem():
    kind, etype, msg = _outcome("emu", "max_pool H=W=0 padded")
    assert (kind, etype) == ("error", "ValueError")
    assert msg.startswith("max_pool: x has zero height or width (shape (2, 0, 0, 4))")


# ------------------------------------------------------------------------------ net input

@pytest.fixture(scope="module")
def net32():
    return tiny_net(dtype="float32")


@pytest.mark.parametrize("bad,etype,match", [
    ([[0.0] * 3] * 2, TypeError, r"the net takes a float32 array of shape \(N, 16, 16, 3\).*got list.*np.asarray"),
    (None, TypeError, r"the net takes a float32 array of shape \(N, 16, 16, 3\).*got NoneType"),
    (np.zeros((0, 16, 16, 3), np.float32), ValueError, r"the input batch is empty \(shape \(0, 16, 16, 3\)\)"),
    (np.zeros((2, 16, 16, 3), ">f4"), TypeError, r"big-endian byte order \(>f4\); the net needs native byte order"),
    (np.zeros((2, 16, 16, 3), np.float64), TypeError, "the net computes in float32; the input is float64"),
])
def test_net_input_errors_name_the_problem(net32, bad, etype, match):
    with pytest.raises(etype, match=match):
        net32.forward(bad)


def test_big_endian_input_after_conversion_gives_the_native_result(net32):
    x, _ = batch(2, dtype=np.float32)
    np.testing.assert_array_equal(net32.forward(x.astype(">f4").astype(np.float32)), net32.forward(x))


def test_optimizer_built_for_another_net_is_refused(net32):
    other = tiny_net(dtype="float32", seed=1)
    opt = optim.SGD(other.parameters(), lr=0.01)
    x, labels = batch(2, dtype=np.float32)
    before = {k: v.copy() for k, v in net32.state_dict().items()}
    with pytest.raises(ValueError, match=r"train_step: the optimizer was built for another net"):
        net32.train_step(x, labels, opt)
    for k, v in net32.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
