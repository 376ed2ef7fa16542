"""Static machine-code report of the CUDA kernels: what each kernel's main loop issues.

    python bench/sass_report.py                 # Markdown table, sm_90
    python bench/sass_report.py --arch 80       # the same for sm_80
    python bench/sass_report.py --json out.json # every kernel, both architectures

No GPU is needed: the kernels are compiled with the project's own flags and disassembled
with NVIDIA's ``cuobjdump`` (``-sass`` and ``-res-usage``), names demangled with
``c++filt``. An existing CMake build directory with the CUDA objects for sm_80 and sm_90
(``build/inplace`` first, then any ``build/*``) is brought up to date with ``cmake --build
--target ccn_cuda_kernels``; without one, each csrc/*.cu is compiled by nvcc into
build/sass with the flags read from CMakeLists.txt (``-lineinfo --expt-relaxed-constexpr``,
Release ``-O3``) and the release preset of CMakePresets.json (C++ standard, architectures).
``cuobjdump`` is looked up on PATH, in $CUDA_HOME/bin, /usr/local/cuda/bin, and in the ``nvidia-cuda-cuobjdump`` wheel.

The main loop of a kernel (the rule, applied to the SASS of each function):
  every backward branch (``BRA`` to a lower address) closes a loop whose body is the
  instructions from the branch target to the branch. The main loop is the loop with the
  most FMA-class instructions (FFMA, HMMA, DFMA) in its body; ties go to the smaller body
  (the innermost loop). A kernel with no FMA in any loop (the memory-bound kernels) takes
  its largest loop; a kernel with no loop is measured over the whole function.

Per kernel and architecture:
  regs, smem         registers per thread (``-res-usage``); shared memory per block = static
                     + dynamic (the launcher's size, evaluated from the constexprs of csrc/
                     for the GEMM-family kernels; "+dyn" where it depends on run-time sizes)
                     + the 1 KB the hardware reserves per block on sm_80 and later
  blocks/SM, warps   occupancy from registers (256-register warp allocation), shared memory
                     (128-byte allocation), threads and the block limit of ARCH_LIMITS;
                     threads per block from ``__launch_bounds__`` (256 where absent)
  fma%               FFMA (+HMMA, DFMA) / all instructions of the main loop, NOPs excluded
  int/fma            integer ALU instructions (INT_OPS) per FMA in the main loop
  lds128, lds32      128-bit and 32-bit shared loads in the main loop (LDS.64 counted apart;
                     ptxas's never-executed "@!PT LDS RZ, [RZ]" padding and any
                     ``LDS RZ, [RZ]``, which loads nothing, not counted)
  ldgsts/ldsm/hmma   whether the kernel uses cp.async, ldmatrix, tensor-core MMA (anywhere)
  loop hmma, insns/hmma, loop ldsm
                     tensor-core main loops (``--tc`` table): HMMA and LDSM instructions in
                     the main loop and all its issued instructions (NOPs excluded) per HMMA.
                     Each HMMA is 2048 (m16n8k8.tf32) or 4096 (m16n8k16.bf16) FLOPs, so the
                     FMA share says little there; instructions per HMMA is the loop's
                     overhead (operand conversions, fragment loads, copy addressing) per
                     tensor-core instruction, which the tensor pipe must hide
  local              spill traffic: LOCAL and STACK bytes (-res-usage), LDL/STL instructions
                     anywhere in the kernel
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
OBJ_SUBDIR = Path("CMakeFiles/ccn_cuda_kernels.dir/csrc")

# Per-SM limits (CUDA C Programming Guide, "Technical Specifications per Compute Capability").
ARCH_LIMITS = {
    80: {"regs": 65536, "smem": 164 * 1024, "threads": 2048, "blocks": 32, "warps": 64},
    90: {"regs": 65536, "smem": 228 * 1024, "threads": 2048, "blocks": 32, "warps": 64},
}
RESERVED_SMEM = 1024  # per block, sm_80 and later (sm_90's -res-usage already includes it)

FMA_OPS = ("FFMA", "HMMA", "DFMA")
# Integer ALU work that competes with the FMAs for issue slots (uniform-datapath U* ops and
# moves are not counted).
INT_OPS = ("IMAD", "IADD3", "IADD", "VIADD", "VIADDMNMX", "LEA", "SHF", "SHL", "SHR", "LOP3", "LOP", "ISETP",
           "IMNMX", "IABS", "SEL", "PRMT", "ISCADD", "IMUL", "BMSK", "FLO", "POPC", "BREV")

# Dynamic shared memory (floats) that each GEMM-family launcher passes, as an expression over
# the constexprs of csrc/ and the kernel's template arguments (BM, BN for conv_dgrad_kernel1).
DYNAMIC_SMEM_FLOATS = {
    "conv_fwd_kernel1": "kConvSmemFloats",
    "conv_fwd_kernel2": "kConvFwd2SmemFloats",
    "conv_fwd_kernel3": "kConvFwd2SmemFloats",
    "conv_dgrad_kernel1": "kConvBK * (BM + kConvPad) + kConvBK * (BN + kConvPad)",
    "conv_dgrad_kernel2": "kDgrad2Stages * (kConvBK * kDgrad2LdA + kConvBK * (BN + kConvPad))",
    "conv_wgrad_kernel1": "kConvSmemFloats",
    "conv_wgrad_kernel2": "kWgrad2SmemFloats",
    "conv_wgrad_kernel3": "kWgrad2SmemFloats",
    "conv_wgrad_kernel4": "kWgrad4SmemFloats",
    "conv_wgrad_kernel5": "kWgrad4SmemFloats",
    "gemm_kernel1": "kGemmSmemFloats",
    "gemm_kernel2": "kGemm2SmemFloats",
    "gemm_tc_kernel1": "kGemmTcStages * ((kGemmTcBK * (BM + 8) if TA else BM * (kGemmTcBK + 4))"
                       " + (kGemmTcBN * (kGemmTcBK + 4) if TB else kGemmTcBK * (kGemmTcBN + 8)))",
    # TcTile stages of tc_mainloop.cuh (the same for every precision and copy width).
    # conv_tc_fwd_kernel1<P, V>: 3xtf32 (P = 1) with 16-byte copies runs a 64-row tile.
    "conv_tc_fwd_kernel1": "kTcStages * ((64 if P == 1 and V else 128) * (kTcBK + 4) + 64 * (kTcBK + 4))",
    "conv_tc_dgrad_kernel1": "kTcStages * (128 * (kTcBK + 4) + kTcBK * (64 + 8))",
    "conv_tc_wgrad_kernel1": "kTcStages * (kTcBK * (64 + 8) + kTcBK * (128 + 8))",
}
DYNAMIC_TEMPLATE_PARAMS = {"conv_dgrad_kernel1": ("BM", "BN"), "conv_dgrad_kernel2": ("BN",),
                           "gemm_tc_kernel1": ("BM", "TA", "TB"), "conv_tc_fwd_kernel1": ("P", "V")}


# ---------------------------------------------------------------------------- tools
def find_tool(name: str) -> str | None:
    """Path of an NVIDIA tool (cuobjdump, nvdisasm) or None."""
    found = shutil.which(name)
    if found:
        return found
    dirs = [Path("/usr/local/cuda/bin")]
    if os.environ.get("CUDA_HOME"):
        dirs.insert(0, Path(os.environ["CUDA_HOME"]) / "bin")
    try:  # the nvidia-cuda-cuobjdump / -nvdisasm wheels put them in nvidia/cu*/bin
        import nvidia

        for base in nvidia.__path__:
            dirs.extend(sorted(Path(base).glob("cu*/bin")))
    except ImportError:
        pass
    for d in dirs:
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return str(d / name)
    return None


def have_nvcc() -> bool:
    return shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").is_file()


def _run(cmd, **kw) -> str:
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout[-2000:]}"
                           f"{res.stderr[-4000:]}")
    return res.stdout


# ---------------------------------------------------------------------------- build
def _has_archs(build: Path, archs=(80, 90)) -> bool:
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return False
    m = re.search(r"^CMAKE_CUDA_ARCHITECTURES:\w+=(.*)$", cache.read_text(errors="replace"), re.MULTILINE)
    have = set(re.findall(r"\d+", m.group(1))) if m else set()
    return all(str(a) in have for a in archs)


def cmake_cuda_flags() -> list[str]:
    """The nvcc flags of the ccn_cuda_kernels target: its CUDA compile options (read from
    CMakeLists.txt), the CUDA architectures and the C++ standard (the release preset of
    CMakePresets.json), and what CMake adds for a Release build (-O3 -DNDEBUG) and a
    position-independent library."""
    text = (ROOT / "CMakeLists.txt").read_text()
    opts = re.search(r"\$<\$<COMPILE_LANGUAGE:CUDA>:([^>]*)>", text)
    presets = json.loads((ROOT / "CMakePresets.json").read_text())["configurePresets"]
    release = next(p for p in presets if p["name"] == "release")["cacheVariables"]
    if not opts:
        raise RuntimeError("CMakeLists.txt: could not read the CUDA compile options")
    archs, std = release["CMAKE_CUDA_ARCHITECTURES"], release["CMAKE_CXX_STANDARD"]
    flags = ["-O3", "-DNDEBUG", "-Xcompiler=-fPIC", f"-std=c++{std}", *opts.group(1).split()]
    for a in archs.split(";"):
        flags.append(f"--generate-code=arch=compute_{a},code=[compute_{a},sm_{a}]")
    return flags


def _nvcc_objects(out: Path) -> list[Path]:
    """csrc/*.cu compiled one by one with cmake_cuda_flags() into `out` (when out of date)."""
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    out.mkdir(parents=True, exist_ok=True)
    newest = _newest_source()
    flags = cmake_cuda_flags()
    jobs = []
    for src in sorted(CSRC.glob("*.cu")):
        obj = out / (src.name + ".o")
        if not obj.exists() or obj.stat().st_mtime < newest:
            jobs.append(subprocess.Popen([nvcc, *flags, "-I", str(CSRC), "-c", str(src), "-o", str(obj)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            if len(jobs) >= (os.cpu_count() or 2):
                _wait(jobs.pop(0))
    for job in jobs:
        _wait(job)
    return sorted(out.glob("*.cu.o"))


def _newest_source() -> float:
    """mtime of the newest input of the kernels' objects: csrc/ (ptx/ and simt/ included),
    CMakeLists.txt, CMakePresets.json."""
    inputs = [p for p in CSRC.rglob("*") if p.is_file()] + [ROOT / "CMakeLists.txt", ROOT / "CMakePresets.json"]
    return max(p.stat().st_mtime for p in inputs)


def _fresh_objects(build: Path) -> list[Path] | None:
    """The objects of `build` when there is one per csrc/*.cu and each is newer than every
    input (a pip build directory, whose isolated CMake is gone, is still usable), else None."""
    objs = sorted((build / OBJ_SUBDIR).glob("*.cu.o"))
    names = {o.name for o in objs}
    if not objs or any(src.name + ".o" not in names for src in CSRC.glob("*.cu")):
        return None
    newest = _newest_source()
    return objs if all(o.stat().st_mtime >= newest for o in objs) else None


def _wait(job) -> None:
    stdout, stderr = job.communicate()
    if job.returncode != 0:
        raise RuntimeError(f"{' '.join(job.args)} failed ({job.returncode}):\n{stdout[-2000:]}{stderr[-4000:]}")


def build_objects(build_dir: str | Path | None = None) -> list[Path]:
    """The nvcc objects of csrc/*.cu for sm_80 and sm_90, built with the CMake build's flags
    and brought up to date; raises RuntimeError when nvcc is missing or the build fails.

    An existing CMake build directory (``build_dir``, else build/inplace or any build/*
    with the CUDA objects for both architectures) is updated with ``cmake --build --target
    ccn_cuda_kernels``; where there is none (or it cannot be rebuilt, e.g. a pip build
    directory whose isolated environment is gone) each csrc/*.cu is compiled by nvcc into
    build/sass with the flags read from CMakeLists.txt and CMakePresets.json (cmake_cuda_flags)."""
    if not have_nvcc():
        raise RuntimeError("nvcc not found (PATH, /usr/local/cuda/bin): cannot compile the kernels")
    if build_dir is not None:
        candidates = [Path(build_dir)]
    else:
        depth = len(OBJ_SUBDIR.parts)
        found = sorted(p.parents[depth - 1] for p in (ROOT / "build").glob(f"*/{OBJ_SUBDIR}"))
        candidates = sorted(found, key=lambda b: b.name != "inplace")
        candidates = [c for c in candidates if _has_archs(c)]
    errors = []
    for build in candidates:
        try:
            _run(["cmake", "--build", str(build), "--target", "ccn_cuda_kernels", "-j", str(os.cpu_count() or 2)])
        except (RuntimeError, OSError) as e:
            fresh = _fresh_objects(build)
            if fresh:  # cannot be rebuilt, but nothing changed since it was built
                return fresh
            errors.append(f"{build}: {e}")
            continue
        objs = sorted((build / OBJ_SUBDIR).glob("*.cu.o"))
        if objs:
            return objs
        errors.append(f"{build}: no objects under {OBJ_SUBDIR}")
    if build_dir is not None:
        raise RuntimeError("could not build the CUDA objects:\n" + "\n".join(errors))
    return _nvcc_objects(ROOT / "build" / "sass")


# ---------------------------------------------------------------------------- source facts
@functools.cache
def source_constants() -> dict[str, int]:
    """`constexpr int` values of csrc/*.cuh and *.h that evaluate to plain integers."""
    pending: dict[str, str] = {}
    for path in sorted(CSRC.glob("*.cuh")) + sorted(CSRC.glob("*.h")):
        for decl in re.findall(r"constexpr\s+(?:int|long long|unsigned)\s+(\w+\s*=[^;{]+);", path.read_text()):
            for part in re.split(r",(?![^()]*\))", decl):  # commas outside parentheses
                if "=" in part:
                    name, expr = (s.strip() for s in part.split("=", 1))
                    pending[name] = expr
    env: dict[str, int] = {}
    progress = True
    while progress:  # headers use each other's constants: evaluate until nothing changes
        progress = False
        for name, expr in list(pending.items()):
            try:
                env[name] = int(eval(expr, {"__builtins__": {}}, dict(env)))
            except (NameError, SyntaxError, TypeError, ZeroDivisionError):  # not yet known, or over template parameters
                continue
            del pending[name]
            progress = True
    return env


@functools.cache
def launch_bounds() -> dict[str, int | str]:
    """Kernel name -> threads of its __launch_bounds__ (csrc/*.cuh); the expression itself
    where it is over template parameters (evaluated per instantiation by kernel_threads)."""
    env = source_constants()
    out: dict[str, int | str] = {}
    for path in sorted(CSRC.glob("*.cuh")):
        for expr, name in re.findall(r"__launch_bounds__\(([^)]*)\)\s+(\w+)\s*\(", path.read_text()):
            expr = expr.split(",")[0]  # maxThreadsPerBlock (minBlocksPerMultiprocessor follows)
            if set(re.findall(r"\w+", expr)) & set(DYNAMIC_TEMPLATE_PARAMS.get(name, ())):
                out[name] = expr  # a template parameter, even if a constant elsewhere has its name
                continue
            try:
                out[name] = int(eval(expr, {"__builtins__": {}}, dict(env)))
            except NameError:  # a bound over template parameters
                out[name] = expr
            except (SyntaxError, TypeError):
                continue
    return out


def kernel_threads(base: str, template_args: list[str]) -> int:
    """Threads per block of one instantiation (256 where the kernel declares no bound)."""
    bound = launch_bounds().get(base, 256)
    if isinstance(bound, int):
        return bound
    env = dict(source_constants())
    env.update(zip(DYNAMIC_TEMPLATE_PARAMS.get(base, ()), (int(a) for a in template_args)))
    try:
        return int(eval(bound, {"__builtins__": {}}, env))
    except (NameError, SyntaxError, TypeError, ValueError):
        return 256


def dynamic_smem_bytes(base: str, template_args: list[str]) -> int | None:
    expr = DYNAMIC_SMEM_FLOATS.get(base)
    if expr is None:
        return None
    env = dict(source_constants())
    for pname, value in zip(DYNAMIC_TEMPLATE_PARAMS.get(base, ()), template_args):
        env[pname] = {"true": 1, "false": 0}.get(value.strip())
        if env[pname] is None:
            env[pname] = int(value)
    return 4 * int(eval(expr, {"__builtins__": {}}, env))


# ---------------------------------------------------------------------------- disassembly
_INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:(@!?U?P\w+)\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
_BRA_TARGET = re.compile(r"(0x[0-9a-f]+)")


@dataclass
class Insn:
    addr: int
    op: str      # full opcode with modifiers, e.g. "LDS.128", "FFMA"
    args: str
    pred: str = ""  # guard predicate, e.g. "@P0"; "@!PT" never executes (ptxas's placeholders beside LDGSTS)

    @property
    def base(self) -> str:
        return self.op.split(".")[0]


def parse_sass(text: str) -> dict[int, dict[str, list[Insn]]]:
    """cuobjdump -sass output -> {arch: {mangled name: [Insn]}}."""
    out: dict[int, dict[str, list[Insn]]] = {}
    arch, func = None, None
    for line in text.splitlines():
        m = re.match(r"\s*code for sm_(\d+)", line)
        if m:
            arch = int(m.group(1))
            out.setdefault(arch, {})
            continue
        m = re.match(r"\s*Function\s*:\s*(\S+)", line)
        if m and arch is not None:
            func = m.group(1)
            out[arch][func] = []
            continue
        m = _INSN.search(line)
        if m and arch is not None and func is not None:
            out[arch][func].append(Insn(int(m.group(1), 16), m.group(3), m.group(4), m.group(2) or ""))
    return out


def parse_res_usage(text: str) -> dict[int, dict[str, dict[str, int]]]:
    """cuobjdump -res-usage output -> {arch: {mangled name: {REG, STACK, SHARED, LOCAL}}}."""
    out: dict[int, dict[str, dict[str, int]]] = {}
    arch, func = None, None
    for line in text.splitlines():
        m = re.match(r"\s*arch = sm_(\d+)", line)
        if m:
            arch = int(m.group(1))
            continue
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            func = m.group(1)
            continue
        if func and arch is not None and "REG:" in line:
            vals = {k: int(v) for k, v in re.findall(r"(\w+)(?:\[\d+\])?:(\d+)", line)}
            out.setdefault(arch, {})[func] = {k: vals.get(k, 0) for k in ("REG", "STACK", "SHARED", "LOCAL")}
            func = None
    return out


def demangle(names) -> dict[str, str]:
    names = list(names)
    tool = shutil.which("c++filt") or find_tool("cu++filt")
    if not tool or not names:
        return {n: n for n in names}
    res = subprocess.run([tool], check=False, input="\n".join(names) + "\n", capture_output=True, text=True)
    lines = res.stdout.splitlines()
    return dict(zip(names, lines)) if res.returncode == 0 and len(lines) == len(names) else {n: n for n in names}


def split_name(demangled: str) -> tuple[str, list[str]]:
    """"void ccn::gemm_kernel2<false, true>(float const*, ...)" -> ("gemm_kernel2", ["false", "true"])."""
    head = demangled.split("(", 1)[0]
    head = re.sub(r"^.*?\bvoid\s+", "", head)
    targs: list[str] = []
    if head.endswith(">") and "<" in head:
        head, targs_s = head.split("<", 1)
        targs = [t.strip() for t in targs_s[:-1].split(",") if t.strip()]
    return head.split("::")[-1].strip(), targs


# ---------------------------------------------------------------------------- analysis
def find_loops(insns: list[Insn]) -> list[tuple[int, int]]:
    """(first, last) instruction indices of every backward branch's loop body."""
    index = {ins.addr: i for i, ins in enumerate(insns)}
    loops = []
    for i, ins in enumerate(insns):
        if ins.base != "BRA":
            continue
        m = _BRA_TARGET.search(ins.args)
        if not m:
            continue
        target = int(m.group(1), 16)
        if target <= ins.addr and target in index:
            loops.append((index[target], i))
    return loops


def _is_fma(ins: Insn) -> bool:
    return ins.base in FMA_OPS


def main_loop(insns: list[Insn]) -> tuple[int, int] | None:
    """The rule of the module docstring: most FMAs, then the smallest body; else the largest."""
    loops = find_loops(insns)
    if not loops:
        return None

    def fmas(lo):
        return sum(_is_fma(x) for x in insns[lo[0]:lo[1] + 1])

    best = max(loops, key=lambda lo: (fmas(lo), -(lo[1] - lo[0])))
    if fmas(best) == 0:
        best = max(loops, key=lambda lo: lo[1] - lo[0])
    return best


@dataclass
class KernelStats:
    name: str                  # demangled, without the parameter list
    kernel: str                # base name, e.g. "gemm_kernel2"
    template_args: list
    source: str                # csrc/<file>.cu whose object holds it
    arch: int
    regs: int
    stack: int
    local_bytes: int
    static_smem: int           # bytes, without the reserved 1 KB
    dynamic_smem: int | None   # bytes the launcher passes (None: depends on run-time sizes)
    smem_per_block: int        # static + dynamic (when known) + reserved
    threads: int
    blocks_per_sm: int
    warps_per_sm: int
    occupancy_limit: str       # what limits the blocks per SM
    total_insns: int
    loop_insns: int            # 0: no loop, the whole function was measured
    loop_fma: int
    fma_share: float
    int_ops: int
    int_per_fma: float | None
    lds128: int
    lds64: int
    lds32: int
    ldgsts: bool
    ldsm: bool
    hmma: bool
    ldl_stl: int
    loop_hmma: int = 0         # HMMA instructions in the main loop
    loop_ldsm: int = 0         # LDSM (ldmatrix) instructions in the main loop
    insns_per_hmma: float | None = None  # main-loop instructions (NOPs excluded) per HMMA
    loop_ops: dict = field(default_factory=dict)


def occupancy(arch: int, regs: int, smem_block: int, threads: int) -> tuple[int, str]:
    lim = ARCH_LIMITS[arch]
    warps = -(-threads // 32)
    per_warp_regs = -(-max(regs, 1) * 32 // 256) * 256
    by = {  # on a tie the first named limit is reported
        "threads": lim["threads"] // (warps * 32),
        "blocks": lim["blocks"],
        "smem": lim["smem"] // (-(-smem_block // 128) * 128) if smem_block else lim["blocks"],
        "regs": (lim["regs"] // per_warp_regs) // warps,
    }
    limiter = min(by, key=lambda k: by[k])
    return by[limiter], limiter


def analyse(arch: int, mangled: str, demangled: str, insns: list[Insn], res: dict, source: str) -> KernelStats:
    base, targs = split_name(demangled)
    lo = main_loop(insns)
    body = [x for x in (insns[lo[0]:lo[1] + 1] if lo else insns) if x.base != "NOP"]
    ops: dict[str, int] = {}
    for x in body:
        ops[x.op] = ops.get(x.op, 0) + 1
    fma = sum(_is_fma(x) for x in body)
    hmma = sum(x.base == "HMMA" for x in body)
    ints = sum(x.base in INT_OPS for x in body)
    # ptxas pads cp.async sequences with "@!PT LDS RZ, [RZ]" (never executed) and may place
    # `LDS RZ, [RZ]` (a load into the zero register) before the copies: neither moves data,
    # so neither is a shared load of the K loop (both still count as issued instructions).
    lds = [x.op for x in body if x.base == "LDS" and x.pred != "@!PT" and not x.args.replace(" ", "").startswith("RZ,")]
    lds128 = sum(".128" in o for o in lds)
    lds64 = sum(".64" in o for o in lds)
    reported = res.get("SHARED", 0)
    static = max(0, reported - RESERVED_SMEM) if arch >= 90 and reported >= RESERVED_SMEM else reported
    dyn = dynamic_smem_bytes(base, targs)
    uses_dynamic = base in DYNAMIC_SMEM_FLOATS or _uses_dynamic_shared(base)
    smem_block = static + (dyn or 0) + RESERVED_SMEM
    threads = kernel_threads(base, targs)
    blocks, limiter = occupancy(arch, res.get("REG", 0), smem_block, threads)
    if uses_dynamic and dyn is None:
        limiter += " (+dyn smem unknown)"
    return KernelStats(
        name=demangled.split("(", 1)[0].replace("void ", "", 1).replace("ccn::", ""), kernel=base, template_args=targs,
        source=source,
        arch=arch, regs=res.get("REG", 0), stack=res.get("STACK", 0), local_bytes=res.get("LOCAL", 0),
        static_smem=static, dynamic_smem=dyn, smem_per_block=smem_block, threads=threads, blocks_per_sm=blocks,
        warps_per_sm=blocks * (-(-threads // 32)), occupancy_limit=limiter,
        total_insns=sum(x.base != "NOP" for x in insns), loop_insns=len(body) if lo else 0, loop_fma=fma,
        fma_share=fma / len(body) if body else 0.0, int_ops=ints, int_per_fma=ints / fma if fma else None,
        lds128=lds128, lds64=lds64, lds32=len(lds) - lds128 - lds64,
        ldgsts=any(x.base == "LDGSTS" for x in insns), ldsm=any(x.base == "LDSM" for x in insns),
        hmma=any(x.base == "HMMA" for x in insns), ldl_stl=sum(x.base in ("LDL", "STL") for x in insns),
        loop_hmma=hmma, loop_ldsm=sum(x.base == "LDSM" for x in body),
        insns_per_hmma=len(body) / hmma if hmma else None,
        loop_ops=dict(sorted(ops.items(), key=lambda kv: -kv[1])),
    )


@functools.cache
def _dynamic_shared_kernels() -> frozenset:
    names = set()
    for path in CSRC.glob("*.cuh"):
        text = path.read_text()
        for m in re.finditer(r"CCN_DYNAMIC_SHARED", text):
            k = re.findall(r"(\w+)\s*\(", text[:m.start()])
            kernels = [n for n in k if n.endswith(tuple(f"_kernel{i}" for i in range(1, 10)))]
            if kernels:
                names.add(kernels[-1])
    return frozenset(names)


def _uses_dynamic_shared(base: str) -> bool:
    return base in _dynamic_shared_kernels()


def report(build_dir=None, objects=None) -> list[KernelStats]:
    """Build (or reuse) the objects and analyse every kernel for every architecture in them."""
    cuobjdump = find_tool("cuobjdump")
    if cuobjdump is None:
        raise RuntimeError("cuobjdump not found: pip install nvidia-cuda-cuobjdump (or put the CUDA toolkit's "
                           "bin/ on PATH)")
    objects = objects or build_objects(build_dir)
    stats, seen = [], set()
    for obj in objects:
        sass = parse_sass(_run([cuobjdump, "-sass", str(obj)]))
        res = parse_res_usage(_run([cuobjdump, "-res-usage", str(obj)]))
        names = demangle({n for funcs in sass.values() for n in funcs})
        source = "csrc/" + obj.name[:-len(".o")]
        for arch, funcs in sorted(sass.items()):
            if arch not in ARCH_LIMITS:
                continue
            for mangled, insns in funcs.items():
                if (arch, mangled) in seen:  # a static kernel of a header several launchers include
                    continue
                seen.add((arch, mangled))
                stats.append(analyse(arch, mangled, names[mangled], insns, res.get(arch, {}).get(mangled, {}), source))
    return stats


@functools.cache
def report_cached() -> list[KernelStats]:
    """report() of the default build, once per process (the tests and perf_model share it)."""
    return report()


# ---------------------------------------------------------------------------- output
def markdown(stats: list[KernelStats], arch: int = 90) -> str:
    rows = [s for s in stats if s.arch == arch]
    head = ("| kernel | regs | smem/block | blocks/SM | warps/SM | loop insns | fma% | int/fma | lds128 | lds32 "
            "| ldgsts | ldsm | hmma | local / stack / LDL+STL |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in sorted(rows, key=lambda s: (s.source, s.name)):
        smem = f"{s.smem_per_block / 1024:.1f} KB" + ("" if s.dynamic_smem is not None or
                                                      "unknown" not in s.occupancy_limit else " +dyn")
        ipf = f"{s.int_per_fma:.2f}" if s.int_per_fma is not None else "-"
        local = f"{s.local_bytes} B / {s.stack} B / {s.ldl_stl}"
        out.append(f"| `{s.name}` | {s.regs} | {smem} | {s.blocks_per_sm} ({s.occupancy_limit}) | {s.warps_per_sm} "
                   f"| {s.loop_insns or s.total_insns} | {100 * s.fma_share:.1f} | {ipf} | {s.lds128} | {s.lds32} "
                   f"| {'yes' if s.ldgsts else 'no'} | {'yes' if s.ldsm else 'no'} | {'yes' if s.hmma else 'no'} "
                   f"| {local} |")
    return "\n".join(out)


def tc_markdown(stats: list[KernelStats], arch: int = 90) -> str:
    """The tensor-core kernels (HMMA in the main loop): per main loop, HMMA and LDSM counts and
    issued instructions per HMMA."""
    rows = [s for s in stats if s.arch == arch and s.loop_hmma]
    head = "| kernel | regs | blocks/SM | loop insns | loop hmma | insns/hmma | loop ldsm | lds128 | lds32 | LDL+STL |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in sorted(rows, key=lambda s: (s.source, s.name)):
        out.append(f"| `{s.name}` | {s.regs} | {s.blocks_per_sm} ({s.occupancy_limit}) | {s.loop_insns} "
                   f"| {s.loop_hmma} | {s.insns_per_hmma:.1f} | {s.loop_ldsm} | {s.lds128} | {s.lds32} "
                   f"| {s.ldl_stl} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", type=int, default=90, choices=sorted(ARCH_LIMITS), help="table for sm_ARCH")
    ap.add_argument("--build-dir", help="CMake build directory to reuse (default: build/inplace or build/sass)")
    ap.add_argument("--json", metavar="PATH", help="also write every kernel of every architecture as JSON")
    ap.add_argument("--kernel", help="only kernels whose name contains this")
    ap.add_argument("--ops", action="store_true", help="also print each main loop's opcode counts")
    ap.add_argument("--tc", action="store_true",
                    help="also print the tensor-core main loops: HMMA, LDSM and instructions per HMMA")
    args = ap.parse_args(argv)
    try:
        stats = report(args.build_dir)
    except RuntimeError as e:
        print(f"sass_report: {e}", file=sys.stderr)
        return 2
    if args.kernel:
        stats = [s for s in stats if args.kernel in s.name]
    print(f"## SASS (static, sm_{args.arch})\n")
    print(markdown(stats, args.arch))
    if args.tc:
        print(f"\n## Tensor-core main loops (static, sm_{args.arch})\n")
        print(tc_markdown(stats, args.arch))
    if args.ops:
        for s in stats:
            if s.arch == args.arch:
                print(f"\n{s.name}: " + ", ".join(f"{k} {v}" for k, v in s.loop_ops.items()))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(s) for s in stats], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
