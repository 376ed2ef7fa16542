"""Dropout (paper §4.2) and the Philox4x32-10 generator its mask is drawn from, the whole op
family: the kernels (csrc/dropout.cuh, csrc/philox.cuh), whose masks must be the
reference's bit for bit in both modes, train and test, forward and backward; then the
reference: Philox's known answers, the keep-mask contract of cuda_convnet/random.py's
docstring pinned by a second, scalar implementation in plain Python integers that follows
it line by line, the dropout modes, the gradient (central differences, float64) and
argument errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import SETTINGS, check_op, rng_from
from hypothesis import given
from hypothesis import strategies as st
from kernel_inputs import randn, unaligned
from reference_support import arr
from tolerances import tol

import cuda_convnet as ccn
from cuda_convnet import reference as R
from cuda_convnet.random import dropout_keep_mask, dropout_threshold, philox4x32

# Random123 kat_vectors, philox4x32_10 (also in cuda_convnet/random.py's docstring).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

U64 = st.integers(0, 2**64 - 1)


def test_device_philox_known_answers(kernel_device):
    counters = np.array([c for c, _, _ in KAT], np.uint32)
    keys = np.array([k for _, k, _ in KAT], np.uint32)
    out = kernel_device.get(kernel_device.ops.philox4x32(kernel_device.put(counters), kernel_device.put(keys)))
    assert [tuple(int(v) for v in row) for row in out] == [e for _, _, e in KAT]


def test_device_philox_matches_numpy_on_random_words(kernel_device):
    rng = np.random.default_rng(123)
    counters = rng.integers(0, 2**32, (1000, 4), dtype=np.uint64).astype(np.uint32)
    keys = rng.integers(0, 2**32, (1000, 2), dtype=np.uint64).astype(np.uint32)
    out = kernel_device.get(kernel_device.ops.philox4x32(kernel_device.put(counters), kernel_device.put(keys)))
    np.testing.assert_array_equal(out, philox4x32(counters, keys))


def run_dropout(dev, x, **kw):
    return dev.get(dev.ops.dropout(dev.put(x), **kw))


def check_all_modes(dev, cpu, x, p, seed, offset, groups=1):
    """Every (mode, train) forward and both backwards, bit for bit against the float32
    reference, and against float64 with the table's tolerance."""
    for mode in ("paper", "inverted"):
        for train in (True, False):
            kw = dict(p=p, seed=seed, offset=offset, mode=mode, train=train, groups=groups)
            y = run_dropout(dev, x, **kw)
            np.testing.assert_array_equal(y, cpu.dropout(x, **kw), err_msg=str(kw))
            np.testing.assert_allclose(y, cpu.dropout(x.astype(np.float64), **kw),
                                       **tol("dropout", "kernel_vs_reference"))
        kw = dict(p=p, seed=seed, offset=offset, mode=mode, groups=groups)
        dx = dev.get(dev.ops.dropout_backward(dev.put(x), **kw))
        np.testing.assert_array_equal(dx, cpu.dropout_backward(x, **kw), err_msg=str(kw))
        np.testing.assert_allclose(dx, cpu.dropout_backward(x.astype(np.float64), **kw),
                                   **tol("dropout_backward", "kernel_vs_reference"))


@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       p=st.one_of(st.sampled_from([0.0, 0.5, 0.3, 0.9]), st.floats(0, 0.999)),
       seed=U64, offset=U64, data_seed=st.integers(0, 2**31))
def test_dropout_matches_reference_bit_for_bit(kernel_device, cpu, shape, p, seed, offset, data_seed):
    x = randn(np.random.default_rng(data_seed), *shape)
    check_all_modes(kernel_device, cpu, x, p, seed, offset)


def test_dropout_mask_is_the_contract(kernel_device):
    """The zeros of training-mode output are exactly ~dropout_keep_mask (inputs are never 0)."""
    x = randn(np.random.default_rng(0), 2, 4096)
    for seed, offset in ((0, 0), (7, 3), (2**64 - 1, 2**64 - 1), (2**32 + 5, 2**33)):
        y = run_dropout(kernel_device, x, p=0.5, seed=seed, offset=offset)
        np.testing.assert_array_equal(y != 0, dropout_keep_mask(x.shape, 0.5, seed, offset))
    # Different offsets draw different masks.
    a = run_dropout(kernel_device, x, p=0.5, seed=1, offset=0) != 0
    b = run_dropout(kernel_device, x, p=0.5, seed=1, offset=1) != 0
    assert 0.4 < (a != b).mean() < 0.6


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 1021])
def test_dropout_vector_and_tail(kernel_device, cpu, n):
    """Every remainder of n mod 4: the last Philox block is partial."""
    x = randn(np.random.default_rng(n), n)
    check_all_modes(kernel_device, cpu, x, 0.5, 99, 5)


def test_dropout_fc_shapes(kernel_device, cpu):
    """fc6 and fc7 outputs at batch 2 (2 x 4096), the layers the paper drops (§4.2)."""
    rng = np.random.default_rng(6)
    for layer in (6, 7):
        x = randn(rng, 2, 4096)
        check_all_modes(kernel_device, cpu, x, 0.5, 2012, layer)


@pytest.mark.emu
@pytest.mark.parametrize("n", [5, 37, 1001])
def test_dropout_unaligned_pointers_take_the_scalar_path(cpu, n):
    emu = ccn.backend("emu")
    x = unaligned(randn(np.random.default_rng(n), n))
    for mode in ("paper", "inverted"):
        kw = dict(p=0.4, seed=n, offset=1, mode=mode)
        np.testing.assert_array_equal(emu.dropout(x, **kw), cpu.dropout(x, **kw))
        np.testing.assert_array_equal(emu.dropout_backward(x, **kw), cpu.dropout_backward(x, **kw))


# ------------------------------------------------- channel groups: one launch, each group its own mask

def per_group(op, x, groups, offset, **kw):
    """`op` on each channel range g of x at offset + g, concatenated: what the towers of
    §3.2 compute, each on its own channels."""
    cg = x.shape[-1] // groups
    return np.concatenate([op(np.ascontiguousarray(x[..., g * cg:(g + 1) * cg]), offset=offset + g, **kw)
                           for g in range(groups)], axis=-1)


@given(lead=st.lists(st.integers(1, 7), min_size=0, max_size=2), cg=st.integers(1, 9),
       groups=st.integers(1, 4), p=st.sampled_from([0.5, 0.3, 0.9, 0.0]),
       seed=U64, offset=st.integers(0, 2**64 - 4), data_seed=st.integers(0, 2**31))
def test_grouped_dropout_matches_reference_bit_for_bit(kernel_device, cpu, lead, cg, groups, p, seed, offset,
                                                       data_seed):
    """Any rows, any channels per group (cg % 4 != 0 included: the scalar path), 1-4 groups."""
    x = randn(np.random.default_rng(data_seed), *lead, groups * cg)
    check_all_modes(kernel_device, cpu, x, p, seed, offset, groups)


@pytest.mark.parametrize("shape,groups", [((2, 4096), 2),     # fc6/fc7 at batch 2, the paper's two towers
                                          ((3, 5, 24), 2),    # cg = 12: float4 path
                                          ((7, 18), 3),       # cg = 6: scalar path
                                          ((4, 7), 7),        # one channel per group
                                          ((10,), 2)])        # one row
def test_grouped_dropout_is_each_groups_own_mask(kernel_device, shape, groups):
    """groups=G in one launch == the plain op on each channel range at offset + g, forward
    and backward, on the kernels and on the reference; and the groups really differ from
    one plain mask over the whole tensor."""
    x = randn(np.random.default_rng(len(shape) + groups), *shape)
    kw = dict(p=0.5, seed=2**40 + 3, mode="inverted")
    for name in ("dropout", "dropout_backward"):
        kernel = getattr(kernel_device.ops, name)
        ref = getattr(R, name)
        got = kernel_device.get(kernel(kernel_device.put(x), offset=9, groups=groups, **kw))
        want = per_group(lambda a, kernel=kernel, **k: kernel_device.get(kernel(kernel_device.put(a), **k)),
                         x, groups, 9, **kw)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ref(x, offset=9, groups=groups, **kw),
                                      per_group(ref, x, groups, 9, **kw))
        assert not np.array_equal(got, kernel_device.get(kernel(kernel_device.put(x), offset=9, **kw)))


def test_grouped_mask_is_the_contract_at_the_largest_offsets(kernel_device):
    """The last group draws at offset + G - 1 = 2**64 - 1: the counter's hi word carries."""
    x = randn(np.random.default_rng(3), 5, 12)
    offset = 2**64 - 3
    y = run_dropout(kernel_device, x, p=0.5, seed=11, offset=offset, groups=3)
    for g in range(3):
        np.testing.assert_array_equal(y[:, 4 * g:4 * g + 4] != 0, dropout_keep_mask((5, 4), 0.5, 11, offset + g))


@pytest.mark.emu
@pytest.mark.parametrize("shape,groups", [((3, 8), 2), ((5, 6), 3), ((2, 9, 4), 4)])
def test_grouped_dropout_unaligned_pointers(cpu, shape, groups):
    emu = ccn.backend("emu")
    x = unaligned(randn(np.random.default_rng(groups), *shape))
    for mode in ("paper", "inverted"):
        kw = dict(p=0.4, seed=5, offset=2, mode=mode, groups=groups)
        np.testing.assert_array_equal(emu.dropout(x, **kw), cpu.dropout(x, **kw))
        np.testing.assert_array_equal(emu.dropout_backward(x, **kw), cpu.dropout_backward(x, **kw))


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_grouped_dropout_layer_is_one_call_bit_identical_to_the_towers(device, monkeypatch):
    """The Dropout layer with groups=2 (AlexNet's grouped fc6/fc7, §3.2) makes one dropout /
    dropout_backward call over both groups, no channel split or concat; its output and
    gradient equal, bit for bit, each tower's Dropout layer on its own channels with the
    tower's subsequence (models.alexnet numbers tower t's subsequence j * 2 + t)."""
    from cuda_convnet.net import Dropout, Net
    from cuda_convnet.net.layers import Context

    rng = np.random.default_rng(7)
    x, dy = randn(rng, 4, 96), randn(rng, 4, 96)
    grouped = Net([Dropout("d", "data", groups=2, subsequence=2)], input_shape=(96,), devices=(device,))
    towers = [Net([Dropout(f"d/{t}", "data", subsequence=2 + t)], input_shape=(48,), devices=(device,))
              for t in range(2)]
    dev, layer = grouped.devices[0], grouped.layers[0]
    ctx = Context(5, grouped.dropout_seed, 4, grouped.precision)   # step 5 of 4 subsequences
    calls = []
    for op in ("dropout", "dropout_backward", "split_channels", "concat_channels"):
        fn = getattr(dev.ops, op)
        monkeypatch.setattr(dev.ops, op, lambda *a, fn=fn, op=op, **k: calls.append(op) or fn(*a, **k))
    y = dev.to_host(layer.forward(dev, [dev.asarray(x)], {}, True, ctx))
    [dx], _ = layer.backward(dev, [dev.asarray(x)], None, dev.asarray(dy), {}, ctx, [True])
    assert calls == ["dropout", "dropout_backward"]
    want_y, want_dx = [], []
    for t, net in enumerate(towers):
        tl, sl = net.layers[0], slice(48 * t, 48 * t + 48)
        want_y.append(dev.to_host(tl.forward(dev, [dev.asarray(np.ascontiguousarray(x[:, sl]))], {}, True, ctx)))
        [d], _ = tl.backward(dev, [None], None, dev.asarray(np.ascontiguousarray(dy[:, sl])), {}, ctx, [True])
        want_dx.append(dev.to_host(d))
    np.testing.assert_array_equal(y, np.concatenate(want_y, axis=-1))
    np.testing.assert_array_equal(dev.to_host(dx), np.concatenate(want_dx, axis=-1))
    assert ((y == 0) == (dev.to_host(dx) == 0)).all() and 0.3 < (y == 0).mean() < 0.7


def test_dropout_empty_array(kernel_device):
    y = kernel_device.get(kernel_device.ops.dropout(kernel_device.put(np.ones((0, 3), np.float32)), seed=1))
    assert y.shape == (0, 3)


def test_dropout_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    x = put(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.dropout(put(np.ones((2, 3))), seed=1)
    with pytest.raises(ValueError, match="p must be < 1"):
        ops.dropout(x, p=1.0, seed=1)
    with pytest.raises(ValueError, match="seed must be <="):
        ops.dropout(x, seed=2**64)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        ops.dropout_backward(x, seed=1, offset=-1)
    with pytest.raises(ValueError, match="mode must be"):
        ops.dropout(x, seed=1, mode="alexnet")
    with pytest.raises(TypeError, match="train must be a bool"):
        ops.dropout(x, seed=1, train=1)
    with pytest.raises(ValueError, match=r"last axis of \(2, 3\) \(3 channels\) does not split into groups = 2"):
        ops.dropout(x, seed=1, groups=2)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        ops.dropout_backward(x, seed=1, groups=0)
    with pytest.raises(ValueError, match="groups must be <= 65535"):
        ops.dropout(put(np.ones((1, 65536), np.float32)), seed=1, groups=65536)
    with pytest.raises(ValueError, match=r"offset \+ groups - 1 = 18446744073709551617 must be <="):
        ops.dropout_backward(x, seed=1, offset=2**64 - 1, groups=3)
    with pytest.raises(ValueError, match=r"counter must have shape \(n, 4\)"):
        ops.philox4x32(put(np.zeros((2, 3), np.uint32)), put(np.zeros((2, 2), np.uint32)))


# -------------------------------------------------------- reference: Philox known answers and the keep-mask definition

@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, dtype=np.uint64), np.array(key, dtype=np.uint64))
    assert out.dtype == np.uint32
    assert tuple(int(v) for v in out) == expected


def test_philox_vectorised_and_broadcast():
    counters = np.array([c for c, _, _ in KAT], dtype=np.uint64)
    keys = np.array([k for _, k, _ in KAT], dtype=np.uint64)
    out = philox4x32(counters, keys)
    assert out.shape == (3, 4)
    assert [tuple(int(v) for v in row) for row in out] == [e for _, _, e in KAT]
    # One key broadcast over many counters equals calling them one by one.
    many = np.arange(40, dtype=np.uint64).reshape(2, 5, 4)
    key = np.array([7, 9], dtype=np.uint64)
    batched = philox4x32(many, key)
    assert batched.shape == (2, 5, 4)
    for idx in np.ndindex(2, 5):
        np.testing.assert_array_equal(batched[idx], philox4x32(many[idx], key))


def test_philox_rejects_bad_words():
    with pytest.raises(ValueError, match="counter"):
        philox4x32(np.zeros(3, dtype=np.uint32), np.zeros(2, dtype=np.uint32))
    with pytest.raises(ValueError, match="key"):
        philox4x32(np.zeros(4, dtype=np.uint32), np.array([-1, 0]))


M32 = 0xFFFFFFFF


def _philox_scalar(ctr, key):
    """Philox4x32-10 in Python ints, straight from the module docstring."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
    return c0, c1, c2, c3


def _mask_scalar(n, p, seed, offset):
    t = math.ceil(p * 2**24)
    keep = []
    for i in range(n):
        j = i // 4
        u = _philox_scalar((j & M32, j >> 32, offset & M32, offset >> 32),
                           (seed & M32, seed >> 32))[i % 4]
        keep.append((u >> 8) >= t)
    return np.array(keep)


@pytest.mark.parametrize("shape,p,seed,offset", [
    ((3, 5), 0.5, 0, 0),                             # 15 elements: a partial last block
    ((2, 3, 7), 0.3, 2**40 + 12345, 2**35 + 7),      # seed and offset use their hi words
    ((9,), 0.9, 2**64 - 1, 2**64 - 1),
])
def test_mask_follows_the_documented_definition(shape, p, seed, offset):
    mask = dropout_keep_mask(shape, p, seed, offset)
    assert mask.shape == shape and mask.dtype == bool
    np.testing.assert_array_equal(mask.reshape(-1),
                                  _mask_scalar(math.prod(shape), p, seed, offset))


def test_mask_threshold_is_exact_integer():
    assert dropout_threshold(0.5) == 2**23
    assert dropout_threshold(0.0) == 0
    # Keep iff (u >> 8) * 2**-24 >= p  <=>  (u >> 8) >= ceil(p * 2**24), for any p.
    for p in (0.1, 1 / 3, 0.999999):
        t = dropout_threshold(p)
        assert (t - 1) * 2.0**-24 < p <= t * 2.0**-24


def test_mask_is_a_function_of_seed_offset_and_flat_index():
    a = dropout_keep_mask((4, 6), 0.5, seed=3, offset=11)
    np.testing.assert_array_equal(a, dropout_keep_mask((4, 6), 0.5, seed=3, offset=11))
    # Depends only on the flat C-order index: reshapes and prefixes agree.
    np.testing.assert_array_equal(a.reshape(-1), dropout_keep_mask((24,), 0.5, 3, 11))
    np.testing.assert_array_equal(a.reshape(-1)[:17], dropout_keep_mask((17,), 0.5, 3, 11))
    assert not np.array_equal(a, dropout_keep_mask((4, 6), 0.5, seed=4, offset=11))
    assert not np.array_equal(a, dropout_keep_mask((4, 6), 0.5, seed=3, offset=12))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_frequency(p):
    n = 1 << 18
    kept = dropout_keep_mask((n,), p, seed=2012, offset=1).mean()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(kept - (1 - p)) < 5 * sigma


def test_mask_p_zero_keeps_everything():
    assert dropout_keep_mask((1000,), 0.0, seed=1).all()


def test_offsets_give_uncorrelated_masks():
    """Neighbouring offsets must not give shifted copies of each other (they would if the
    offset were simply added to the element counter)."""
    a = dropout_keep_mask((4096,), 0.5, 5, 0).astype(float)
    b = dropout_keep_mask((4096,), 0.5, 5, 1).astype(float)
    for shift in range(0, 9):
        agree = (a[shift:] == b[:len(b) - shift]).mean()
        assert abs(agree - 0.5) < 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_modes(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 50)).astype(dtype)
    p, seed, offset = 0.3, 77, 4
    mask = dropout_keep_mask(x.shape, p, seed, offset)
    scale = dtype(1 / (1 - p))

    y = R.dropout(x, p=p, seed=seed, offset=offset, mode="paper")
    np.testing.assert_array_equal(y, np.where(mask, x, 0))
    np.testing.assert_array_equal(R.dropout(x, p=p, seed=seed, mode="paper", train=False),
                                  x * dtype(1 - p))
    y = R.dropout(x, p=p, seed=seed, offset=offset, mode="inverted")
    np.testing.assert_array_equal(y, np.where(mask, x * scale, 0))
    np.testing.assert_array_equal(R.dropout(x, p=p, seed=seed, mode="inverted", train=False), x)
    for mode in ("paper", "inverted"):
        y = R.dropout(x, p=p, seed=seed, offset=offset, mode=mode)
        assert y.dtype == dtype
        dy = rng.standard_normal(x.shape).astype(dtype)
        # Backward is the same linear map (the mask is recomputed, not stored).
        np.testing.assert_array_equal(
            R.dropout_backward(dy, p=p, seed=seed, offset=offset, mode=mode),
            R.dropout(dy, p=p, seed=seed, offset=offset, mode=mode))


@pytest.mark.parametrize("mode", ["paper", "inverted"])
def test_dropout_train_mean_matches_test_scaling(mode):
    """The test-time rule is the expectation of the training-time output (§4.2)."""
    x = np.ones((1 << 16,))
    p = 0.5
    train = R.dropout(x, p=p, seed=1, mode=mode).mean()
    test = R.dropout(x, p=p, seed=1, mode=mode, train=False).mean()
    scale = 2 if mode == "inverted" else 1        # inverted's kept values are 1/(1-p) = 2
    assert abs(train - test) < 5 * scale * math.sqrt(p * (1 - p) / x.size)


# ----------------------------------------------------------------------------- reference: gradient check (float64)

@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), mode=st.sampled_from(["paper", "inverted"]),
       seed=st.integers(0, 2**32 - 1))
def test_dropout_gradcheck(shape, p, mode, seed):
    rng = rng_from(seed)
    kw = dict(p=p, seed=1234, offset=5, mode=mode)   # fixed seed: same mask every pass
    x = rng.standard_normal(tuple(shape))
    check_op("dropout", lambda x: R.dropout(x, **kw),
             lambda ins, y, dy: (R.dropout_backward(dy, **kw),), [x], rng=rng)


@pytest.mark.parametrize("mode", ["paper", "inverted"])
def test_dropout_elementwise(mode):
    rng = rng_from(5)
    kw = dict(p=0.5, seed=99, offset=0, mode=mode)
    check_op("dropout", lambda x: R.dropout(x, **kw),
             lambda ins, y, dy: (R.dropout_backward(dy, **kw),),
             [rng.standard_normal((3, 5))], rng=rng, elementwise=True)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"dropout: p must be"):
        R.dropout(arr(3, 4), p=p, seed=0)
    with pytest.raises(ValueError, match=r"dropout_backward: p must be"):
        R.dropout_backward(arr(3, 4), p=p, seed=0)


def test_dropout_other_errors():
    with pytest.raises(ValueError, match="dropout: mode must be 'paper' or 'inverted'"):
        R.dropout(arr(3), seed=0, mode="caffe")
    with pytest.raises(ValueError, match="dropout: seed must be >= 0"):
        R.dropout(arr(3), seed=-1)
    with pytest.raises(ValueError, match=r"dropout: offset must be <= 18446744073709551615"):
        R.dropout(arr(3), seed=0, offset=2**64)
    with pytest.raises(TypeError, match="dropout: seed must be an int"):
        R.dropout(arr(3), seed=1.0)
    with pytest.raises(TypeError, match="dropout: train must be a bool"):
        R.dropout(arr(3), seed=0, train="yes")
    with pytest.raises(TypeError, match="dropout: p must be a real number"):
        R.dropout(arr(3), seed=0, p="0.5")
    with pytest.raises(ValueError, match="dropout: the last axis of .* does not split into groups = 2"):
        R.dropout(arr(3, 5), seed=0, groups=2)
    with pytest.raises(ValueError, match="dropout_backward: offset \\+ groups - 1"):
        R.dropout_backward(arr(3, 4), seed=0, offset=2**64 - 2, groups=4)
    with pytest.raises(TypeError, match="dropout: groups must be an int"):
        R.dropout(arr(3, 4), seed=0, groups=2.0)
