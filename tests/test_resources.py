"""Register and local-memory budget of the hot kernels (csrc/RESOURCES.md has the table).

Recompiles each hot kernel file with ``nvcc -Xptxas -v`` for sm_90 and fails if any kernel
spills registers to local memory (non-zero "spill stores" or "spill loads"): a spill in a
GEMM inner loop costs more than any tiling gains, and it appears silently when someone
grows a register tile. Skipped when nvcc is not installed. About 1-2 s per file.

Also a script: ``python tests/test_resources.py [ARCH ...]`` (default 80 90) prints the
markdown table of csrc/RESOURCES.md for every csrc/*.cu file.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"
#: The files whose kernels carry the training time (each is checked only if present).
HOT_FILES = ("gemm.cu", "gemm_tc.cu", "conv_tc.cu", "conv_fwd.cu", "conv_dgrad.cu", "conv_wgrad.cu", "lrn.cu",
             "pool.cu")


def nvcc():
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    found = shutil.which("nvcc") or str(pathlib.Path(cuda_home) / "bin" / "nvcc")
    return found if pathlib.Path(found).exists() else None


def _demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], check=False, input="\n".join(names), capture_output=True,
                         text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def ptxas_report(path, arch="90"):
    """Compile one .cu file; return [{kernel, arch, registers, stack, spill_stores,
    spill_loads, smem, barriers}] for each kernel, from ptxas -v (the same flags as the
    CMake build's)."""
    # -cubin: device code only (the host pass adds nothing to the report, and time).
    cmd = [nvcc(), "-cubin", f"-arch=sm_{arch}", "-Xptxas", "-v", "--expt-relaxed-constexpr", str(path),
           "-I" + str(CSRC), "-o", os.devnull]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    kernels, cur, props_of = [], None, None
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r"Compiling entry function '(\S+)' for 'sm_(\d+)'", line)
        if m:
            cur = dict(kernel=m.group(1), arch=m.group(2), registers=0, stack=0, spill_stores=0, spill_loads=0,
                       smem=0, barriers=0)
            kernels.append(cur)
            continue
        if cur is None:
            continue
        # "Function properties for F" precedes F's stack/spill line; F may be a non-inlined
        # device function (e.g. double sin/cos's __internal_trig_reduction_slowpathd),
        # whose line must not overwrite the kernel's.
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            props_of = m.group(1)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and props_of == cur["kernel"]:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["registers"] = int(m.group(1))
            b = re.search(r"used (\d+) barriers", line)
            s = re.search(r"(\d+) bytes smem", line)
            cur["barriers"] = int(b.group(1)) if b else 0
            cur["smem"] = int(s.group(1)) if s else 0
    names = _demangle([k["kernel"] for k in kernels])
    for k in kernels:
        k["kernel"] = names[k["kernel"]]
    return kernels


def _short(name):
    """ccn::conv_dgrad_kernel1<256, 16>(const float*, ...) -> conv_dgrad_kernel1<256, 16>"""
    name = name.replace("ccn::", "")
    depth = 0
    for i, ch in enumerate(name):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            return name[:i].replace("void ", "")
    return name


_PRESENT = [f for f in HOT_FILES if (CSRC / f).exists()]


@pytest.mark.skipif(nvcc() is None, reason="needs nvcc (the CUDA toolkit)")
@pytest.mark.parametrize("name", _PRESENT)
def test_hot_kernels_do_not_spill(name):
    report = ptxas_report(CSRC / name, "90")
    assert report, f"ptxas reported no kernels for {name}"
    spilling = [f"{_short(k['kernel'])}: {k['spill_stores']} bytes spill stores, {k['spill_loads']} bytes spill "
                f"loads ({k['registers']} registers)" for k in report if k["spill_stores"] or k["spill_loads"]]
    assert not spilling, f"{name} (sm_90) spills registers:\n" + "\n".join(spilling)


# An 8 x 8 register tile (as conv_fwd_kernel2's) under launch bounds that allow 32 registers.
_PLANTED_SPILL = r"""
__global__ void __launch_bounds__(1024, 2) planted_spill(const float* a, const float* b, float* c, int k) {
  float acc[8][8] = {};
  for (int kk = 0; kk < k; ++kk) {
    float x[8], y[8];
    for (int i = 0; i < 8; ++i) { x[i] = a[kk * 8 + i + threadIdx.x]; y[i] = b[kk * 8 + i]; }
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(x[i], y[j], acc[i][j]);
  }
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) c[(i * 8 + j) * blockDim.x + threadIdx.x] = acc[i][j];
}
"""


@pytest.mark.skipif(nvcc() is None, reason="needs nvcc (the CUDA toolkit)")
def test_a_planted_spill_is_seen(tmp_path):
    """The parser really reports spills: a kernel with 64 live accumulators and 32 registers."""
    src = tmp_path / "planted_spill.cu"
    src.write_text(_PLANTED_SPILL)
    report = ptxas_report(src, "90")
    assert len(report) == 1 and report[0]["registers"] <= 32, report
    assert report[0]["spill_stores"] > 0 and report[0]["spill_loads"] > 0, report


def main(archs):
    header = ("| file | kernel | sm | registers | spill stores / loads (bytes) | stack (bytes) | static smem (bytes) "
              "| barriers |")
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    for path in sorted(CSRC.glob("*.cu")):
        for arch in archs:
            for k in ptxas_report(path, arch):
                rows.append(f"| {path.name} | `{_short(k['kernel'])}` | {k['arch']} | {k['registers']} | "
                            f"{k['spill_stores']} / {k['spill_loads']} | {k['stack']} | {k['smem']} | "
                            f"{k['barriers']} |")
    print("\n".join(rows))


if __name__ == "__main__":
    if nvcc() is None:
        sys.exit("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    main(sys.argv[1:] or ["80", "90"])
