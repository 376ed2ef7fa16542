"""Run `python -m cuda_convnet ...` (or a script) as a user would, in a subprocess.

The child imports the SAME cuda_convnet as the test process (the installed package in CI,
the checkout in a development build): its parent directory goes first on PYTHONPATH, and
the child runs in a scratch directory so a source tree in the current directory (which
`python -m` puts first on sys.path) cannot shadow it.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import cuda_convnet

PACKAGE_PARENT = str(pathlib.Path(cuda_convnet.__file__).resolve().parents[1])


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e.update(extra)
    return e


def run_cli(*args, cwd, timeout=600, **extra_env):
    """`python -m cuda_convnet *args` in `cwd`; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "cuda_convnet", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env(**extra_env), timeout=timeout)


def interrupt_cli(*args, cwd, at_line=None, when=None, timeout=300):
    """`python -m cuda_convnet *args` in `cwd`, sent SIGINT (Ctrl-C) once its stdout prints a
    line starting with `at_line`, or once `when()` is true (polled every 50 ms); returns
    (returncode, stdout after that point, stderr). The child is killed if it is still
    running at the end; the test fails if it ends, or `timeout` s pass, before the signal."""
    proc = subprocess.Popen([sys.executable, "-m", "cuda_convnet", *map(str, args)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if at_line is not None:
            for line in proc.stdout:
                if line.startswith(at_line):
                    break
            else:
                raise AssertionError(f"no line starting with {at_line!r}: {proc.communicate()}")
        else:
            deadline = time.monotonic() + timeout
            while not when():
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stdout, stderr
