"""`prepare`'s decoding workers end when the prepare process dies, even by SIGKILL
(nothing can run in a SIGKILLed parent to stop them)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from subproc import env

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the process table from /proc")


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc/<pid>/stat."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found.add(int(name))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_of_prepare_ends_its_workers(tmp_path):
    rng = np.random.default_rng(7)
    for c in ("a", "b"):
        d = tmp_path / "src/train" / c
        d.mkdir(parents=True)
        for i in range(40):  # 80 noisy 400x300 JPEGs: seconds of decoding with chunks of 1
            Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=95)
    proc = subprocess.Popen([sys.executable, "-m", "cuda_convnet", "prepare", "src", "out", "--workers", "2",
                             "--chunk-size", "1", "--no-progress"], cwd=tmp_path, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers |= children(proc.pid)
            time.sleep(0.05)
        assert len(workers) >= 2, f"no workers seen (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}"
        time.sleep(0.3)  # let them take chunks: busy and idle workers alike must end
        assert proc.poll() is None, "prepare finished before it could be killed; give it more images"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = sorted(w for w in workers if alive(w))
        assert left == [], f"workers {left} outlived their SIGKILLed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # never leave strays behind, whatever the outcome
            if alive(w):
                os.kill(w, signal.SIGKILL)


# A worker whose prctl is unavailable (as on every system but Linux) is left to the watchdog.
_GRANDCHILD = """
import os, sys, time, types
from cuda_convnet.data import workers
workers.ctypes = types.SimpleNamespace()  # no CDLL: the prctl call is skipped
workers._die_with_parent(os.getppid())
print("ready", flush=True)
time.sleep(60)
"""
_CHILD = """
import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert p.stdout.readline() == "ready\\n"
print(p.pid, flush=True)
time.sleep(60)
"""


def test_watchdog_ends_a_worker_without_prctl(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, _GRANDCHILD], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(proc.stdout.readline())
        assert alive(worker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker), "the watchdog did not end the orphaned worker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)
