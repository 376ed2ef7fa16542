"""Every kernel version of a family, timed side by side: which versions an op's family has,
and a backend with one of them forced.

A kernel backend's ``kernel_versions`` ({op name: version}, 0 or missing: the launcher
picks) forces ``<family>_kernel<n>``; the reference (cpu) backend has no versions. The
versions of a family are the ``<family>_kernel<n>`` kernels its csrc/ header defines, so
that a new version gets its own benchmark row with no edit here.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from harness.checkout import ROOT

# Op -> the kernel family whose version kernel_versions[op] picks (csrc/*.cuh: <family>_kernel<n>).
FAMILY = {"conv2d": "conv_fwd", "conv2d_wgrad": "conv_wgrad", "lrn": "lrn_forward", "lrn_backward": "lrn_backward",
          "linear": "gemm", "linear_backward": "gemm"}


def family_versions(family: str, csrc: Path = ROOT / "csrc") -> list[int]:
    """The n of every ``__global__ ... <family>_kernel<n>(`` defined in csrc/*.cuh, ascending."""
    pattern = re.compile(rf"__global__[^;{{]*?\b{re.escape(family)}_kernel(\d+)\s*\(")
    found = {int(m.group(1)) for p in csrc.glob("*.cuh") for m in pattern.finditer(p.read_text())}
    return sorted(found)


def versions(backend, op: str) -> list[int]:
    """The versions of `op` a backend can be forced to run ([] for the reference backend, or
    an op whose family has one kernel)."""
    if not hasattr(backend, "kernel_versions") or op not in FAMILY:
        return []
    found = family_versions(FAMILY[op])
    return found if len(found) > 1 else []


@contextlib.contextmanager
def forced(backend, ops, version: int):
    """`backend` with kernel_versions[op] = version for each op, restored afterwards."""
    saved = dict(backend.kernel_versions)
    try:
        for op in ops:
            backend.kernel_versions[op] = version
        yield backend
    finally:
        backend.kernel_versions.clear()
        backend.kernel_versions.update(saved)
