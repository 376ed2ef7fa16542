"""The command line, run as a user runs it (a subprocess)."""
from __future__ import annotations

import pytest
from subproc import run_cli


def test_version(tmp_path):
    import cuda_convnet

    r = run_cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == f"cuda-convnet {cuda_convnet.__version__}\n", r.stdout + r.stderr


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


def _parsers(parser, prog=()):
    """(command path, parser) for the top-level parser and every command and subcommand."""
    import argparse

    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*prog, name))


def test_every_command_and_option_says_what_it_is():
    """`cuda-convnet CMD [SUB] --help` opens with what the command does (the line the
    parent's list shows) and every argument has a help text, with no dangling reference."""
    from cuda_convnet.cli import build_parser

    seen = []
    for prog, parser in _parsers(build_parser()):
        seen.append(" ".join(prog))
        assert parser.description, f"{' '.join(prog)}: no description"
        for action in parser._actions:
            if action.dest in ("help", "command", "experiment", "figure"):
                continue
            assert action.help, f"{' '.join(prog)} {action.option_strings or action.dest}: no help text"
            assert "see below" not in action.help, (prog, action.help)
    assert {"demo", "selfcheck", "experiment relu-vs-tanh", "figure neighbours"} <= set(seen)


def test_subcommand_help_opens_with_its_summary(tmp_path):
    r = run_cli("experiment", "ablate", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "The full model against LRN off" in r.stdout.split("options:")[0]


def test_selfcheck_prints_each_line_as_it_goes(tmp_path):
    """Into a pipe (`selfcheck | tee log`), each line arrives when it is printed, not when the
    command ends (~2 minutes on a 2-core CPU) or something flushes the buffer: the first bytes
    to arrive are the header lines, before any layer's result (conv1 alone takes ~0.7 s)."""
    import os
    import subprocess
    import sys

    from subproc import env

    e = env()
    e.pop("PYTHONUNBUFFERED", None)  # a user's shell does not set it
    proc = subprocess.Popen([sys.executable, "-m", "cuda_convnet", "selfcheck"], cwd=tmp_path, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        first = os.read(proc.stdout.fileno(), 1 << 16)  # whatever the first write(s) put in the pipe
        running = proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
    assert first.startswith(b"build: ") and b"max rel err" not in first, first
    assert running


def test_dev_scripts_say_what_each_option_is(tmp_path):
    """dev/lr_drop_momentum.py --help, run as a user runs it: every option has a help text."""
    import importlib.util
    import pathlib
    import subprocess
    import sys

    from subproc import env

    script = pathlib.Path(__file__).resolve().parents[1] / "dev" / "lr_drop_momentum.py"
    spec = importlib.util.spec_from_file_location("lr_drop_momentum", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    options = [a for a in mod.build_parser()._actions if a.dest != "help"]
    assert len(options) == 6
    for a in options:
        assert a.help, f"{a.option_strings}: no help text"
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env())
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    for a in options:
        assert " ".join(a.help.replace("%%", "%").split()) in flat, a.help
    r = subprocess.run([sys.executable, str(script), "--window", "50", "--steps-after", "40"], capture_output=True,
                       text=True, cwd=tmp_path, env=env())
    assert r.returncode == 2 and "--window 50 is longer than --steps-after 40" in r.stderr
