"""The cpu backend: the NumPy reference ops, unchanged (float32 and float64)."""
from __future__ import annotations


class CpuBackend:
    name = "cpu"

    def __init__(self):
        from .. import reference

        self._ref = reference

    def __getattr__(self, op):
        if op.startswith("_"):
            raise AttributeError(op)
        try:
            return getattr(self._ref, op)
        except AttributeError:
            raise AttributeError(f"the cpu backend has no op {op!r}") from None

    def __repr__(self):
        return "<backend cpu: NumPy reference>"
