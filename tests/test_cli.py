"""The command line, run as a user runs it (a subprocess)."""
from __future__ import annotations

import pytest
from subproc import run_cli


def test_help_lists_commands(tmp_path):
    r = run_cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    for command in ("prepare", "train", "eval", "predict", "selfcheck"):
        assert command in r.stdout


@pytest.mark.slow
def test_selfcheck_runs_the_kernels(tmp_path):
    r = run_cli("selfcheck", "--batch", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "selfcheck passed" in r.stdout
    assert r.stdout.count("max rel err") == 8  # five conv layers, three FC


def test_bad_arguments_are_one_line(tmp_path):
    r = run_cli("selfcheck", "--batch", "many", cwd=tmp_path)
    assert r.returncode == 2
    assert "invalid int value" in r.stderr
    r = run_cli("prepare", tmp_path / "no_such_tree", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
