"""Run `python -m cuda_convnet ...` (or a script) as a user would, in a subprocess.

The child imports the SAME cuda_convnet as the test process (the installed package in CI,
the checkout in a development build): its parent directory goes first on PYTHONPATH, and
the child runs in a scratch directory so a source tree in the current directory (which
`python -m` puts first on sys.path) cannot shadow it.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

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
