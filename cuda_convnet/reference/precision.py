"""Operand rounding of the tensor-core precisions, in NumPy (DESIGN.md §10).

The kernels keep float32 in memory and round each GEMM operand on its way into the tensor
cores; the reference rounds the same values the same way, so kernel and reference agree to
float32 accumulation error (a tight tolerance that would expose a layout bug), not to the
formats' 10- or 7-bit mantissas. Both functions are bit-exact with the PTX conversions the
kernels use (csrc/ptx/cvt.cuh and its emulator models):

    round_tf32  cvt.rna.tf32.f32: nearest, ties away from zero, 10 mantissa bits
                (the low 13 bits of the float32 cleared); +-inf and NaN pass unchanged
                except that the low 13 bits are cleared.
    round_bf16  cvt.rn.bf16.f32: nearest, ties to even, 7 mantissa bits (the low 16 bits
                cleared); every NaN becomes the canonical 0x7fff bf16 NaN.

Inputs of any float dtype are first taken to float32 (the kernels' storage type); the
result has the input's dtype and shape, holding exactly representable TF32/BF16 values.
"""
from __future__ import annotations

import numpy as np

__all__ = ["round_bf16", "round_operand", "round_tf32"]


def _bits(x) -> tuple[np.ndarray, np.dtype]:
    a = np.asarray(x)
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64), a.dtype


def round_tf32(x) -> np.ndarray:
    """Round float32 values to TF32 as cvt.rna.tf32.f32 (nearest, ties away from zero)."""
    u, dtype = _bits(x)
    finite = (u & 0x7F800000) != 0x7F800000
    u = np.where(finite, u + 0x1000, u) & 0xFFFFE000
    return u.astype(np.uint32).view(np.float32).astype(dtype, copy=False)


def round_bf16(x) -> np.ndarray:
    """Round float32 values to BF16 as cvt.rn.bf16.f32 (nearest, ties to even)."""
    u, dtype = _bits(x)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    u = np.where(nan, 0x7FFF0000, u)
    return u.astype(np.uint32).view(np.float32).astype(dtype, copy=False)


def round_operand(x, precision: str):
    """A GEMM operand as the tensor cores of `precision` see it: TF32- or BF16-rounded
    for "tf32" / "bf16"; unchanged for "fp32" and "3xtf32" (whose big + small split
    carries ~21 mantissa bits: float32-level accuracy, compared to the float32 result)."""
    if precision == "tf32":
        return round_tf32(x)
    if precision == "bf16":
        return round_bf16(x)
    return x
