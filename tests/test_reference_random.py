"""Philox4x32-10 known answers and the dropout keep-mask contract (§4.2, ARCHITECTURE.md §3).

The mask definition in ``cuda_convnet/random.py``'s docstring is what the CUDA kernel is
written from, so it is pinned here by a second, scalar implementation in plain Python
integers that follows the docstring line by line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cuda_convnet import reference as R
from cuda_convnet.random import dropout_keep_mask, dropout_threshold, philox4x32

# Random123 kat_vectors, philox4x32_10.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


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


# ----------------------------------------------------------------------------- mask contract

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


# ----------------------------------------------------------------------------- dropout op

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
