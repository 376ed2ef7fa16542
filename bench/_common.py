"""What every benchmark in bench/ shares: where arrays live and how calls are timed, how a
result is validated, and how the table and the JSON are written.

Two devices behind one interface, so that the CPU mode (run by the tests on every
machine) goes through the same code as the GPU mode except for the methods below:

    CpuDevice   NumPy arrays, PyTorch CPU as the baseline, host-clock timing
    CudaDevice  CuPy arrays, PyTorch CUDA (cuDNN/cuBLAS, TF32 off) as the baseline,
                CUDA-event timing of every call

Timing follows the workplace's method (.library/device/METHOD.md): warm up first (module
load, cuDNN's algorithm search, allocator), then time every call on its own (events on
the GPU) and report the median; callers rotate among several input sets so that a
working set smaller than the last-level cache does not flatter the numbers
(``rotation_sets``). Validation comes first and is separate: a row whose output disagrees
with the float64 reference is reported as MISMATCH and never timed.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

OK, MISMATCH = "ok", "MISMATCH"


def use_checkout():
    """Import cuda_convnet from this checkout when it was built in place
    (dev/inplace_build.sh, or gpu_check.sh) or when no other copy is installed;
    otherwise the installed one (CI: `pip install .`, extensions in site-packages)."""
    pkg = ROOT / "cuda_convnet"
    built_here = any(pkg.glob("_emu*.so")) or any(pkg.glob("_C*.so"))
    if built_here or importlib.util.find_spec("cuda_convnet") is None:
        sys.path.insert(0, str(ROOT))


def import_torch():
    """PyTorch with every float32 path strict: no TF32 in cuDNN convolutions or in cuBLAS
    matrix products (the comparison is float32 against float32)."""
    try:
        import torch
    except ImportError:
        return None
    import warnings

    # The legacy flags, on purpose: torch >= 2.9 prefers the fp32_precision properties,
    # but setting those makes later reads of the legacy flags raise ("a mix of the legacy
    # and new APIs"; seen with torch 2.13 even with conv and rnn both "ieee"), and
    # PyTorch's own code (inductor) still reads them. Set this way, the new properties
    # stay "none" (defer to the legacy flags). The benchmarks check the outcome anyway:
    # the baseline's error against float64 would show TF32 (~3e-4).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the deprecation notice
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest algorithm (during the warm-up)
    return torch


def pick_backend(name: str) -> str:
    """'auto' -> 'cuda' when the CUDA backend is usable, else 'cpu'."""
    if name != "auto":
        return name
    import cuda_convnet as ccn

    return "cuda" if ccn.has_cuda() else "cpu"


def make_device(backend_name: str, torch):
    return CudaDevice(torch) if backend_name == "cuda" else CpuDevice(torch)


# --------------------------------------------------------------------------- devices

class CpuDevice:
    """NumPy arrays; PyTorch CPU shares their memory (torch.from_numpy)."""

    kind = "cpu"
    baseline = "torch-cpu"

    def __init__(self, torch):
        self.xp = np
        self.torch = torch
        self.torch_device = "cpu"
        if torch is not None:
            torch.set_num_threads(os.cpu_count() or 1)

    def cache_bytes(self) -> int:
        """The last-level cache (what rotation must defeat); 32 MiB if unknown."""
        for index in (3, 2):
            p = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size")
            try:
                text = p.read_text().strip()
            except OSError:
                continue
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
        return 32 << 20

    def randn(self, seed, shape, scale=1.0, dtype=np.float32):
        a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
        if scale != 1.0:
            a *= np.float32(scale)
        return a.astype(dtype, copy=False)

    def randint(self, seed, high, shape):
        return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.int32)

    def asarray(self, a):
        a = np.asarray(a)  # (np.ascontiguousarray would make a 0-d array 1-d)
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def host(self, a) -> np.ndarray:
        return np.asarray(a)

    def to_torch(self, a):
        return self.torch.from_numpy(a)

    def from_torch(self, t):
        return t.detach().contiguous().numpy()

    def sync(self):
        pass

    def time_calls(self, fn, *, warmup, min_reps, max_reps, budget_s, side="ours"):
        """Seconds per call of fn(i) (i the call's index, for rotating inputs)."""
        for i in range(warmup):
            fn(i)
        times = []
        t_end = time.perf_counter() + budget_s
        for i in range(max_reps):
            t0 = time.perf_counter()
            fn(warmup + i)
            times.append(time.perf_counter() - t0)
            if len(times) >= min_reps and time.perf_counter() > t_end:
                break
        return times

    def copy_bandwidth(self, nbytes=256 << 20, reps=5):
        """Bytes read + written per second of a large np.copyto (the CPU's memory ceiling)."""
        n = nbytes // 4
        src = self.randn(1, (n,))
        dst = np.empty_like(src)
        times = self.time_calls(lambda i: np.copyto(dst, src), warmup=1, min_reps=reps,
                                max_reps=reps, budget_s=0)
        return 2 * n * 4 / statistics.median(times)

    def info(self) -> dict:
        return {"device": f"CPU: {platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores"}


class CudaDevice:
    """CuPy arrays on the current device; PyTorch shares their memory through DLPack.

    Ours run on CuPy's current stream and are timed with CuPy events; the baseline runs on
    PyTorch's current stream and is timed with PyTorch events (the same stream when both
    are the legacy default stream, as they are unless someone changed it).
    """

    kind = "cuda"
    baseline = "cuDNN/cuBLAS"

    def __init__(self, torch):
        os.environ.setdefault("CUPY_TF32", "0")  # cupy.matmul: float32, not TF32
        import cupy

        self.cp = cupy
        self.xp = cupy
        self.torch = torch
        self.torch_device = "cuda"
        if torch is not None:
            torch.cuda.init()

    def cache_bytes(self) -> int:
        return int(self.cp.cuda.runtime.getDeviceProperties(self.cp.cuda.Device().id)["l2CacheSize"])

    def randn(self, seed, shape, scale=1.0, dtype=np.float32):
        a = self.cp.random.RandomState(seed).standard_normal(shape, dtype=np.float32)
        if scale != 1.0:
            a *= np.float32(scale)
        return a.astype(dtype, copy=False)

    def randint(self, seed, high, shape):
        return self.cp.random.RandomState(seed).randint(0, high, size=shape).astype(np.int32)

    def asarray(self, a):
        a = self.cp.asarray(a)
        return a if a.flags.c_contiguous else self.cp.ascontiguousarray(a)

    def host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    def to_torch(self, a):
        return self.torch.from_dlpack(a)

    def from_torch(self, t):
        return self.cp.from_dlpack(t.detach().contiguous())

    def sync(self):
        self.cp.cuda.Device().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    @staticmethod
    def _min_reps(min_reps, estimate, budget_s):
        """Fewer repeats (3) for a call so slow that min_reps of them would take 4x the budget."""
        return min_reps if estimate * min_reps <= 4 * budget_s else min(min_reps, 3)

    def _events(self, side):
        if side == "torch":
            return lambda: self.torch.cuda.Event(enable_timing=True)
        return lambda: self.cp.cuda.Event()

    _SPIN_SRC = r"""
    extern "C" __global__ void ccn_bench_spin(long long cycles) {
      long long t0 = clock64();
      while (clock64() - t0 < cycles) { }
    }"""

    def _spin(self, seconds, side):
        """Keep the GPU busy for about `seconds`, so that the calls queued behind it run
        back to back: each call's events then measure the GPU's time for it, not the
        host's Python overhead between launches."""
        cp = self.cp
        if not hasattr(self, "_spin_kernel"):
            self._spin_kernel = cp.RawKernel(self._SPIN_SRC, "ccn_bench_spin")
            props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
            # kHz; the field is gone from CUDA 13's cudaDeviceProp: assume 2 GHz (a longer
            # spin than needed on a slower clock only costs idle time)
            self._clock_hz = props.get("clockRate", 0) * 1e3 or 2.0e9
        stream = None
        if side == "torch" and self.torch.cuda.current_stream().cuda_stream != 0:
            stream = cp.cuda.ExternalStream(self.torch.cuda.current_stream().cuda_stream)
        cycles = np.int64(min(seconds, 0.2) * self._clock_hz)
        if stream is None:
            self._spin_kernel((1,), (1,), (cycles,))
        else:
            self._spin_kernel((1,), (1,), (cycles,), stream=stream)

    def time_calls(self, fn, *, warmup, min_reps, max_reps, budget_s, side="ours", chunk=25):
        """Seconds per call of fn(i), each call between its own pair of events, in chunks
        queued behind a spin kernel that outlasts the host's time to queue the chunk."""
        for i in range(warmup):
            fn(i)
        self.sync()
        t0 = time.perf_counter()
        fn(warmup)
        host = time.perf_counter() - t0  # the host's time to queue one call
        self.sync()
        estimate = max(time.perf_counter() - t0, 1e-6)  # host + GPU time of one call
        reps = int(min(max_reps, max(self._min_reps(min_reps, estimate, budget_s), budget_s / estimate)))
        new_event = self._events(side)
        pairs = [(new_event(), new_event()) for _ in range(reps)]
        for i, (start, end) in enumerate(pairs):
            if i % chunk == 0:
                self._spin(1e-3 + 2 * host * min(chunk, reps - i), side)
            start.record()
            fn(warmup + 1 + i)
            end.record()
        self.sync()
        if side == "torch":
            return [s.elapsed_time(e) / 1e3 for s, e in pairs]
        return [self.cp.cuda.get_elapsed_time(s, e) / 1e3 for s, e in pairs]

    def copy_bandwidth(self, nbytes=1 << 30, reps=20):
        """Bytes read + written per second of a large device-to-device cudaMemcpyAsync."""
        cp = self.cp
        src = cp.empty(nbytes // 4, dtype=np.float32)
        src[...] = self.randn(1, (nbytes // 4,))
        dst = cp.empty_like(src)
        stream = cp.cuda.get_current_stream().ptr

        def copy(_):
            cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, nbytes,
                                        cp.cuda.runtime.memcpyDeviceToDevice, stream)

        times = self.time_calls(copy, warmup=3, min_reps=reps, max_reps=reps, budget_s=0)
        return 2 * nbytes / statistics.median(times)

    def info(self) -> dict:
        cp = self.cp
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else name
        return {
            "device": f"GPU: {name}",
            "sm_count": int(props["multiProcessorCount"]),
            "l2_bytes": int(props["l2CacheSize"]),
            "memory_bytes": int(props["totalGlobalMem"]),
            "driver_version": cp.cuda.runtime.driverGetVersion(),
            "runtime_version": cp.cuda.runtime.runtimeGetVersion(),
            "cupy": cp.__version__,
        }


# --------------------------------------------------------------------------- measuring

def rotation_sets(bytes_per_set: int, cache_bytes: int, *, max_sets: int = 16,
                  max_bytes: int = 6 << 30) -> int:
    """How many input sets to rotate through so that, between two uses of one set, at
    least 3x the cache's worth of other data was touched (at least 2 sets, so that no
    call sees the previous call's inputs)."""
    n = 1 + math.ceil(3 * cache_bytes / max(1, bytes_per_set))
    n = min(n, max_sets, max(1, max_bytes // max(1, bytes_per_set)))
    return max(2, n) if bytes_per_set * 2 <= max_bytes else 1


def summarize(times) -> dict:
    """Median and spread (10th..90th percentile) of per-call seconds."""
    t = sorted(times)
    q = lambda f: t[min(len(t) - 1, int(f * (len(t) - 1) + 0.5))]  # noqa: E731
    return {"median_s": statistics.median(t), "p10_s": q(0.1), "p90_s": q(0.9), "calls": len(t)}


class Timing:
    """Repeat counts and the time budget of one measurement (set from the command line)."""

    def __init__(self, *, warmup, min_reps, max_reps, budget_s):
        self.warmup, self.min_reps, self.max_reps, self.budget_s = warmup, min_reps, max_reps, budget_s

    def sets(self, bytes_per_set: int, device) -> int:
        """Input sets to rotate through (one when a single call is timed)."""
        if self.max_reps <= 1:
            return 1
        return rotation_sets(bytes_per_set, device.cache_bytes())

    def run(self, device, fn, side="ours") -> dict:
        times = device.time_calls(fn, warmup=self.warmup, min_reps=self.min_reps,
                                  max_reps=self.max_reps, budget_s=self.budget_s, side=side)
        return summarize(times)


def timing_for(device, smoke: bool, budget_s: float) -> Timing:
    if smoke:
        return Timing(warmup=0, min_reps=1, max_reps=1, budget_s=0)
    if device.kind == "cuda":
        return Timing(warmup=3, min_reps=10, max_reps=200, budget_s=budget_s)
    return Timing(warmup=1, min_reps=3, max_reps=20, budget_s=budget_s)


def rel_err(ours, ref) -> float:
    """||ours - ref|| / ||ref|| in float64 on the arrays' own device (inf if ours has a
    NaN or an inf: a poisoned element that no one wrote)."""
    on_gpu = any(type(a).__module__.startswith("cupy") for a in (ours, ref))
    xp = sys.modules["cupy"] if on_gpu else np
    a = xp.asarray(ours, dtype=np.float64)
    b = xp.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} != reference shape {b.shape}")
    if not bool(xp.isfinite(a).all()):
        return math.inf
    den = float(xp.linalg.norm(b.ravel()))
    num = float(xp.linalg.norm((a - b).ravel()))
    return num / den if den > 0 else num


def describe_error(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"error: {type(e).__name__}: {msg}"[:160]


# --------------------------------------------------------------------------- output

def fmt(value, spec="{:.3g}"):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    return spec.format(value)


def format_table(rows, columns) -> str:
    """columns: (key, header, spec) triples; a row's missing key shows as '-'."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([fmt(row.get(k), spec) for k, _, spec in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def git_commit() -> str:
    """The checkout's commit (+dirty); $CCN_COMMIT when set (for a copy of the tree without
    .git: pass the hash along with the command)."""
    if os.environ.get("CCN_COMMIT"):
        return os.environ["CCN_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device, torch) -> dict:
    import cuda_convnet as ccn

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "cpu_cores": os.cpu_count(),
        "build": ccn.build_info(),
    }
    env.update(device.info())
    return env


def write_json(path, bench: str, env: dict, rows, table: str, **extra):
    doc = {"bench": bench, "env": env, "rows": rows, "table": table, **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=str) + "\n")


def interleaved_times(fns, iters, warmup=2):
    """(best, median) seconds per call of each fn (CPU only). The fns run interleaved, call
    by call, so that load from other processes on a shared machine hits every side alike.
    Ratios are best taken from the best times: on the loaded 2-core dev machine single
    steps were measured to vary 4x (0.5-2.6 s for the reference), and the minimum is the
    stable estimate of what the code costs (as timeit's documentation advises)."""
    for _ in range(warmup):  # allocator, page faults, BLAS thread pool, torch lazy init
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [(min(ts), statistics.median(ts)) for ts in times]


def common_args(ap, *, default_budget):
    ap.add_argument("--backend", default="auto", choices=("auto", "cpu", "emu", "cuda"),
                    help="whose kernels are 'ours' (auto: cuda when usable, else cpu)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one call each (CI)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=default_budget,
                    help="seconds of timed calls per measurement (default %(default)s)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--seed", type=int, default=2012)
