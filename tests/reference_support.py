"""Helpers of the reference ops' tests shared by several op families' test files: the
float32-attains-the-kernel-tolerance check, and small float64 inputs for bad-input tests."""
from __future__ import annotations

import numpy as np
from tolerances import tol

F32, F64 = np.float32, np.float64
f64 = np.float64


def arr(*shape, dtype=f64):
    return np.ones(shape, dtype=dtype)


def both(fn, *arrays, **kw):
    """fn on float32 inputs, and on the same values upcast to float64."""
    return fn(*arrays, **kw), fn(*(a.astype(F64) if isinstance(a, np.ndarray) and
                                   a.dtype == F32 else a for a in arrays), **kw)


def assert_attains(op, got32, want64):
    """Every float32 output of `op` is within its kernel_vs_reference tolerance of float64."""
    got32 = got32 if isinstance(got32, tuple) else (got32,)
    want64 = want64 if isinstance(want64, tuple) else (want64,)
    for a, b in zip(got32, want64):
        assert np.asarray(a).dtype == F32
        np.testing.assert_allclose(a, b, **tol(op, "kernel_vs_reference"))
