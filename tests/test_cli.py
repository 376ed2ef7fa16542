"""The command line, run as a user runs it (a subprocess)."""
from __future__ import annotations

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "cuda_convnet", *args], capture_output=True, text=True, timeout=600)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    assert "selfcheck" in r.stdout


def test_selfcheck_runs_the_kernels():
    r = run("selfcheck", "--batch", "1")
    assert r.returncode == 0, r.stderr
    assert "selfcheck passed" in r.stdout
    assert r.stdout.count("max rel err") >= 3


def test_bad_arguments_are_one_line():
    r = run("selfcheck", "--batch", "many")
    assert r.returncode == 2
    assert "invalid int value" in r.stderr
