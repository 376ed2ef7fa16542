"""The decoding processes of `prepare`: one chunk of files -> uint8 images per task.

Worker processes end when the parent process dies, however it dies (SIGKILL included):
on Linux the kernel kills them (prctl PR_SET_PDEATHSIG), and on every platform a
watchdog thread in each worker exits when its parent process is gone.  Ctrl-C is left
to the parent (workers ignore SIGINT).  workers=0 decodes in the calling process.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np

from . import images as _images
from .stats import chunk_sums


def decode_chunk(src: str, rel_paths: list[str], size: int, with_stats: bool):
    """Decode a chunk (runs in a worker process).

    Returns (uint8 (k_ok, size, size, 3), [(index in chunk, reason)], sums or None).
    Per-file failures never raise: any exception from one file skips that file.
    """
    out = np.empty((len(rel_paths), size, size, 3), dtype=np.uint8)
    failed, k = [], 0
    for i, rel in enumerate(rel_paths):
        path = os.path.join(src, rel)
        try:
            if os.path.getsize(path) == 0:
                raise ValueError("empty file (0 bytes)")
            out[k] = _images.load_fixed_size(path, size)
            k += 1
        except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
            failed.append((i, f"{type(e).__name__}: {e}"))
    out = out[:k]
    sums = chunk_sums(out) if (with_stats and k) else None
    return out, failed, sums


def _mp_context():
    # fork on Linux: workers inherit the imported modules (fast start) and, unlike spawn,
    # do not re-run the caller's __main__ (a script without an `if __name__ ==
    # "__main__"` guard, or code piped to `python -`, would otherwise break).  The workers
    # only touch Pillow and NumPy, so forking a process with threads (tqdm's monitor) is
    # safe here.  Elsewhere spawn, the only portable choice.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_init(parent_pid: int):
    # Ctrl-C is for the parent: it stops submitting, lets the running chunks finish and
    # exits with the finished chunks recorded.  Workers that died of the same SIGINT
    # mid-chunk would only add noise (and a broken pool) to that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_SECONDS = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the process `parent_pid` is gone (a pool worker's parent).

    An idle pool worker blocks reading its task queue; if the parent is SIGKILLed, no one
    closes that queue and the worker would wait forever.  Linux: the kernel sends SIGKILL
    when the parent dies.  Everywhere: a daemon thread polls os.getppid(), which changes
    (to init or a subreaper) once the parent is gone; this also covers the parent dying
    before the prctl call took effect.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watchdog remains
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(_WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class _InlineExecutor:
    """workers=0: decode in this process (debugging, profiling, tiny inputs)."""

    def submit(self, fn, *args):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - delivered through the future
            fut.set_exception(e)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def make_executor(workers: int):
    """A process pool of `workers` decoding processes (0: decode in this process)."""
    if workers <= 0:
        return _InlineExecutor()
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
