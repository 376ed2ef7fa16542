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
