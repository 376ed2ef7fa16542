"""Repeat counts, input rotation and summary statistics of timed calls."""

from __future__ import annotations

import math
import statistics
import time


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
