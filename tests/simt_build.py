"""Compile small C++ programs against the SIMT emulator (csrc/simt) for its self-tests.

The emulator's own tests plant bugs in kernels (a removed __syncthreads, a divergent
barrier, an out-of-bounds shared-memory index) and check that they are caught. Those
kernels must not ship in the extension, so each test builds a tiny program with g++.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
SIMT_DIR = pathlib.Path(__file__).resolve().parent / "simt"
CUDA_INCLUDE = pathlib.Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"
HAVE_BOOST_CONTEXT = pathlib.Path("/usr/include/boost/context/detail/fcontext.hpp").exists()


def compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")


@functools.cache
def preset(name="release") -> dict:
    """The cache variables of a configure preset of CMakePresets.json, its parents' included:
    the one place that holds the C++ standard and the sanitizer flags the extension is
    built with, which these programs are compiled with too."""
    presets = {p["name"]: p for p in json.loads((ROOT / "CMakePresets.json").read_text())["configurePresets"]}
    chain, p = [], presets[name]
    while p is not None:
        chain.append(p)
        parent = p.get("inherits")
        p = presets[parent] if parent else None
    out = {}
    for p in reversed(chain):
        out.update(p.get("cacheVariables", {}))
    return out


def flags(fibers="auto", sanitize=False, toolkit=True):
    """(compile flags, link libraries). -O1 -g0: these programs are compiled once per test and
    per planted mutant, so compile time matters more than the emulator's speed."""
    f = [f"-std=c++{preset()['CMAKE_CXX_STANDARD']}", "-O1", "-g0", "-DCCN_EMU", "-I" + str(CSRC)]
    if toolkit and (CUDA_INCLUDE / "vector_types.h").exists():
        f += ["-isystem", str(CUDA_INCLUDE)]
    else:
        f += ["-DCCN_SIMT_NO_TOOLKIT"]
    libs = ["-lpthread"]
    if fibers == "boost" or (fibers == "auto" and HAVE_BOOST_CONTEXT):
        f.append("-DCCN_SIMT_BOOST_CONTEXT")
        libs.append("-lboost_context")
    if sanitize:
        f += preset()["CCN_SANITIZE_FLAGS"].split(";")
    return f, libs


def build(sources, out_dir, *, include_first=None, include_dirs=(), fibers="auto", sanitize=False, toolkit=True):
    """Compile `sources` plus the emulator runtime into an executable; return its path.
    toolkit=False builds as on a machine without CUDA (simt.h's own vector types).
    include_first: a directory searched before all others (a mutant's); include_dirs:
    searched after csrc/."""
    f, libs = flags(fibers, sanitize, toolkit)
    if include_first is not None:
        f = ["-I" + str(include_first)] + f
    f += ["-I" + str(d) for d in include_dirs]
    srcs = [str(s) for s in sources] + [str(CSRC / "simt" / "simt.cpp")]
    key = hashlib.sha1(" ".join(srcs + f).encode()).hexdigest()[:10]
    exe = pathlib.Path(out_dir) / f"prog_{key}"
    cmd = [compiler(), *f, *srcs, "-o", str(exe), *libs]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"compile failed: {' '.join(cmd)}\n{r.stderr[-4000:]}")
    return exe


def run(exe, order="forward", env=None, timeout=120):
    e = dict(os.environ, CCN_SIMT_ORDER=order)
    e.update(env or {})
    return subprocess.run([str(exe)], check=False, capture_output=True, text=True, env=e, timeout=timeout)


SYNCTHREADS = re.compile(r"\b__syncthreads\(\)\s*;")


def syncthreads_mutants(header, out_dir):
    """Yield (line_number, mutant_dir) for each __syncthreads of csrc/<header>: a copy of
    the header with that one barrier deleted, in its own directory (put it first on the
    include path so it shadows the real one)."""
    lines = (CSRC / header).read_text().splitlines()
    sites = [i for i, line in enumerate(lines) if SYNCTHREADS.search(line)]
    assert len(sites) >= 2, f"{header}: a tiled kernel has a barrier after the loads and one before the next loads"
    for site in sites:
        mutant_dir = pathlib.Path(out_dir) / f"mutant_{pathlib.Path(header).stem}_{site}"
        mutant_dir.mkdir()
        mutated = list(lines)
        mutated[site] = SYNCTHREADS.sub(";", mutated[site])
        (mutant_dir / header).write_text("\n".join(mutated) + "\n")
        yield site + 1, mutant_dir


def text_mutants(path, pattern, replacement, out_dir):
    """Yield (line_number, mutant_dir) for each line of the file `path` that the regular
    expression `pattern` matches: a copy of the file with that line's matches replaced by
    `replacement`, under the same name in its own directory (put it first on the include
    path, and include the file with <...>, so it shadows the original)."""
    path = pathlib.Path(path)
    lines = path.read_text().splitlines()
    rx = re.compile(pattern)
    sites = [i for i, line in enumerate(lines) if rx.search(line)]
    assert sites, f"{path.name}: no line matches {pattern!r}"
    for site in sites:
        digest = hashlib.sha1(pattern.encode()).hexdigest()[:6]
        mutant_dir = pathlib.Path(out_dir) / f"mutant_{path.stem}_{site}_{digest}"
        mutant_dir.mkdir(parents=True)
        mutated = list(lines)
        mutated[site] = rx.sub(replacement, mutated[site])
        (mutant_dir / path.name).write_text("\n".join(mutated) + "\n")
        yield site + 1, mutant_dir
