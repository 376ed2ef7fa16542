"""Where a benchmark's arrays live and how its calls are timed:

    CpuDevice   NumPy arrays, PyTorch CPU as the baseline, host-clock timing
    CudaDevice  CuPy arrays, PyTorch CUDA (cuDNN/cuBLAS, TF32 off) as the baseline,
                CUDA-event timing of every call

plus the choice of backend and the strict-float32 PyTorch baseline.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


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
