"""What the tests/test_kernels_*.py files share: random arrays that are never zero, pointers
deliberately off a 16-byte boundary (the kernels' scalar paths), a runner that repeats a
computation in every emulator thread order, and the kernel-against-reference comparison."""
from __future__ import annotations

import os

import numpy as np
from tolerances import tol

ORDERS = ("forward", "reverse", "shuffle:5")


def randn(rng, *shape, scale=1.0, dtype=np.float32):
    """Standard normal values (times `scale`) with no exact zeros (a zero hides a kernel that
    forgets a term)."""
    a = rng.standard_normal(shape)
    a[a == 0] = 0.5
    return (a * scale).astype(dtype)


def assert_kernel_close(op, got, want, what=""):
    """A float32 kernel result against the float64 reference, at tests/tolerances.py's
    kernel_vs_reference tolerance of `op`; a NaN is an element the kernel never wrote (the
    outputs are poisoned before every launch)."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert not np.isnan(got).any(), f"{what}: an output element was never written (still NaN poison)"
    np.testing.assert_allclose(got, want, err_msg=what, **tol(op, "kernel_vs_reference"))


def unaligned(a):
    """A contiguous copy of `a` that starts 4 bytes past a 16-byte boundary."""
    a = np.asarray(a)
    buf = np.empty(a.size + 4, dtype=a.dtype)
    start = next(s for s in range(1, 4) if (buf.ctypes.data + s * a.itemsize) % 16 != 0)
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 16 != 0 and out.flags.c_contiguous
    return out


def in_every_thread_order(monkeypatch, fn):
    """{order: fn()} for each emulator thread order (fn must return arrays or lists of them)."""
    original = os.environ.get("CCN_SIMT_ORDER")
    results = {}
    try:
        for order in ORDERS:
            monkeypatch.setenv("CCN_SIMT_ORDER", order)
            results[order] = fn()
    finally:
        if original is None:
            monkeypatch.delenv("CCN_SIMT_ORDER", raising=False)
        else:
            monkeypatch.setenv("CCN_SIMT_ORDER", original)
    return results


def assert_same_in_every_order(results):
    first = results[ORDERS[0]]
    for order, got in results.items():
        for a, b in zip(_flat(got), _flat(first)):
            np.testing.assert_array_equal(a, b, err_msg=f"thread order {order}")


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flat(item)]
    return [np.asarray(x)]
