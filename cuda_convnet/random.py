"""Counter-based random numbers: Philox4x32-10 and the dropout keep-mask (§4.2, ARCHITECTURE.md §3).

Why counter-based: the dropout mask must be a pure function of (seed, offset, element
index), so the NumPy reference, the SIMT emulator and the GPU draw *bit-identical* masks
with no generator state to carry between calls, and a training run is reproducible from
its seed. Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011; the Random123 library; also cuRAND's and PyTorch's GPU generator) maps a 128-bit
counter and a 64-bit key to 128 random bits with ten rounds of 32x32->64 multiplies.

Philox4x32-10, as implemented here (Random123 ``philox4x32_R`` with R = 10)
---------------------------------------------------------------------------
Constants: ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57`` (multipliers),
``W0 = 0x9E3779B9``, ``W1 = 0xBB67AE85`` (Weyl key increments). All arithmetic mod 2**32.

One round on counter ``(c0, c1, c2, c3)`` with key ``(k0, k1)``::

    hi0:lo0 = M0 * c0          (full 64-bit product, split in 32-bit halves)
    hi1:lo1 = M1 * c2
    counter = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)

The ten rounds: round(key); then nine times { key += (W0, W1); round(key) }. In CUDA
``hi`` is ``__umulhi(M, c)`` and ``lo`` is ``M * c``.

Known-answer vectors (Random123 ``kat_vectors``), checked by the tests::

    ctr 00000000 00000000 00000000 00000000  key 00000000 00000000
        -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
    ctr ffffffff ffffffff ffffffff ffffffff  key ffffffff ffffffff
        -> 408f276d 41c83b0e a20bc7c6 6d5451fd
    ctr 243f6a88 85a308d3 13198a2e 03707344  key a4093822 299f31d0
        -> d16cfe09 94fdcceb 5001e420 24126ea1

The dropout keep-mask (the contract a CUDA kernel must reproduce bit for bit)
---------------------------------------------------------------------------
``dropout_keep_mask(shape, p, seed, offset)`` returns a bool array of ``shape``. Let
``i`` be an element's flat index in C (row-major) order, ``0 <= i < prod(shape)``;
``seed`` and ``offset`` are unsigned 64-bit integers. Then::

    j       = i // 4                      (64-bit; one Philox call serves 4 elements)
    key     = (seed & 0xffffffff, seed >> 32)
    counter = (j & 0xffffffff, j >> 32, offset & 0xffffffff, offset >> 32)
    u       = philox4x32_10(counter, key)[i % 4]          (uint32 output word i % 4)
    t       = ceil(p * 2**24)    computed on the host in float64: an integer in [0, 2**24]
    keep[i] = (u >> 8) >= t

i.e. with the uniform ``x = (u >> 8) * 2**-24`` (exact in float32, in [0, 1)), the element
is kept iff ``x >= p``; ``(u >> 8) >= t`` is the same test done in integers, so no
float32 rounding of ``p`` on the device can change a single bit. P(keep) = 1 - t/2**24,
which is exactly ``1 - p`` when ``p`` is a multiple of 2**-24 (e.g. 0.5, the paper's p).

Why the offset lives in counter words 2-3 instead of being added to ``j``: two masks with
different offsets (say ``offset = step * n_dropout_layers + layer``) then come from
disjoint counter ranges whatever the tensor sizes, so masks never overlap or repeat.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["philox4x32", "dropout_keep_mask", "dropout_threshold"]

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint32(0x9E3779B9)
PHILOX_W1 = np.uint32(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def _as_uint32_words(a, n: int, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"philox4x32: {what} must be an integer array, got {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != n:
        raise ValueError(f"philox4x32: {what} must have shape (..., {n}), got {a.shape}")
    if (a.dtype.kind == "i" and np.any(a < 0)) or np.any(a > 0xFFFFFFFF):
        raise ValueError(f"philox4x32: {what} words must be in [0, 2**32)")
    return a.astype(np.uint32)


def philox4x32(counter, key, rounds: int = 10) -> np.ndarray:
    """Philox4x32-``rounds`` of ``counter`` (..., 4) under ``key`` (..., 2), uint32 words.

    The leading dimensions broadcast; returns uint32 of shape (..., 4). Vectorised: each
    round is a handful of whole-array uint64 multiplies and xors.
    """
    ctr = _as_uint32_words(counter, 4, "counter")
    k = _as_uint32_words(key, 2, "key")
    lead = np.broadcast_shapes(ctr.shape[:-1], k.shape[:-1])
    c0, c1, c2, c3 = (np.broadcast_to(ctr[..., i], lead) for i in range(4))
    k0 = np.broadcast_to(k[..., 0], lead).copy()
    k1 = np.broadcast_to(k[..., 1], lead).copy()
    for rnd in range(rounds):
        if rnd:
            # Key schedule: Weyl sequence, wraps mod 2**32 (uint32 arithmetic).
            k0 += PHILOX_W0
            k1 += PHILOX_W1
        p0 = PHILOX_M0 * c0.astype(np.uint64)   # < 2**64: never overflows
        p1 = PHILOX_M1 * c2.astype(np.uint64)
        hi0 = (p0 >> _SHIFT32).astype(np.uint32)
        lo0 = (p0 & _MASK32).astype(np.uint32)
        hi1 = (p1 >> _SHIFT32).astype(np.uint32)
        lo1 = (p1 & _MASK32).astype(np.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3], axis=-1)


def dropout_threshold(p: float) -> int:
    """``t = ceil(p * 2**24)`` (float64 product, exact): keep iff ``(u >> 8) >= t``."""
    return int(math.ceil(float(p) * 2.0**24))


def dropout_keep_mask(shape, p: float, seed: int, offset: int = 0) -> np.ndarray:
    """Bool keep-mask of ``shape``; exact definition in the module docstring.

    ``p`` is the drop probability in [0, 1); ``seed`` and ``offset`` in [0, 2**64).
    """
    shape = tuple(int(d) for d in shape) if isinstance(shape, (tuple, list)) else (int(shape),)
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout_keep_mask: p must be in [0, 1), got {p}")
    for name, v in (("seed", seed), ("offset", offset)):
        if not 0 <= int(v) < 2**64:
            raise ValueError(f"dropout_keep_mask: {name} must be in [0, 2**64), got {v}")
    seed, offset = int(seed), int(offset)
    n = math.prod(shape)
    blocks = -(-n // 4)
    j = np.arange(blocks, dtype=np.uint64)
    counter = np.empty((blocks, 4), dtype=np.uint32)
    counter[:, 0] = (j & _MASK32).astype(np.uint32)
    counter[:, 1] = (j >> _SHIFT32).astype(np.uint32)
    counter[:, 2] = offset & 0xFFFFFFFF
    counter[:, 3] = offset >> 32
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    # Row-major flatten of (blocks, 4): element i gets word i % 4 of block i // 4.
    u = philox4x32(counter, key).reshape(-1)[:n]
    return ((u >> np.uint32(8)) >= np.uint32(dropout_threshold(p))).reshape(shape)
